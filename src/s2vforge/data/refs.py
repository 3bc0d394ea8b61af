"""A sample's subject references: which ones, checked, read as RGBA, letterboxed so they stack.

Selection (`refs`): `self` = kind self (a crop of this clip); `cross` = cross_clip /
cross_video (a crop of another clip or video of the same identity); `both` = those three
kinds; `any` = every reference whatever its kind (synthetic ones too). The table's order is
kept; at most `max_refs` are returned.

A reference is dropped, with a reason in `ref_dropped` ("<subject_id>:<reason>"), never a
crash, when it is not a subject or not what it says it is. These guard against the defects
of OpenS2V-Nexus's demo dataloader (docs/loader.md has the file and lines):
- `empty_mask`: its alpha has no pixel set (theirs crashes unpacking None);
- `background_phrase`: its phrase is one of the sample's background tags (theirs returns
  every grounded class, backgrounds included, as a subject);
- `duplicate_mask`: the subject id of an earlier returned reference, or the same source clip and
  frame and a mask IoU above export.refs.duplicate_mask_iou (from mask_rle, or from the crops'
  alpha at their bboxes where the row has no RLE, as in shards) (theirs returns duplicate masks
  as more subjects);
- `cross_from_own_clip`, `self_from_other_clip`, `source_mismatch`, `path_mismatch`: the
  reference's kind, source clip, subject id and file disagree (theirs takes a cross-frame
  sample's id and key from two different random picks, and once took its annotations from the
  main clip): a cross reference's pixels come only from its own source clip's crop;
- `missing_file`, `unreadable: ...`: the crop cannot be read.
Pixels are read with PIL as RGBA in file order (R, G, B, A): no BGR conversion anywhere.
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath

import cv2
import numpy as np

from ..stages.subjects.rle import rle_iou

CROSS_KINDS = ("cross_clip", "cross_video")
VIDEO_KINDS = ("self",) + CROSS_KINDS
MASK_THRESHOLD = 128          # alpha >= this is inside the mask (crops are written 0/255)


def kind_selected(kind: str | None, choice: str) -> bool:
    if choice == "any":
        return True
    if choice == "self":
        return kind == "self"
    if choice == "cross":
        return kind in CROSS_KINDS
    if choice == "both":
        return kind in VIDEO_KINDS
    raise ValueError(f"refs must be self, cross, both or any, got {choice!r}")


def structural_problem(ref: Mapping, sample: Mapping, background: set[str]) -> str | None:
    """Why a reference cannot be this sample's subject, from its fields alone (None: fine)."""
    phrase = (ref.get("phrase") or "").strip().lower()
    if phrase and phrase in background:
        return "background_phrase"
    kind, src, sid = ref.get("kind"), ref.get("source_clip_id"), ref.get("subject_id") or ""
    if kind not in VIDEO_KINDS or ref.get("synthetic"):
        return None                                 # generated views: no clip to agree with
    clip_id = sample.get("clip_id") or sample.get("sample_id")
    if kind == "self" and src is not None and clip_id is not None and src != clip_id:
        return "self_from_other_clip"
    if kind in CROSS_KINDS and src is not None and src == clip_id:
        return "cross_from_own_clip"
    if src is not None and sid and not sid.startswith("bank:") and not sid.startswith(f"{src}-"):
        return "source_mismatch"
    path = ref.get("rgba_path")
    if path and sid and not sid.startswith("bank:"):
        name = PurePosixPath(str(path).replace(os.sep, "/")).name
        if name != f"{sid}.png":
            return "path_mismatch"
    return None


def _placed_iou(a: Mapping, alpha_a: np.ndarray, b: Mapping, alpha_b: np.ndarray) -> float | None:
    """Mask IoU of two crops from their alpha placed at their bboxes (the frame they share); None
    when a crop's size is not its bbox's."""
    boxes = []
    for ref, alpha in ((a, alpha_a), (b, alpha_b)):
        box = ref.get("bbox")
        if not box or len(box) != 4:
            return None
        x0, y0, x1, y1 = (int(v) for v in box)
        if (y1 - y0, x1 - x0) != alpha.shape:
            return None
        boxes.append((x0, y0, x1, y1))
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes
    ma, mb = alpha_a >= MASK_THRESHOLD, alpha_b >= MASK_THRESHOLD
    ix0, iy0, ix1, iy1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    inter = 0
    if ix0 < ix1 and iy0 < iy1:
        inter = int(np.count_nonzero(ma[iy0 - ay0:iy1 - ay0, ix0 - ax0:ix1 - ax0]
                                     & mb[iy0 - by0:iy1 - by0, ix0 - bx0:ix1 - bx0]))
    union = int(ma.sum()) + int(mb.sum()) - inter
    return inter / union if union else 0.0


def same_subject(a: Mapping, rgba_a: np.ndarray, b: Mapping, rgba_b: np.ndarray, bound: float) -> bool:
    """Whether b repeats a: the same subject id, or a mask of the same source frame with IoU above
    `bound` (from mask_rle when both have one, else from the crops' alpha at their bboxes, as in
    shards, whose JSON carries no RLE)."""
    if a.get("subject_id") and a.get("subject_id") == b.get("subject_id"):
        return True
    if a.get("source_clip_id") != b.get("source_clip_id") or a.get("frame_idx") != b.get("frame_idx"):
        return False
    iou = None
    if a.get("mask_rle") and b.get("mask_rle"):
        try:
            iou = rle_iou(json.loads(a["mask_rle"]), json.loads(b["mask_rle"]))
        except (ValueError, TypeError, KeyError):
            iou = None
    if iou is None:
        iou = _placed_iou(a, rgba_a[..., 3], b, rgba_b[..., 3])
    return iou is not None and iou > bound


def load_rgba(source) -> np.ndarray:
    """HxWx4 uint8 RGBA of a PNG path or its bytes, channels in file order."""
    from PIL import Image

    fh = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")
    with fh, Image.open(fh) as im:
        im.load()
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")
        return np.array(rgba, dtype=np.uint8)


def choose_and_load(sample: Mapping, choice: str, iou_bound: float, max_refs: int | None,
                    open_ref: Callable[[int, Mapping], object]) -> tuple[list[tuple[Mapping, np.ndarray]], list[str]]:
    """([(reference, rgba)] in table order, ["<subject_id>:<reason>" for each dropped one]).

    `open_ref(position, ref)` gives what load_rgba reads (a path or bytes) for the reference at
    `position` of sample["references"], or None when there is no such file."""
    background = {str(t).strip().lower() for t in sample.get("background_tags") or []}
    kept: list[tuple[Mapping, np.ndarray]] = []
    dropped: list[str] = []
    for pos, ref in enumerate(sample.get("references") or []):
        if max_refs is not None and len(kept) >= max_refs:
            break
        if not kind_selected(ref.get("kind"), choice):
            continue
        sid = ref.get("subject_id") or f"#{pos}"
        reason = structural_problem(ref, sample, background)
        rgba = None
        if reason is None:
            src = open_ref(pos, ref)
            if src is None or (isinstance(src, (str, os.PathLike)) and not os.path.isfile(src)):
                reason = "missing_file"
            else:
                try:
                    rgba = load_rgba(src)
                except Exception as exc:   # PIL raises many kinds on a bad file: all mean unreadable
                    reason = f"unreadable: {type(exc).__name__}: {exc}"
        if reason is None and not (rgba[..., 3] >= MASK_THRESHOLD).any():
            reason = "empty_mask"
        if reason is None and any(same_subject(prev, prev_rgba, ref, rgba, iou_bound) for prev, prev_rgba in kept):
            reason = "duplicate_mask"
        if reason is not None:
            dropped.append(f"{sid}:{reason}")
            continue
        kept.append((ref, rgba))
    return kept, dropped


def letterbox(rgba: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The RGBA image scaled (aspect kept) to fit (h, w) and centred on transparent pixels.

    Scaled premultiplied by alpha, so the colour of transparent pixels never bleeds into the
    subject's edge."""
    h, w = size
    H, W = rgba.shape[:2]
    s = min(h / H, w / W)
    nw, nh = max(1, min(w, int(round(W * s)))), max(1, min(h, int(round(H * s))))
    if (nw, nh) == (W, H):
        small = rgba
    else:
        *rgb, a = cv2.split(np.ascontiguousarray(rgba))
        pre = cv2.merge([cv2.multiply(c, a, scale=1 / 255) for c in rgb] + [a])          # premultiplied
        small = cv2.resize(pre, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        *rgb, a = cv2.split(small)
        small = cv2.merge([cv2.divide(c, a, scale=255) for c in rgb] + [a])                # 0 where alpha is 0
    out = np.zeros((h, w, 4), dtype=np.uint8)
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def reference_fields(loaded: Sequence[tuple[Mapping, np.ndarray]], dropped: Sequence[str],
                     ref_size: tuple[int, int] | None, max_refs: int | None) -> dict:
    """The item's reference keys: refs, ref_masks, ref_kinds, ref_similarity, ref_ids,
    ref_phrases, n_refs, ref_dropped, and valid_refs when padded to max_refs (needs ref_size)."""
    n = len(loaded)
    refs_meta = [r for r, _ in loaded]
    if ref_size is not None:
        h, w = ref_size
        pad = max(n, max_refs) if max_refs is not None else n
        refs = np.zeros((pad, h, w, 4), dtype=np.uint8)
        for k, (_, rgba) in enumerate(loaded):
            refs[k] = letterbox(rgba, ref_size)
        masks = refs[..., 3] >= MASK_THRESHOLD
    else:
        pad = n
        refs = [rgba for _, rgba in loaded]
        masks = [rgba[..., 3] >= MASK_THRESHOLD for rgba in refs]

    def padded(values: list, fill) -> list:
        return values + [fill] * (pad - len(values))

    sim = [np.nan if r.get("similarity") is None else float(r["similarity"]) for r in refs_meta]
    out = {
        "refs": refs, "ref_masks": masks,
        "ref_kinds": padded([str(r.get("kind") or "") for r in refs_meta], ""),
        "ref_similarity": np.asarray(padded(sim, np.nan), dtype=np.float32),
        "ref_ids": padded([str(r.get("subject_id") or "") for r in refs_meta], ""),
        "ref_phrases": padded([str(r.get("phrase") or "") for r in refs_meta], ""),
        "n_refs": n,
        "ref_dropped": "; ".join(dropped),
    }
    if max_refs is not None:
        out["valid_refs"] = np.arange(pad) < n
    return out
