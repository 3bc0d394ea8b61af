"""Files that break naive video pipelines, each with the outcome a robust ingest should give.

Bad input is data (DESIGN.md): every one of these must end up as a videos.parquet row with a
status and a clear error, or be processed correctly (rotation, VFR, odd file names), and the
run must go on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .synth import load_photo, moving_shot, write_video

# Outcomes: error = a status=error row; ok = a normal row; ok-with-rotation = display is the
# coded frame rotated 90 deg (width/height swap); ok-vfr = irregular presentation times
# (durations must come from pts, not n/fps); partial = opens, then decoding fails part-way
# (fewer frames than the header claims).


@dataclass(frozen=True)
class Expected:
    outcome: str          # error | ok | ok-with-rotation | ok-vfr | partial
    why: str


EXPECTED: dict[str, Expected] = {
    "zero_byte": Expected("error", "empty file: no container to open"),
    "truncated": Expected("error", "real mp4 cut at 40 %: the moov index (written last) is missing"),
    "truncated_faststart": Expected(
        "partial", "real mp4 with moov first (faststart) cut at 60 %: opens, header says 50 frames, decoding "
                   "raises InvalidDataError after ~27; keep what decoded or record an error, never crash"),
    "not_a_video": Expected("error", "plain text with an .mp4 name"),
    "audio_only": Expected("error", "valid AAC sine in .m4a: no video stream"),
    "huge_resolution": Expected(
        "error", "valid 7680x4320 H.264 (one frame, tiny file): over any sane recipe max resolution"),
    "rotated": Expected("ok-with-rotation", "coded 320x180, display matrix rotation 90: shown as 180x320"),
    "vfr": Expected("ok-vfr", "frames at irregular pts (gaps of 40-200 ms)"),
    "non_utf8_name": Expected("ok", "valid video whose file name is the bytes b'bad_\\xff\\xfe.mp4' (not UTF-8)"),
    "shell_chars_name": Expected("ok", "valid video whose name has spaces, quotes, ; and $(...) in it"),
    "png_as_mp4": Expected("error", "a PNG photo renamed .mp4: one frame, no moving video"),
    "cover_art_only": Expected("error", "AAC audio whose only picture is attached cover art"),
}

HUGE_SIZE = (7680, 4320)
ROTATED_CODED_SIZE = (320, 180)
VFR_TIMES = (0.0, 0.04, 0.08, 0.12, 0.32, 0.36, 0.40, 0.60, 0.64, 0.68, 0.72, 0.76, 0.96, 1.00,
             1.04, 1.24, 1.28, 1.32, 1.36, 1.56)
NON_UTF8_NAME = b"bad_\xff\xfe.mp4"
SHELL_CHARS_NAME = "clip with 'single' \"double\" ; $(touch pwned) `id` & name.mp4"


def _small_clip(seconds: float = 1.0, size: tuple[int, int] = (320, 180), photo: str = "astronaut"):
    return moving_shot(load_photo(photo), seconds, 25.0, size, "pan")


def _write_aac_sine(path: Path, seconds: float = 1.0, rate: int = 44100, hz: float = 440.0) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        n = int(seconds * rate)
        t = np.arange(n) / rate
        samples = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        step = 1024
        for i in range(0, n, step):
            chunk = samples[i:i + step][None, :]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_faststart(path: Path) -> None:
    """Same encoder as write_video but with the index (moov) at the front."""
    import av

    frames = list(_small_clip(2.0, photo="coffee"))
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast", "g": "5"}
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_png_as_mp4(path: str | Path) -> Path:
    """A still photo (PNG bytes) under a video name."""
    import cv2
    ok, png = cv2.imencode(".png", load_photo("astronaut")[:, :, ::-1])
    Path(path).write_bytes(png.tobytes())
    return Path(path)


def write_audio_with_cover_art(path: str | Path) -> Path:
    """One second of silence in AAC plus an attached-picture (cover art) MJPEG stream."""
    import av
    with av.open(str(path), "w", format="mp4") as out:
        audio = out.add_stream("aac", rate=16000)
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        pic = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24").reformat(format="yuvj420p")
        pic.pts = 0
        for p in [*cover.encode(pic), *cover.encode()]:
            out.mux(p)
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        sound.sample_rate, sound.pts = 16000, 0
        for p in [*audio.encode(sound), *audio.encode()]:
            out.mux(p)
    return Path(path)


def write_bad_inputs(dir: str | Path) -> dict[str, Path]:
    """Create every bad input in `dir`; returns logical name -> path (see EXPECTED for the
    outcome of each). The non-UTF-8 name is a Path built with os.fsdecode (surrogate escapes),
    which opens fine on Linux; os.fsencode(path) gives back the raw bytes."""
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    p = out / "zero_byte.mp4"
    p.write_bytes(b"")
    paths["zero_byte"] = p

    real = out / "_real_for_truncation.mp4"
    write_video(real, _small_clip(2.0), 25.0)
    data = real.read_bytes()
    real.unlink()
    p = out / "truncated.mp4"
    p.write_bytes(data[: int(len(data) * 0.4)])
    paths["truncated"] = p

    fast = out / "_faststart.mp4"
    _write_faststart(fast)
    data = fast.read_bytes()
    fast.unlink()
    p = out / "truncated_faststart.mp4"
    p.write_bytes(data[: int(len(data) * 0.6)])
    paths["truncated_faststart"] = p

    p = out / "not_a_video.mp4"
    p.write_text("This is not a video. It is a text file with an .mp4 extension.\n" * 20)
    paths["not_a_video"] = p

    p = out / "audio_only.m4a"
    _write_aac_sine(p)
    paths["audio_only"] = p

    p = out / "huge_resolution.mp4"
    w, h = HUGE_SIZE
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = (40, 90, 160)
    frame[h // 3: 2 * h // 3, w // 3: 2 * w // 3] = (220, 200, 60)
    write_video(p, [frame], 25.0, crf=51, preset="ultrafast")
    paths["huge_resolution"] = p

    p = out / "rotated.mp4"
    write_video(p, _small_clip(1.0, ROTATED_CODED_SIZE, "chelsea"), 25.0, rotation=90)
    paths["rotated"] = p

    p = out / "vfr.mp4"
    frames = list(_small_clip(len(VFR_TIMES) / 25.0, photo="rocket"))
    write_video(p, frames, 25.0, times=VFR_TIMES)
    paths["vfr"] = p

    p = Path(os.fsdecode(os.path.join(os.fsencode(out), NON_UTF8_NAME)))
    write_video(p, _small_clip(1.0, photo="grace_hopper"), 25.0)
    paths["non_utf8_name"] = p

    p = out / SHELL_CHARS_NAME
    write_video(p, _small_clip(1.0, photo="motorcycle_left"), 25.0)
    paths["shell_chars_name"] = p
    paths["png_as_mp4"] = write_png_as_mp4(out / "photo.mp4")
    paths["cover_art_only"] = write_audio_with_cover_art(out / "song_with_cover.mp4")
    return paths


__all__ = ["EXPECTED", "Expected", "HUGE_SIZE", "NON_UTF8_NAME", "ROTATED_CODED_SIZE", "SHELL_CHARS_NAME",
           "VFR_TIMES", "write_bad_inputs"]
