"""Reading a sample's frames from a clip with PyAV: seek, decode forward, convert only what is used.

Frame index i is the clip's i-th decoded frame. Frames are named by pts,
`(pts - start_time) * time_base * frame_rate`, and that is trusted only while it is exact: the
first packet a keyframe at start_time, every name within a quarter frame of an integer, the
first frame after a seek at or before the first needed one, names increasing, and no needed
frame missing. Anything else (VFR, missing or reset pts, a seek that lands past the target)
and the clip is read again from the start, counting frames, so the indices are right on any
file; the clips the curate stage writes (constant rate, pts = frame number) take the fast path.

The fast path seeks to the keyframe at or before the first needed frame and decodes forward
only to the last one. Frames between the needed ones must be decoded when other frames are
predicted from them; those that are not (non-reference frames: 33-49 % of the frames of the
benchmark corpus, x264 defaults) are dropped before decoding (FFmpeg skip_frame NONREF, set per
packet on the single-threaded decoder), which cannot change a needed frame's pixels. No unneeded frame is
converted to RGB. A needed frame is converted and scaled in one swscale pass (yuv -> rgb24 at
the cover size, area filter, the same conversion as media.decode.frame_to_rgb, so pixels match
what every other stage saw), then centre-cropped. The swscale context is single-threaded and made
per process: one inherited through fork (a DataLoader worker) from a parent that used a threaded
one deadlocks on the parent's vanished threads (seen with media.decode's shared reformatter).
The container is closed on every path. Where the clip has fewer frames than asked (a table that
overstates n_frames), the missing indices get the last decoded frame and `read` says so.
"""
from __future__ import annotations

import io
import os
from fractions import Fraction

import av
import numpy as np

from av.video.reformatter import Interpolation, VideoReformatter

from ..media.decode import av_open, display_size, effective_sar, sample_aspect
from .geometry import cover_crop

_SWS: dict = {"pid": None, "reformatter": None}


class ClipReadError(RuntimeError):
    """A clip could not be opened or decoded (the message names the file and the cause)."""


class _LostTrack(Exception):
    """Frames after a seek could not be named by index: read again from the start."""


def open_clip(source, threads: int = 1):
    """(container, stream) over a path or the bytes of a file (a tar member), with `threads`
    decoder threads (1: single-threaded; parallelism comes from DataLoader workers)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        container = av.open(io.BytesIO(bytes(source)), mode="r")
    else:
        container = av_open(source)
    try:
        stream = container.streams.video[0]
    except IndexError:
        container.close()
        raise ClipReadError(f"{_name(source)}: no video stream") from None
    if threads > 1:
        stream.thread_type = "AUTO"
    stream.thread_count = int(threads)
    return container, stream


def _name(source) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return os.fsdecode(source)


def read_frames(source, indices, out_hw: tuple[int, int] | None, threads: int = 1,
                seek: bool = True, skip_nonref: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [T, H, W, 3], read int64 [T]): the frames at `indices` (any order, repeats
    allowed) scaled to cover `out_hw` (H, W) and centre-cropped (None: the display size), and the
    index each one really is. seek=False counts frames from the start (the reference path);
    skip_nonref=False decodes every frame up to the last wanted. ClipReadError when the clip
    cannot be read."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0 or idx.min() < 0:
        raise ValueError(f"frame indices must be a non-empty list of indices >= 0, got {idx.tolist()}")
    wanted = sorted(set(idx.tolist()))
    try:
        try:
            got, last = _decode(source, wanted, out_hw, threads, seek, skip_nonref)
        except _LostTrack:
            got, last = _decode(source, wanted, out_hw, threads, False, False)
    except ClipReadError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError, MemoryError) as exc:
        raise ClipReadError(f"{_name(source)}: {type(exc).__name__}: {exc}") from exc
    if last is None:
        raise ClipReadError(f"{_name(source)}: no frames decoded")
    read = np.array([i if i in got else last for i in idx.tolist()], dtype=np.int64)
    first = got[int(read[0])]
    out = np.empty((len(read),) + first.shape, dtype=np.uint8)
    for k, i in enumerate(read.tolist()):
        out[k] = got[i]
    return out, read


def _reformatter() -> VideoReformatter:
    """This process's swscale context cache (a new one after a fork)."""
    pid = os.getpid()
    if _SWS["pid"] != pid:
        _SWS["pid"], _SWS["reformatter"] = pid, VideoReformatter()
    return _SWS["reformatter"]


def frame_rgb(frame, size: tuple[int, int] | None, rotation: int) -> np.ndarray:
    """RGB uint8 of a frame at display `size` (w, h), rotation applied: media.decode.frame_to_rgb's
    pixels (scaled in the coded orientation with the area filter, then turned), fork-safe."""
    if size is None:
        w, h = frame.width, frame.height
        interp = None
    else:
        w, h = size
        if rotation in (90, 270):
            w, h = h, w
        interp = Interpolation.AREA
    arr = _reformatter().reformat(frame, width=w, height=h, format="rgb24", interpolation=interp,
                                  threads=1).to_ndarray()
    if rotation:
        arr = np.ascontiguousarray(np.rot90(arr, k=(rotation // 90) % 4))
    return arr


class _Converter:
    """Frame -> RGB at the cover size, centre-cropped; geometry fixed from the first frame."""

    def __init__(self, stream, out_hw: tuple[int, int] | None):
        self.stream, self.out_hw, self.geo = stream, out_hw, None

    def __call__(self, frame) -> np.ndarray:
        rot = int(round(frame.rotation or 0)) % 360
        if self.geo is None:
            cw, ch = frame.width, frame.height
            sar = effective_sar(cw, ch, sample_aspect(self.stream))
            dw, dh = display_size(cw, ch, sar, rot)
            oh, ow = self.out_hw if self.out_hw is not None else (dh, dw)
            sw, sh, x0, y0 = cover_crop(dw, dh, oh, ow)
            natural = (ch, cw) if rot in (90, 270) else (cw, ch)
            size = None if (sw, sh) == natural and sar == 1 else (sw, sh)
            self.geo = (size, x0, y0, oh, ow)
        size, x0, y0, oh, ow = self.geo
        rgb = frame_rgb(frame, size, rot)
        if rgb.shape[0] != oh or rgb.shape[1] != ow:
            rgb = rgb[y0:y0 + oh, x0:x0 + ow]
        return np.ascontiguousarray(rgb)


def _frame_rate(stream) -> Fraction | None:
    rate = stream.guessed_rate or stream.base_rate or stream.average_rate
    return Fraction(rate) if rate else None


def _decode(source, wanted: list[int], out_hw, threads: int, named: bool, skip_nonref: bool):
    """({index: rgb} for the wanted indices decoded, index of the last decoded frame).

    named: frames are named by pts (seeking first when the first wanted frame is not 0) and,
    with `skip_nonref`, packets of frames nobody wants that no other frame references are not
    decoded; else frames are counted from the start of the clip."""
    container, stream = open_clip(source, threads)
    frames = None
    try:
        convert = _Converter(stream, out_hw)
        want = set(wanted)
        got: dict[int, np.ndarray] = {}
        if named:
            name = _namer(container, stream)
            if wanted[0] > 0:
                container.seek(name.pts_of(wanted[0]), stream=stream, backward=True, any_frame=False)
            frames = _named_frames(container, stream, name, want, wanted[-1], skip_nonref and threads == 1)
        else:
            frames = enumerate(container.decode(stream))
        last_i, last_frame, prev = None, None, None
        for i, frame in frames:
            if named:
                if prev is None and i > wanted[0]:
                    raise _LostTrack()                  # the seek landed past the first frame wanted
                if prev is not None and (i <= prev or any(k in want for k in range(prev + 1, i))):
                    raise _LostTrack()                  # out of order, or a wanted frame never came
            prev = i
            if i in want:
                got[i] = convert(frame)
            last_i, last_frame = i, frame
            if i >= wanted[-1]:
                break
        if last_i is not None and last_i not in got and last_i < wanted[-1]:
            got[last_i] = convert(last_frame)          # the clip ended early: keep its last frame
        return got, last_i
    finally:
        if frames is not None and hasattr(frames, "close"):
            frames.close()
        container.close()


class _Namer:
    """frame or packet pts -> frame index, (pts - start_time) / ticks per frame, exact to 1/4."""

    def __init__(self, start: int, per_frame: Fraction):
        self.start, self.per_frame = start, per_frame

    def pts_of(self, index: int) -> int:
        return self.start + int(index * self.per_frame)

    def index(self, pts) -> int | None:
        if pts is None:
            return None
        exact = (pts - self.start) / self.per_frame
        i = round(exact)
        if abs(exact - i) > Fraction(1, 4) or i < 0:
            return None
        return int(i)

    def __call__(self, frame) -> int:
        i = self.index(frame.pts)
        if i is None:
            raise _LostTrack()
        return i


def _namer(container, stream) -> _Namer:
    """The pts namer of a stream; _LostTrack when pts cannot name frames from the start: no
    frame rate or start time, or a first packet that is not a keyframe at start_time."""
    rate, tb = _frame_rate(stream), stream.time_base
    if rate is None or tb is None or rate <= 0 or stream.start_time is None:
        raise _LostTrack()
    start = int(stream.start_time)
    packets = container.demux(stream)
    try:
        head = next(packets, None)                   # frame 0 must be the first packet, at start_time
    finally:
        packets.close()
    if head is None or head.pts is None or int(head.pts) != start or not head.is_keyframe:
        raise _LostTrack()
    container.seek(start, stream=stream, backward=True, any_frame=False)   # back to frame 0
    return _Namer(start, 1 / (Fraction(tb) * rate))


def _named_frames(container, stream, name: _Namer, want: set[int], last: int, skip_nonref: bool):
    """(index, frame) in presentation order, decoding packet by packet. With skip_nonref the
    decoder drops the packets of unwanted frames before the last wanted one that are not
    references (FFmpeg skip_frame NONREF: no other frame predicts from them, so every wanted
    frame decodes to the same pixels); the single-threaded decoder applies it to that packet."""
    ctx = stream.codec_context
    try:
        for packet in container.demux(stream):
            if skip_nonref:
                j = name.index(packet.pts)
                ctx.skip_frame = "NONREF" if j is not None and j < last and j not in want else "DEFAULT"
            for frame in packet.decode():
                yield name(frame), frame
    finally:
        if skip_nonref:
            ctx.skip_frame = "DEFAULT"
