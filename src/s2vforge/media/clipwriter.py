"""Encode kept clips as H.264/yuv420p MP4 with the crop applied.

Clips of one video are written in one forward decode (seeking only across long gaps), so a
video costs one extra partial decode however many clips it keeps. The files are written where
the caller says (the stage's scratch folder); the driver moves them into the dataset.

Frames are selected by decode index (`ClipSpec.start_frame/end_frame`, the indices curation
planned on), never by comparing times: after a seek, a frame's index is found from its pts in
the analysis pass's `frame_pts`; where pts do not name one frame (a splice that restarts them,
missing pts) or a seek lands somewhere unexpected, the clips are written from one sequential
decode from the start, counting frames. So a clip holds exactly the frames its row says.

Pixels: `crop` is in display pixels (square, sample aspect ratio applied). With
`square_pixels` a source of non-square pixels is resampled to its display size before the crop
(the clip has SAR 1:1); otherwise the coded pixels are cropped (crop mapped onto them) and the
clip carries the source's SAR.

Reproducible bytes: a clip depends only on its source, the recipe and the package version.
x264 runs single-threaded (its output depends on its thread count) with a pinned instruction
set (`write.x264_asm`): its AVX-512 code is not deterministic run to run (measured: 5 different
outputs in 8 encodes of one clip), and its SSSE3+ code gives other bytes than its C code.
`portable` = SSE2 on x86-64, which matches x264's C code bit for bit, and the C code elsewhere;
`native` lets x264 pick (fastest, bytes differ across CPUs). The muxer writes no creation
time or version string (bitexact).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

from .decode import FrameClock, display_size, frame_to_rgb, open_video

SEEK_GAP_S = 5.0  # seek instead of decoding through gaps longer than this
SEEK_MARGIN_S = 0.5  # seek this far before a clip's first frame (then decode forward to it)
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
    start_frame: int | None = None    # decode index of the first frame; when set, frames are chosen by index
    end_frame: int | None = None      # exclusive


@dataclass(frozen=True)
class _Geometry:
    """How one clip's pixels are made from a decoded frame."""
    size: tuple[int, int] | None      # frame_to_rgb size (display size when resampling), None = coded pixels
    box: tuple[int, int, int, int]    # crop in the pixels frame_to_rgb gives
    enc: tuple[int, int]              # encoded (w, h)
    sar: Fraction                     # SAR of the encoded pixels
    passthrough: bool                 # encode decoded frames as they are


def clip_geometry(crop: tuple[int, int, int, int], coded: tuple[int, int], rotation: int, sar: Fraction,
                  square_pixels: bool, max_long_side: int | None) -> _Geometry:
    """The pixel plan of a clip whose `crop` is in display pixels (see the module docstring)."""
    cw, ch = coded
    dw, dh = display_size(cw, ch, sar, rotation)
    grid = (ch, cw) if rotation in (90, 270) else (cw, ch)        # coded pixels, turned
    x0, y0, x1, y1 = (int(v) for v in crop)
    if sar == 1 or (dw, dh) == grid:
        size, box, out_sar = None, (x0, y0, x1, y1), Fraction(1)
    elif square_pixels:
        size, box, out_sar = (dw, dh), (x0, y0, x1, y1), Fraction(1)
    else:
        fx, fy = grid[0] / dw, grid[1] / dh
        bx0, by0 = int(round(x0 * fx)), int(round(y0 * fy))
        box = (bx0, by0, max(bx0 + 2, min(grid[0], int(round(x1 * fx)))),
               max(by0 + 2, min(grid[1], int(round(y1 * fy)))))
        size, out_sar = None, (sar if rotation not in (90, 270) else 1 / sar)
    out_w, out_h = box[2] - box[0], box[3] - box[1]
    scale = 1.0
    if max_long_side and max(out_w, out_h) > max_long_side:
        scale = max_long_side / max(out_w, out_h)
    enc = (max(2, int(out_w * scale) // 2 * 2), max(2, int(out_h * scale) // 2 * 2))
    passthrough = rotation == 0 and size is None and box[:2] == (0, 0) and scale == 1.0
    return _Geometry(size, box, enc, Fraction(out_sar), passthrough)


def write_clips(path: str | bytes, specs: list[ClipSpec], rotation: int, fps: float, *, crf: int, preset: str,
                threads: int = 1, max_long_side: int | None = None, x264_asm: str = "portable",
                frame_pts: Sequence[int | None] | None = None, sample_aspect: Fraction = Fraction(1),
                square_pixels: bool = True) -> dict[str, int]:
    """Encode every spec; return frames written per clip_id (0: nothing written, no file).

    `frame_pts`: the raw pts of every decoded frame, in decode order (FrameClock.pts of the
    analysis pass); given with index specs and strictly increasing, clips after long gaps are
    reached by seeking. Time specs (no start_frame) are matched against the FrameClock of a
    sequential decode."""
    written: dict[str, int] = {}
    if not specs:
        return written
    by_index = all(s.start_frame is not None and s.end_frame is not None for s in specs)
    specs = sorted(specs, key=(lambda s: (s.start_frame, s.end_frame)) if by_index else (lambda s: s.start_s))
    eps = 0.25 / max(fps, 1.0)
    asm = x264_asm_flags(x264_asm)
    index_of = _pts_index(frame_pts) if by_index and frame_pts and max(s.end_frame for s in specs) <= len(frame_pts) else None

    def encode(frames, spec, coded) -> int:
        geo = clip_geometry(spec.crop, coded, rotation, sample_aspect, square_pixels, max_long_side)
        return _encode_one(frames, spec, geo, rotation, fps, eps, crf, preset, asm)

    done = 0
    if index_of is not None:
        try:
            done = _write_seeking(path, specs, threads, fps, frame_pts, index_of, encode, written)
        except _LostTrack:
            done = len(written)           # redo the clip in progress (its file is removed) and the rest
    if done < len(specs):
        _write_sequential(path, specs[done:], threads, encode, written)
    return written


class _LostTrack(Exception):
    """After a seek, the decoded frames could not be matched to decode indices."""


def _pts_index(frame_pts: Sequence[int | None] | None) -> dict[int, int] | None:
    """pts -> decode index, when every frame has a pts and they strictly increase; else None."""
    if not frame_pts or any(p is None for p in frame_pts):
        return None
    pts = np.asarray(frame_pts, dtype=np.int64)
    if len(pts) > 1 and not np.all(np.diff(pts) > 0):
        return None
    return {int(p): i for i, p in enumerate(pts)}


def _coded(stream) -> tuple[int, int]:
    return int(stream.codec_context.width), int(stream.codec_context.height)


def _write_seeking(path, specs, threads, fps, frame_pts, index_of, encode, written) -> int:
    """Index specs in groups; a group starting more than SEEK_GAP_S after the previous clip is
    reached by a seek and its frames identified by pts. Returns the number of specs done."""
    gap_frames = SEEK_GAP_S * max(fps, 1.0)
    container, stream = open_video(path, threads)
    with container:
        coded = _coded(stream)
        i = 0
        frames = _Pushback(_indexed(container.decode(stream)))     # fresh: the analysis pass's order
        prev_end = 0
        while i < len(specs):
            if specs[i].start_frame - prev_end > gap_frames:
                tb = stream.time_base
                margin = int(SEEK_MARGIN_S / tb) if tb else 0
                container.seek(int(frame_pts[specs[i].start_frame]) - margin, stream=stream, backward=True,
                               any_frame=False)
                frames = _Pushback(_by_pts(container.decode(stream), index_of, specs[i].start_frame))
            while i < len(specs):
                spec = specs[i]
                n = encode(frames, spec, coded)
                if n != spec.end_frame - spec.start_frame:
                    # the analysis decoded these frames: a short clip here means the seek went
                    # astray (some demuxers seek badly across pts wraps), not a short file
                    spec.out_path.unlink(missing_ok=True)
                    raise _LostTrack()
                written[spec.clip_id] = n
                prev_end = spec.end_frame
                i += 1
                if i < len(specs) and specs[i].start_frame - prev_end > gap_frames:
                    break
        return i


def _write_sequential(path, specs, threads, encode, written) -> None:
    """Every remaining spec from one decode from the start, frames counted (and clocked)."""
    container, stream = open_video(path, threads)
    with container:
        coded = _coded(stream)
        frames = _Pushback(_clocked(container.decode(stream), stream))
        for spec in specs:
            written[spec.clip_id] = encode(frames, spec, coded)


def _indexed(decoded):
    for i, frame in enumerate(decoded):
        yield i, None, frame


def _clocked(decoded, stream):
    from .decode import stream_fps

    clock = FrameClock(stream_fps(stream))
    for i, frame in enumerate(decoded):
        yield i, clock.push(frame), frame


def _by_pts(decoded, index_of: dict[int, int], want: int):
    """(index, None, frame) after a seek: the index from the pts; _LostTrack when a pts is not a
    known frame, the seek landed past `want`, or frames stop following one another."""
    last = None
    for frame in decoded:
        i = index_of.get(frame.pts) if frame.pts is not None else None
        if i is None or (last is None and i > want) or (last is not None and i != last + 1):
            raise _LostTrack()
        last = i
        yield i, None, frame


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


@contextmanager
def mp4_output(dest: Path):
    """An MP4 muxer that writes no creation time or version string (bitexact); on any error the
    partial file is removed, so a failed encode leaves nothing behind."""
    out = av.open(str(dest), mode="w", format="mp4", container_options={"fflags": "+bitexact"})
    try:
        yield out
    except BaseException:
        out.close()
        Path(dest).unlink(missing_ok=True)
        raise
    out.close()


def encode_frame(out, ost, frame) -> None:
    """Encode one frame (None = flush the encoder) and mux what comes out."""
    for packet in ost.encode(frame):
        out.mux(packet)


def add_x264_stream(out, rate: Fraction, size: tuple[int, int], crf: int, preset: str, asm: str | None,
                    sar: Fraction = Fraction(1)):
    """The reproducible H.264/yuv420p stream every clip file is written with (module docstring)."""
    ost = out.add_stream("libx264", rate=rate)
    ost.width, ost.height, ost.pix_fmt = size[0], size[1], "yuv420p"
    if sar != 1:
        ost.codec_context.sample_aspect_ratio = sar   # x264 VUI and the MP4 pasp box
    ost.thread_count = 1                     # x264's output depends on its thread count: pin it
    ost.options = {"crf": str(crf), "preset": preset, "threads": "1",
                   **({"x264-params": f"asm={asm}"} if asm is not None else {})}
    return ost


def _encode_one(frames, spec: ClipSpec, geo: _Geometry, rotation: int, fps: float, eps: float, crf: int,
                preset: str, asm: str | None) -> int:
    x0, y0, x1, y1 = geo.box
    enc_w, enc_h = geo.enc
    by_index = spec.start_frame is not None
    spec.out_path.parent.mkdir(parents=True, exist_ok=True)
    dest = spec.out_path
    n = 0
    with mp4_output(dest) as out:
        rate = Fraction(fps).limit_denominator(1001)
        ost = add_x264_stream(out, rate, (enc_w, enc_h), crf, preset, asm, geo.sar)
        for item in frames:
            idx, t, frame = item
            if by_index:
                if idx < spec.start_frame:
                    continue
                if idx >= spec.end_frame:
                    frames.push(item)  # first frame of the next clip when clips are adjacent
                    break
            else:
                if t < spec.start_s - eps:
                    continue
                if t >= spec.end_s - eps:
                    frames.push(item)
                    break
            if geo.passthrough and frame.format.name == "yuv420p" and (frame.width, frame.height) == (enc_w, enc_h):
                vf = frame                       # no crop, no rotation, no scaling: encode as decoded
                vf.pict_type = av.video.frame.PictureType.NONE
                vf.time_base = 1 / rate          # pts below count output frames, not source ticks
            else:
                rgb = frame_to_rgb(frame, geo.size, int(round(frame.rotation or 0)) % 360 if rotation else 0)
                rgb = rgb[y0:y1, x0:x1]
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                if (enc_w, enc_h) != (rgb.shape[1], rgb.shape[0]):
                    vf = vf.reformat(width=enc_w, height=enc_h)
            vf.pts = n
            encode_frame(out, ost, vf)
            n += 1
        encode_frame(out, ost, None)
    if n == 0:
        dest.unlink(missing_ok=True)
    return n
