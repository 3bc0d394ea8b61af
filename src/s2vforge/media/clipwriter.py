"""Write kept clips as H.264/yuv420p MP4 with the crop applied, atomically.

Clips of one video are written in one forward decode (seeking only across long gaps), so a
video costs one extra partial decode however many clips it keeps.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .decode import frame_to_rgb, open_video

SEEK_GAP_S = 5.0  # seek instead of decoding through gaps longer than this


@dataclass
class ClipSpec:
    clip_id: str
    start_s: float
    end_s: float                      # exclusive
    crop: tuple[int, int, int, int]   # display pixels
    out_path: Path


def write_clips(path: str | bytes, specs: list[ClipSpec], rotation: int, fps: float, *, crf: int = 20,
                preset: str = "veryfast", threads: int = 1, max_long_side: int | None = None) -> dict[str, int]:
    """Encode every spec; return frames written per clip_id. Files appear only when complete."""
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
                written[spec.clip_id] = _encode_one(frames, spec, rotation, fps, eps, crf, preset, max_long_side)
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
                max_long_side: int | None) -> int:
    x0, y0, x1, y1 = spec.crop
    out_w, out_h = x1 - x0, y1 - y0
    scale = 1.0
    if max_long_side and max(out_w, out_h) > max_long_side:
        scale = max_long_side / max(out_w, out_h)
    enc_w, enc_h = (max(2, int(out_w * scale) // 2 * 2), max(2, int(out_h * scale) // 2 * 2))
    passthrough = rotation == 0 and (x0, y0) == (0, 0) and scale == 1.0
    spec.out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = spec.out_path.with_name(f".{spec.out_path.name}.part")
    n = 0
    out = av.open(str(tmp), mode="w", format="mp4")
    try:
        rate = Fraction(fps).limit_denominator(1001)
        ost = out.add_stream("libx264", rate=rate)
        ost.width, ost.height, ost.pix_fmt = enc_w, enc_h, "yuv420p"
        ost.options = {"crf": str(crf), "preset": preset}
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
        tmp.unlink(missing_ok=True)
        raise
    out.close()
    if n == 0:
        tmp.unlink(missing_ok=True)
        return 0
    os.replace(tmp, spec.out_path)
    return n
