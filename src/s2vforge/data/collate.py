"""collate: batch items whose references are ragged (ref_size null, no max_refs padding).

torch's default_collate stacks every field and fails on references of different counts or
sizes; this one stacks what has one shape across the batch (frames, frame_indices, numbers) and
keeps the rest as per-sample lists (refs, ref_masks, ref_kinds, captions, ...; default_collate
would give a string list such as ref_kinds slot-major, one tuple of B per slot). With
`to_torch` (default) arrays become tensors; torch is imported only then.
"""
from __future__ import annotations

import numbers

import numpy as np


def _stackable(values: list) -> bool:
    if not all(isinstance(v, np.ndarray) for v in values):
        return False
    first = values[0]
    return first.dtype.kind in "biuf" and all(v.shape == first.shape and v.dtype == first.dtype for v in values)


def collate(batch: list[dict], to_torch: bool = True) -> dict:
    """One dict per batch: stacked where shapes agree, lists elsewhere (see the module doc)."""
    if not batch:
        raise ValueError("collate: empty batch")
    tensor = None
    if to_torch:
        import torch
        tensor = torch.from_numpy
    out: dict = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if _stackable(values):
            stacked = np.stack(values)
            out[key] = tensor(stacked) if tensor else stacked
        elif all(isinstance(v, (numbers.Number, np.generic)) and not isinstance(v, bool) for v in values) or \
                all(isinstance(v, (bool, np.bool_)) for v in values):
            arr = np.asarray(values)
            out[key] = tensor(arr) if tensor else arr
        elif tensor and all(isinstance(v, list) and all(isinstance(a, np.ndarray) for a in v) for v in values):
            out[key] = [[tensor(np.ascontiguousarray(a)) for a in v] for v in values]
        elif tensor and all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in values):
            out[key] = [tensor(np.ascontiguousarray(v)) for v in values]
        else:
            out[key] = values
    return out
