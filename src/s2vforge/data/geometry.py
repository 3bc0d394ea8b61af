"""Where a frame lands in a sample: aspect-preserving cover scale + centre crop, and buckets.

`cover_crop`: the frame is scaled (aspect kept) to the smallest size that covers (H, W), then
the centre (H, W) window is kept, so nothing is stretched and nothing is padded. With
`buckets`, each sample goes to the bucket whose aspect ratio is closest to its own (distance
in log aspect, so 2:1 and 1:2 are equally far from 1:1; ties go to the earlier bucket).
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def cover_crop(src_w: int, src_h: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """(scaled_w, scaled_h, x0, y0): scale the source to (scaled_w, scaled_h), keep
    [y0:y0+out_h, x0:x0+out_w]."""
    if src_w <= 0 or src_h <= 0:
        raise ValueError(f"frame size must be positive, got {src_w}x{src_h}")
    scale = max(out_w / src_w, out_h / src_h)
    sw = max(out_w, int(round(src_w * scale)))
    sh = max(out_h, int(round(src_h * scale)))
    return sw, sh, (sw - out_w) // 2, (sh - out_h) // 2


def bucket_for(width: int, height: int, buckets: Sequence[tuple[int, int]]) -> int:
    """Index of the (H, W) bucket with the aspect ratio closest to width / height."""
    if not buckets:
        raise ValueError("no buckets")
    if not width or not height or width <= 0 or height <= 0:
        raise ValueError(f"cannot bucket a frame of size {width}x{height}")
    a = math.log(width / height)
    best, best_d = 0, math.inf
    for i, (bh, bw) in enumerate(buckets):
        d = abs(a - math.log(bw / bh))
        if d < best_d - 1e-12:
            best, best_d = i, d
    return best
