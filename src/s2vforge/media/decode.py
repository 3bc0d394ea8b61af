"""Frame access shared by every stage: one decoder setup, rotation applied, sizes explicit."""
from __future__ import annotations

import os
from collections.abc import Iterator

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

# one swscale context cache per process: PyAV's frame.reformat builds a new one per call
_REFORMATTER = VideoReformatter()


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
    """(index, time_s, rgb) for every frame; for tests and small tools, not the hot path."""
    container, stream = open_video(path, threads)
    with container:
        for i, frame in enumerate(container.decode(stream)):
            rot = int(round(frame.rotation or 0)) % 360
            yield i, float(frame.time or 0.0), frame_to_rgb(frame, size, rot)
