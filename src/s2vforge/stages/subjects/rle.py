"""COCO run-length encoding of binary masks, written in numpy (no pycocotools at run time).

`subjects.parquet` stores each mask as a COCO RLE `{"size": [h, w], "counts": str}` in the
compressed string form of pycocotools' maskApi.c, the format OpenS2V-Nexus writes (it stores
`mask_util.encode(...)["counts"].decode("utf-8")`), so the masks open with pycocotools,
Detectron2, SAM tooling and friends unchanged.

Format (maskApi.c `rleEncode` / `rleToString`):

1. Flatten the mask in column-major (Fortran) order and count alternating runs, starting
   with a run of zeros (0 when the first pixel is set). An empty image (h*w = 0) is `[0]`.
2. From the fourth run on (index i > 2: the original's quirk, kept) store the difference to
   the run two places before, which is small because runs of the same value tend to repeat.
3. Write each (signed) value as 5-bit groups, least significant first, each group + 48 as an
   ASCII char; bit 0x20 marks "more groups follow", bit 0x10 of the last group is the sign.

Encoded bytes are identical to pycocotools' (checked in tests/subjects_masks/test_rle.py).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def mask_runs(mask: np.ndarray) -> np.ndarray:
    """Alternating run lengths (zeros first) of a 2-D mask in column-major order, int64."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (h, w), got shape {m.shape}")
    flat = m.astype(bool).ravel(order="F")
    n = flat.size
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [n]))
    runs = np.diff(bounds).astype(np.int64)
    if flat[0]:
        runs = np.concatenate(([0], runs))
    return runs


def runs_to_string(runs: Sequence[int] | np.ndarray) -> str:
    """maskApi.c rleToString: delta (i > 2) + LEB128-like 5-bit ASCII groups."""
    cnts = [int(c) for c in runs]
    out: list[str] = []
    for i, c in enumerate(cnts):
        x = c - cnts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5  # arithmetic shift, as on C longs
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def string_to_runs(counts: str | bytes) -> np.ndarray:
    """maskApi.c rleFrString: the inverse of runs_to_string."""
    s = counts.decode("ascii") if isinstance(counts, (bytes, bytearray)) else counts
    cnts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("truncated RLE string")
            c = ord(s[p]) - 48
            if c < 0 or c > 63:
                raise ValueError(f"invalid character {s[p]!r} in RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        cnts.append(x)
    return np.asarray(cnts, dtype=np.int64)


def mask_to_rle(mask: np.ndarray) -> dict:
    """Binary HxW mask (any dtype; nonzero = set) -> `{"size": [h, w], "counts": str}`."""
    m = np.asarray(mask)
    runs = mask_runs(m)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": runs_to_string(runs)}


def _size_and_runs(rle: Mapping) -> tuple[int, int, np.ndarray]:
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a COCO RLE (need 'size': [h, w] and 'counts'): {exc}") from exc
    if isinstance(counts, (str, bytes, bytearray)):
        runs = string_to_runs(counts)
    else:  # uncompressed RLE: a list of run lengths
        runs = np.asarray(list(counts), dtype=np.int64)
    if runs.size and runs.min() < 0:
        raise ValueError("RLE has a negative run length")
    if int(runs.sum()) != h * w:
        raise ValueError(f"RLE runs sum to {int(runs.sum())} pixels but size is {h}x{w} = {h * w}")
    return h, w, runs


def rle_to_mask(rle: Mapping) -> np.ndarray:
    """COCO RLE (compressed string or uncompressed list counts) -> bool HxW mask."""
    h, w, runs = _size_and_runs(rle)
    values = (np.arange(runs.size) % 2).astype(bool)
    flat = np.repeat(values, runs)
    return flat.reshape((h, w), order="F")


def rle_area(rle: Mapping) -> int:
    """Set pixels, from the runs alone (odd runs are ones)."""
    _, _, runs = _size_and_runs(rle)
    return int(runs[1::2].sum())


def rle_iou(a: Mapping, b: Mapping) -> float:
    """Intersection over union of two masks of the same size; 0.0 when both are empty."""
    ma, mb = rle_to_mask(a), rle_to_mask(b)
    if ma.shape != mb.shape:
        raise ValueError(f"RLE sizes differ: {list(ma.shape)} vs {list(mb.shape)}")
    union = int(np.count_nonzero(ma | mb))
    if union == 0:
        return 0.0
    return int(np.count_nonzero(ma & mb)) / union


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight (x0, y0, x1, y1) box of a mask, exclusive x1/y1; None when empty."""
    m = np.asarray(mask, dtype=bool)
    cols = np.flatnonzero(m.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(m.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
