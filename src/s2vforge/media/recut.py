"""Re-cutting a clip to a model's frame rate and frame count (export.clip).

Video diffusion trainers read a fixed frame rate and a fixed length: Wan trains on 81 frames
at 16 fps, and its causal VAE needs 4k+1 frames. `recut_indices` picks, for every output frame
k, the source frame nearest to time k / fps_out (never past the clip's end); `recut_clip`
encodes them with the clip writer's reproducible x264 settings, so a re-cut file depends only
on its source and the recipe.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from .clipwriter import add_x264_stream, encode_frame, mp4_output, x264_asm_flags
from .decode import frame_to_rgb, open_video

LENGTH_RULES = ("any", "4k+1")


def fit_length(n: int, rule: str) -> int:
    """The longest length <= n that the rule allows (4k+1: 1, 5, 9, ...; 0 when n < 1)."""
    if rule not in LENGTH_RULES:
        raise ValueError(f"export.clip.length_rule must be one of {', '.join(LENGTH_RULES)}, got {rule!r}")
    if n < 1:
        return 0
    return n if rule == "any" else (n - 1) // 4 * 4 + 1


def recut_indices(n_src: int, fps_src: float, fps_out: float | None, frames: int | None, rule: str) -> list[int]:
    """Source frame indices of the re-cut clip (from the clip's start): at fps_out (None = the
    source rate), at most `frames` of them (None = as many as the clip holds), cut to the rule."""
    if n_src <= 0 or fps_src <= 0:
        return []
    fps_out = float(fps_out or fps_src)
    step = fps_src / fps_out
    n_avail = int(math.floor((n_src - 1) / step + 1e-9)) + 1   # output frames whose source frame exists
    n = fit_length(min(n_avail, int(frames)) if frames else n_avail, rule)
    return [min(n_src - 1, int(round(k * step))) for k in range(n)]


def recut_clip(src: Path, dest: Path, indices: list[int], fps_out: float, *, crf: int, preset: str,
               x264_asm: str = "portable") -> int:
    """Encode the frames `indices` (ascending, repeats allowed) of `src` to `dest` at fps_out;
    the number of frames written."""
    if not indices:
        return 0
    want = list(indices)
    last = want[-1]
    container, stream = open_video(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with container, mp4_output(dest) as out:
        rate = Fraction(fps_out).limit_denominator(1001)
        w, h = stream.codec_context.width // 2 * 2, stream.codec_context.height // 2 * 2
        ost = add_x264_stream(out, rate, (w, h), crf, preset, x264_asm_flags(x264_asm))
        pos = 0
        for i, frame in enumerate(container.decode(stream)):
            while pos < len(want) and want[pos] == i:      # a repeated index (upsampling) repeats the frame
                vf = av_frame(frame_to_rgb(frame, None, 0)[:h, :w])
                vf.pts = n
                encode_frame(out, ost, vf)
                n += 1
                pos += 1
            if i >= last:
                break
        encode_frame(out, ost, None)
    return n


def av_frame(rgb: np.ndarray):
    import av
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
