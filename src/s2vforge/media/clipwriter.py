"""Encode kept clips as H.264/yuv420p MP4 with the crop applied.

Clips of one video are written in one forward decode (seeking only across long gaps), so a
video costs one extra partial decode however many clips it keeps. The files are written where
the caller says (the stage's scratch folder); the driver moves them into the dataset.

Reproducible bytes: a clip depends only on its source, the recipe and the package version.
x264 runs single-threaded (its output depends on its thread count) with a pinned instruction
set (`write.x264_asm`): its AVX-512 code is not deterministic run to run (measured: 5 different
outputs in 8 encodes of one clip), and its SSSE3+ code gives other bytes than its C code.
`portable` = SSE2 on x86-64, which matches x264's C code bit for bit, and the C code elsewhere;
`native` lets x264 pick (fastest, bytes differ across CPUs). The muxer writes no creation
time or version string (bitexact).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .decode import frame_to_rgb, open_video

SEEK_GAP_S = 5.0  # seek instead of decoding through gaps longer than this
X264_PORTABLE_X86 = "MMX2,SSE,SSE2"   # matches x264's C code bit for bit (measured)


def x264_asm_flags(mode: str) -> str | None:
    """The x264 `asm` parameter for write.x264_asm: portable | native | an explicit x264 cpu list."""
    import platform
    if mode == "native":
        return None
    if mode == "portable":
        return X264_PORTABLE_X86 if platform.machine().lower() in ("x86_64", "amd64") else "0"
    return mode


@dataclass
class ClipSpec:
    clip_id: str
    start_s: float
    end_s: float                      # exclusive
    crop: tuple[int, int, int, int]   # display pixels
    out_path: Path


def write_clips(path: str | bytes, specs: list[ClipSpec], rotation: int, fps: float, *, crf: int, preset: str,
                threads: int = 1, max_long_side: int | None = None, x264_asm: str = "portable") -> dict[str, int]:
    """Encode every spec; return frames written per clip_id (0: nothing written, no file)."""
    written: dict[str, int] = {}
    if not specs:
        return written
    specs = sorted(specs, key=lambda s: s.start_s)
    eps = 0.25 / max(fps, 1.0)
    container, stream = open_video(path, threads)
    with container:
        i = 0
        while i < len(specs):
            _seek(container, stream, specs[i].start_s)
            frames = _Pushback(container.decode(stream))
            # consume clips sequentially while the next one starts close enough
            while i < len(specs):
                spec = specs[i]
                written[spec.clip_id] = _encode_one(frames, spec, rotation, fps, eps, crf, preset, max_long_side,
                                                    x264_asm_flags(x264_asm))
                i += 1
                if i < len(specs) and specs[i].start_s - spec.end_s > SEEK_GAP_S:
                    break
    return written


class _Pushback:
    """An iterator that can give back one item."""

    def __init__(self, it):
        self._it, self._back = iter(it), []

    def __iter__(self):
        return self

    def __next__(self):
        return self._back.pop() if self._back else next(self._it)

    def push(self, item) -> None:
        self._back.append(item)


def _seek(container, stream, t: float) -> None:
    if t <= 0.5:
        container.seek(0, stream=stream, backward=True, any_frame=False)
    else:
        container.seek(int((t - 0.5) / stream.time_base), stream=stream, backward=True, any_frame=False)


def _encode_one(frames, spec: ClipSpec, rotation: int, fps: float, eps: float, crf: int, preset: str,
                max_long_side: int | None, asm: str | None) -> int:
    x0, y0, x1, y1 = spec.crop
    out_w, out_h = x1 - x0, y1 - y0
    scale = 1.0
    if max_long_side and max(out_w, out_h) > max_long_side:
        scale = max_long_side / max(out_w, out_h)
    enc_w, enc_h = (max(2, int(out_w * scale) // 2 * 2), max(2, int(out_h * scale) // 2 * 2))
    passthrough = rotation == 0 and (x0, y0) == (0, 0) and scale == 1.0
    spec.out_path.parent.mkdir(parents=True, exist_ok=True)
    dest = spec.out_path
    n = 0
    out = av.open(str(dest), mode="w", format="mp4", container_options={"fflags": "+bitexact"})
    try:
        rate = Fraction(fps).limit_denominator(1001)
        ost = out.add_stream("libx264", rate=rate)
        ost.width, ost.height, ost.pix_fmt = enc_w, enc_h, "yuv420p"
        ost.thread_count = 1                     # x264's output depends on its thread count: pin it
        ost.options = {"crf": str(crf), "preset": preset, "threads": "1",
                       **({"x264-params": f"asm={asm}"} if asm is not None else {})}
        for frame in frames:
            t = float(frame.time or 0.0)
            if t < spec.start_s - eps:
                continue
            if t >= spec.end_s - eps:
                frames.push(frame)  # first frame of the next clip when clips are adjacent
                break
            if passthrough and frame.format.name == "yuv420p" and (frame.width, frame.height) == (enc_w, enc_h):
                vf = frame                       # no crop, no rotation, no scaling: encode as decoded
                vf.pict_type = av.video.frame.PictureType.NONE
                vf.time_base = 1 / rate          # pts below count output frames, not source ticks
            else:
                rgb = frame_to_rgb(frame, None, int(round(frame.rotation or 0)) % 360 if rotation else 0)
                rgb = rgb[y0:y1, x0:x1]
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                if (enc_w, enc_h) != (rgb.shape[1], rgb.shape[0]):
                    vf = vf.reformat(width=enc_w, height=enc_h)
            vf.pts = n
            for packet in ost.encode(vf):
                out.mux(packet)
            n += 1
        for packet in ost.encode():
            out.mux(packet)
    except BaseException:
        out.close()
        dest.unlink(missing_ok=True)
        raise
    out.close()
    if n == 0:
        dest.unlink(missing_ok=True)
    return n
