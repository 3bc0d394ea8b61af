"""Videos with odd timestamps and non-square pixels, each written with its known truth.

Every writer encodes real photos (scikit-image / matplotlib, `synth.load_photo`) as panning
shots, one distinct photo per continuous run of content, so a test can tell exactly which
source frames ended up in which clip. Each returns an `OddVideo`: the file, the frames a
decoder yields (in order, as RGB fed to the encoder), where the timestamps break, and the
clip windows curation must produce under the default 2-20 s rule with a cut at every break.

- `write_spliced_ts`: MPEG-TS segments concatenated byte-wise; pts restarts in each segment.
- `write_negative_start_ts`: MPEG-TS whose first frame is at -1 s (pts just below the 33-bit
  wrap, which FFmpeg reads as negative times).
- `write_negative_start_mkv`: Matroska with negative block times; FFmpeg reads them as no pts.
- `write_editlist_mp4`: MP4 whose first frames have negative pts; its edit list hides them
  (the header counts every sample, a decoder yields only the shown ones).
- `write_pts_gap`: MP4 whose pts jumps forward by `gap_s` in the middle of one shot.
- `write_sar`: non-square pixels (e.g. 720x480 coded, SAR 32:27 or 8:9), optionally
  pillarboxed with black bars of a known display width.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .synth import load_photo, moving_shot

FPS = 25.0
SIZE = (320, 180)
TS_TIME_BASE = Fraction(1, 90_000)
# Photo per segment: colourful, mutually distinct, textured enough that a pan moves visibly.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@dataclass
class OddVideo:
    path: Path
    kind: str
    fps: float
    frames: list[np.ndarray]                 # what a decoder yields, in order (RGB as encoded, square pixels)
    segments: list[tuple[int, int, str]]     # (start, end exclusive, photo): runs of continuous content
    breaks: list[int] = field(default_factory=list)    # frame indices whose pts reset/jump from the previous
    windows: list[tuple[int, int]] = field(default_factory=list)  # expected clip windows (frames)
    too_short: list[tuple[int, int]] = field(default_factory=list)
    sample_aspect: str = "1:1"               # SAR of the coded pixels
    coded_frames: list[np.ndarray] | None = None   # SAR files: the frames at coded (non-square) size
    display_size: tuple[int, int] | None = None     # SAR files: (w, h) of the picture as displayed
    bars: int = 0                            # SAR files: black pillarbox bar width, display pixels
    header_frames: int | None = None         # samples the container declares (edit list: more than shown)

    @property
    def n_frames(self) -> int:
        return len(self.frames)


def _shot(photo: str, n: int, size: tuple[int, int] = SIZE, direction: int = 1, speed: float = 0.3) -> list[np.ndarray]:
    """n frames of a pan over `photo` (~1 px a frame at 320 px wide: neighbours differ visibly, and
    the content detector scores the motion far below its cut threshold)."""
    frames = moving_shot(load_photo(photo), n / FPS, FPS, size, "pan", speed=speed, direction=direction)
    return [np.ascontiguousarray(f[:, :, :3]) for f in frames]


def _encode(target, frames: Sequence[np.ndarray], fmt: str, pts: Sequence[int], time_base: Fraction, *,
            container_options: dict | None = None, sar: Fraction | None = None, bframes: bool = True) -> None:
    import av

    h, w = frames[0].shape[:2]
    with av.open(target, "w", format=fmt, options=container_options or {}) as c:
        s = c.add_stream("libx264", rate=Fraction(FPS).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "16", "preset": "veryfast", **({} if bframes else {"bf": "0"})}
        s.codec_context.time_base = time_base
        if sar is not None:
            s.codec_context.sample_aspect_ratio = sar
        for rgb, p in zip(frames, pts):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            vf.pts, vf.time_base = int(p), time_base
            for pk in s.encode(vf):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)


def _ts_pts(n: int, start_s: float = 0.0) -> list[int]:
    step = int(round(float(1 / (FPS * TS_TIME_BASE))))
    return [int(round(start_s / TS_TIME_BASE)) + i * step for i in range(n)]


def _plan(segment_lengths: Sequence[int], min_frames: int = int(2.0 * FPS)) -> tuple[list, list]:
    """Expected windows / too-short pieces when every segment boundary is a cut (all < 20 s)."""
    windows, short, a = [], [], 0
    for n in segment_lengths:
        (windows if n >= min_frames else short).append((a, a + n))
        a += n
    return windows, short


def write_spliced_ts(path: str | Path, seconds: Sequence[float] = (3.0, 2.6),
                     photos: Sequence[str] = ("astronaut", "coffee")) -> OddVideo:
    """Two (or more) MPEG-TS files of different photos concatenated byte-wise (`cat a.ts b.ts`):
    each segment's pts starts again at 0 (+ the muxer's 1.4 s delay), so time goes backwards
    at every splice."""
    path = Path(path)
    frames, segments, breaks, data, a = [], [], [], b"", 0
    for k, (sec, photo) in enumerate(zip(seconds, photos)):
        n = int(round(sec * FPS))
        seg = _shot(photo, n, direction=(-1) ** k)
        buf = io.BytesIO()
        _encode(buf, seg, "mpegts", _ts_pts(n), TS_TIME_BASE)
        data += buf.getvalue()
        if k:
            breaks.append(a)
        frames += seg
        segments.append((a, a + n, photo))
        a += n
    path.write_bytes(data)
    windows, short = _plan([e - s for s, e, _ in segments])
    return OddVideo(path, "spliced_ts", FPS, frames, segments, breaks, windows, short)


def write_negative_start_ts(path: str | Path, start_s: float = -1.0, seconds: float = 4.0,
                            photo: str = "chelsea") -> OddVideo:
    """One MPEG-TS shot whose first frame is at `start_s` < 0 (pts written just below the
    33-bit wrap; FFmpeg's wrap handling reads them as negative times)."""
    path = Path(path)
    n = int(round(seconds * FPS))
    frames = _shot(photo, n)
    pts = [(1 << 33) + p for p in _ts_pts(n, start_s)]   # the muxer keeps 33 bits: it wraps to 0 at 0 s
    _encode(str(path), frames, "mpegts", pts, TS_TIME_BASE)
    return OddVideo(path, "negative_start_ts", FPS, frames, [(0, n, photo)], [], [(0, n)], [])


def write_negative_start_mkv(path: str | Path, start_s: float = -1.0, seconds: float = 3.0,
                             photo: str = "rocket") -> OddVideo:
    """Matroska with block times from `start_s` < 0 (avoid_negative_ts disabled). FFmpeg's
    Matroska reader cannot represent a negative block time and gives those frames no pts,
    so the stream begins with frames of unknown time, then runs from 0."""
    path = Path(path)
    n = int(round(seconds * FPS))
    frames = _shot(photo, n)
    tb = Fraction(1, 1000)
    pts = [int(round(start_s * 1000)) + int(round(i * 1000 / FPS)) for i in range(n)]
    _encode(str(path), frames, "matroska", pts, tb, container_options={"avoid_negative_ts": "disabled"},
            bframes=False)
    return OddVideo(path, "negative_start_mkv", FPS, frames, [(0, n, photo)], [], [(0, n)], [])


def write_editlist_mp4(path: str | Path, hidden_s: float = 1.0, shown_s: float = 3.0,
                       photo: str = "coffee") -> OddVideo:
    """MP4 whose first `hidden_s` of frames have negative pts: the muxer writes an edit list
    that starts the presentation at 0, so a decoder yields only the shown frames while the
    header declares every sample."""
    path = Path(path)
    n_hidden, n_shown = int(round(hidden_s * FPS)), int(round(shown_s * FPS))
    frames = _shot(photo, n_hidden + n_shown)
    tb = Fraction(1, int(FPS))
    _encode(str(path), frames, "mp4", [i - n_hidden for i in range(len(frames))], tb)
    shown = frames[n_hidden:]
    return OddVideo(path, "editlist_mp4", FPS, shown, [(0, n_shown, photo)], [], [(0, n_shown)], [],
                    header_frames=len(frames))


def write_pts_gap(path: str | Path, gap_s: float = 30.0, seconds: Sequence[float] = (2.4, 2.6),
                  photo: str = "astronaut") -> OddVideo:
    """One continuous pan in MP4 whose pts jump forward by `gap_s` after the first part (a
    recording pause): frames are contiguous, time is not."""
    path = Path(path)
    n1, n2 = (int(round(s * FPS)) for s in seconds)
    frames = _shot(photo, n1 + n2)
    tb = Fraction(1, 1000)
    ms = [int(round(i * 1000 / FPS)) + (int(round(gap_s * 1000)) if i >= n1 else 0) for i in range(n1 + n2)]
    _encode(str(path), frames, "mp4", ms, tb)
    windows, short = _plan([n1, n2])
    return OddVideo(path, "pts_gap", FPS, frames, [(0, n1, photo), (n1, n1 + n2, photo)], [n1], windows, short)


def sar_display_size(coded: tuple[int, int], sar: Fraction) -> tuple[int, int]:
    """(w, h) a player shows for `coded` pixels of aspect `sar`: width scaled and rounded to even
    (FFmpeg's `scale=-2` convention; 720x480 at 32:27 -> 854x480), height kept."""
    return int(round(coded[0] * sar / 2)) * 2, int(coded[1])


def write_sar(path: str | Path, sar: tuple[int, int] = (32, 27), coded: tuple[int, int] = (720, 480),
              seconds: float = 2.4, photo: str = "astronaut", bars: int = 0) -> OddVideo:
    """Non-square pixels: a pan rendered at its display size (square pixels), resampled to the
    `coded` size and encoded with sample aspect ratio `sar`. `bars` > 0 puts black pillarbox
    bars of that many display pixels on the left and right."""
    path = Path(path)
    q = Fraction(*sar)
    dw, dh = sar_display_size(coded, q)
    n = int(round(seconds * FPS))
    disp = []
    for f in _shot(photo, n, size=(dw - 2 * bars, dh), speed=0.25):   # ~2 px a frame at this size
        if bars:
            f = cv2.copyMakeBorder(f, 0, 0, bars, bars, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        disp.append(np.ascontiguousarray(f))
    coded_frames = [cv2.resize(f, coded, interpolation=cv2.INTER_AREA) for f in disp]
    _encode(str(path), coded_frames, "mp4", range(n), Fraction(1, int(FPS)), sar=q)
    return OddVideo(path, "sar", FPS, disp, [(0, n, photo)], [], [(0, n)], [], sample_aspect=f"{q.numerator}:{q.denominator}",
                    coded_frames=coded_frames, display_size=(dw, dh), bars=bars)


def write_all(out_dir: str | Path) -> dict[str, OddVideo]:
    """Every odd file of this module under `out_dir`, by name."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    return {
        "spliced_ts": write_spliced_ts(d / "spliced.ts"),
        "negative_start_ts": write_negative_start_ts(d / "negative_start.ts"),
        "negative_start_mkv": write_negative_start_mkv(d / "negative_start.mkv"),
        "editlist_mp4": write_editlist_mp4(d / "editlist.mp4"),
        "pts_gap": write_pts_gap(d / "pts_gap.mp4"),
        "sar_32_27": write_sar(d / "sar_32_27.mp4", (32, 27)),
        "sar_8_9_pillarbox": write_sar(d / "sar_8_9_pillarbox.mp4", (8, 9), bars=60, photo="coffee"),
    }
