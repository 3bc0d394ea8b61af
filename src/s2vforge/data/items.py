"""One training item from one sample row: frames + references, numpy only.

The same function builds items for the map-style dataset (files in an export folder) and the
shard iterable (members of a tar), so both give the same layout:

    sample_id      str
    frames         uint8 [T, H, W, 3] RGB (float32 with normalize: zero_one or minus_one_one)
    frame_indices  int64 [T]  the clip frame each one is (decode order)
    stride         int        the stride used (smaller than asked for a short clip, see frames.py)
    fps            float      of the clip
    caption        str        on one line, as the export writes it ("" when the sample has none)
    refs           uint8 [N, h, w, 4] RGBA letterboxed to ref_size (a list of arrays when ref_size is null)
    ref_masks      bool  [N, h, w] (alpha >= 128)
    ref_kinds, ref_ids, ref_phrases   lists of str
    ref_similarity float32 [N] (NaN for self)
    n_refs         int        references actually there
    valid_refs     bool [max_refs]  when padded to max_refs
    ref_dropped    str        "<subject_id>:<reason>; ..." for every reference left out
    bucket         int        index into buckets (only with buckets)
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .frames import frame_indices, sample_rng
from .refs import choose_and_load, reference_fields
from .settings import LoaderSettings
from .video import ClipReadError, read_frames


def normalize_frames(frames: np.ndarray, mode: str | None) -> np.ndarray:
    if mode is None:
        return frames
    f = frames.astype(np.float32)
    if mode == "zero_one":
        return f / np.float32(255.0)
    if mode == "minus_one_one":
        return f / np.float32(127.5) - np.float32(1.0)
    raise ValueError(f"normalize must be null, zero_one or minus_one_one, got {mode!r}")


def build_item(sample: Mapping, clip_source, open_ref: Callable[[int, Mapping], object], st: LoaderSettings,
               epoch: int, out_hw: tuple[int, int], caption: str | None = None, bucket: int | None = None) -> dict:
    """The item of one sample row (module docstring). ClipReadError names the sample when its
    clip cannot be decoded."""
    sid = str(sample.get("sample_id") or sample.get("clip_id"))
    rng = sample_rng(st.seed, epoch, sid) if st.sampling == "random" else None
    idx, stride = frame_indices(int(sample["n_frames"]), st.num_frames, st.stride, st.short, st.sampling, rng)
    try:
        frames, read = read_frames(clip_source, idx, out_hw, st.decode_threads)
    except ClipReadError as exc:
        raise ClipReadError(f"sample {sid}: {exc}") from exc
    loaded, dropped = choose_and_load(sample, st.refs, st.duplicate_mask_iou, st.max_refs, open_ref)
    fps = sample.get("fps")
    text = caption if caption is not None else sample.get("caption")
    item = {"sample_id": sid, "frames": normalize_frames(frames, st.normalize), "frame_indices": read,
            "stride": int(stride), "fps": float(fps) if fps is not None else float("nan"),
            "caption": " ".join(str(text or "").split())}
    item.update(reference_fields(loaded, dropped, st.ref_size, st.max_refs))
    if bucket is not None:
        item["bucket"] = int(bucket)
    return item
