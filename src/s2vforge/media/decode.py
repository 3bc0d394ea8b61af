"""Frame access shared by every stage: one decoder setup, rotation applied, sizes explicit."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

# one swscale context cache per process: PyAV's frame.reformat builds a new one per call
_REFORMATTER = VideoReformatter()


_PARENT_REFORMATTERS: list = []


def _fresh_reformatter() -> None:
    """A forked child (DataLoader workers fork) must not use the parent's swscale context: its
    threads do not survive the fork, so using it, or even freeing it (which joins them), hangs.
    The child keeps the parent's object alive, unused, and makes its own."""
    global _REFORMATTER
    _PARENT_REFORMATTERS.append(_REFORMATTER)
    _REFORMATTER = VideoReformatter()


os.register_at_fork(after_in_child=_fresh_reformatter)


def av_open(path: str | bytes | os.PathLike):
    """av.open for any path, including names that are not valid UTF-8 (opened as a file object)."""
    name = os.fsdecode(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return av.open(open(os.fsencode(path), "rb"), mode="r")
    return av.open(name, mode="r")


def open_video(path: str | bytes, threads: int = 1):
    """Open a container with its first video stream configured for `threads` decoder threads."""
    container = av_open(path)
    stream = container.streams.video[0]
    if threads != 1:
        stream.thread_type = "AUTO"
        stream.thread_count = max(0, threads)
    return container, stream


def fit_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(w, h) scaled so the long side is at most `long_side`, both even."""
    s = min(1.0, long_side / max(width, height))
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def frame_to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None, rotation: int) -> np.ndarray:
    """RGB uint8 array of a frame at display `size` (w, h) with the display rotation applied.

    Scaling happens in swscale before rotation, on the coded orientation, so a 90/270 degree
    stream is scaled to (h, w) and then turned.
    """
    if size is None:
        arr = frame.to_ndarray(format="rgb24")
    else:
        w, h = size
        if rotation in (90, 270):
            w, h = h, w
        arr = _REFORMATTER.reformat(frame, width=w, height=h, format="rgb24",
                                    interpolation=Interpolation.AREA).to_ndarray()
    if rotation:
        # PyAV reports the display matrix angle counter-clockwise; turning the coded picture
        # counter-clockwise by it gives what ffmpeg displays (checked against ffmpeg's autorotate).
        arr = np.ascontiguousarray(np.rot90(arr, k=(rotation // 90) % 4))
    return arr


def iter_frames(path: str | bytes, size: tuple[int, int] | None = None, threads: int = 1) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time_s, rgb) for every frame, time on the `FrameClock` (seconds from the first
    decoded frame, monotonic); for tests and small tools, not the hot path."""
    container, stream = open_video(path, threads)
    with container:
        clock = FrameClock(stream_fps(stream))
        for i, frame in enumerate(container.decode(stream)):
            t = clock.push(frame)
            rot = int(round(frame.rotation or 0)) % 360
            yield i, t, frame_to_rgb(frame, size, rot)


# ------------------------------------------------------------------ pixels: sample aspect ratio

def sample_aspect(stream) -> Fraction:
    """The stream's sample (pixel) aspect ratio; 1 when unset. The container's value (MP4
    `pasp`, Matroska display size) is preferred over the bitstream's, as FFmpeg does
    (av_guess_sample_aspect_ratio)."""
    for sar in (getattr(stream, "sample_aspect_ratio", None),
                getattr(getattr(stream, "codec_context", None), "sample_aspect_ratio", None)):
        try:
            if sar is not None and sar.numerator > 0 and sar.denominator > 0:
                return Fraction(sar.numerator, sar.denominator)
        except (AttributeError, ZeroDivisionError):
            continue
    return Fraction(1)


def display_size(coded_width: int, coded_height: int, sar: Fraction, rotation: int = 0) -> tuple[int, int]:
    """(w, h) of the picture as a player shows it: width scaled by the SAR (rounded to even, as
    `scale=-2` would; unchanged for square pixels), then turned by the display rotation."""
    w, h = int(coded_width), int(coded_height)
    if sar != 1:
        sw = max(2, int(round(w * sar / 2)) * 2)
        if sw != w:
            w = sw
    return (h, w) if rotation in (90, 270) else (w, h)


def effective_sar(coded_width: int, coded_height: int, sar: Fraction) -> Fraction:
    """`sar`, or 1 when it does not change the display width (a rounding-level SAR)."""
    return Fraction(1) if display_size(coded_width, coded_height, sar)[0] == coded_width else Fraction(sar)


def sar_text(sar: Fraction) -> str:
    return f"{sar.numerator}:{sar.denominator}"


# ------------------------------------------------------------------ time: the decoded-frame clock

# A forward pts step longer than both of these is a discontinuity (a recording pause, a
# splice). Shorter steps are a VFR frame shown that long and keep their real duration. Curation
# passes the recipe's analysis.pts_gap_s / pts_gap_frames; these match its defaults, for tools.
MAX_STEP_S = 2.0
MAX_STEP_FRAMES = 10


def stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 25.0


class FrameClock:
    """A monotonic clock over the frames in decode order; frame identity is the decode index.

    pts are trusted only between frames that look continuous. Frame 0 is at 0 s; each later
    frame is one pts step after the previous, except where the step is unusable:

    - backwards by more than half a frame (a splice of two streams, a pts reset) or forward by
      more than MAX_STEP_S and MAX_STEP_FRAMES frame intervals (a gap): a *break*; the clock
      goes on one frame interval later and the index is listed in `breaks`;
    - a missing pts, or a repeated one (within half a frame): one frame interval, no break.

    "One frame interval" is the median of the last continuous pts steps (1/fps before any): a
    gap drags a container's average frame rate down, so `fps` may be far from the real one.

    `pts` keeps the raw pts of every frame (None where absent); `seekable` is False as soon as
    they are missing or not strictly increasing, i.e. when a pts no longer names one frame.
    """

    def __init__(self, fps: float, max_gap_s: float = MAX_STEP_S, max_gap_frames: float = MAX_STEP_FRAMES):
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.step = 1.0 / self.fps
        self.max_step = max(float(max_gap_s), float(max_gap_frames) * self.step)
        self.times: list[float] = []
        self.pts: list[int | None] = []
        self.breaks: list[int] = []
        self.n_irregular = 0          # missing or repeated pts (no break)
        self.seekable = True
        self._last_raw: float | None = None
        self._recent: list[float] = []  # the last continuous pts steps

    def push(self, frame) -> float:
        """The clock time (s) of the next decoded frame."""
        pts = frame.pts
        raw = float(pts * frame.time_base) if pts is not None and frame.time_base is not None else None
        i = len(self.times)
        if i == 0:
            t = 0.0
        else:
            prev = self._last_raw
            dt = None if raw is None or prev is None else raw - prev
            if dt is None or -0.5 * self.step <= dt <= 0.0:
                self.n_irregular += 1
                dt = self._interval()
            elif dt < 0.0 or dt > self.max_step:
                self.breaks.append(i)
                dt = self._interval()
            else:
                self._recent.append(dt)
                if len(self._recent) > 15:
                    del self._recent[0]
            t = self.times[-1] + dt
        if pts is None or (self.pts and (self.pts[-1] is None or pts <= self.pts[-1])):
            self.seekable = False
        self.times.append(t)
        self.pts.append(None if pts is None else int(pts))
        self._last_raw = raw
        return t

    def _interval(self) -> float:
        return float(np.median(self._recent)) if self._recent else self.step

    def frame_rate(self) -> float:
        """Frames per second of the clock (1 / its median frame step); `fps` for < 2 frames."""
        if len(self.times) < 2:
            return self.fps
        step = float(np.median(np.diff(self.times)))
        return 1.0 / step if step > 0 else self.fps

    def end_time(self) -> float:
        """End of the last frame: its start plus the median frame step (1/fps for one frame)."""
        if not self.times:
            return 0.0
        if len(self.times) == 1:
            return self.times[0] + self.step
        return self.times[-1] + float(np.median(np.diff(self.times)))


def mp4_problem(path: Path | str) -> str | None:
    """Why a written .mp4 can no longer be used (None = it opens and its first frame decodes);
    other files: None. Stages' check_file: a rerun redoes the item of a broken clip."""
    if not str(path).endswith(".mp4"):
        return None
    try:
        container, stream = open_video(str(path))
        with container:
            if stream.frames <= 0:
                return "holds no video frames"
            next(container.decode(stream))
    except StopIteration:
        return "no frame decodes"
    except (av.FFmpegError, OSError) as e:
        return f"does not decode ({type(e).__name__}: {e})"
    return None
