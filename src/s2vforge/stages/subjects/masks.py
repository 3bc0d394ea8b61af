"""Subject masks from a detection box: GrabCut, MediaPipe selfie segmentation, or SAM 2.

`segment(frame_rgb, box, category, cfg)` returns a bool HxW mask of the subject inside `box`
(x0, y0, x1, y1 in frame pixels, exclusive ends); `cfg` is the recipe's `subjects.masks`
section (its values, tuned on benchmarks/bench_masks.py, and their sources are in
recipes/openhumanvid.yaml; docs/quality.md "## Masks"). This module has no defaults of its own.

- `grabcut` (embedded, class-agnostic): OpenCV GrabCut (Rother et al., SIGGRAPH 2004)
  initialised from the box. It runs on a context window around the box (the box grown by
  `context_margin` of its size per side, so the background colour model sees the subject's
  surroundings) shrunk to `work_long_side` px. Everything outside the box grown by
  `rect_margin` is definite background; inside is "probably foreground". `grabcut_iterations`
  rounds of GrabCut, then only components holding at least `min_component_share` of the
  largest are kept and holes smaller than `max_hole_share` of the mask are filled; the result
  is resized back (bilinear on the 0/1 mask, threshold 0.5). The OpenCV RNG is seeded per call
  so a clip gives the same mask on every run.
- `selfie` (embedded, people only): MediaPipe selfie segmentation (backends/segmentation.py)
  on the box grown by `selfie_crop_margin` per side, thresholded at `selfie_threshold` and
  kept inside the box grown by `rect_margin` (a person's mask cannot leave their detection box
  by much; the selfie model also marks other people in the window).
- `sam2` (reference): SAM 2 box prompt (backends/segmentation.py), what OpenS2V-Nexus uses.
- `auto`: person/face -> selfie, falling back to GrabCut when the selfie mask covers less than
  `selfie_min_box_fill` of the box or mediapipe is unavailable; every other category -> GrabCut.
  The selfie model segments the foreground of a person-sized crop and is no person detector
  (around a coffee cup it marks the cup), so the fallback catches boxes on empty background,
  not mislabelled objects.
"""
from __future__ import annotations

import logging

import cv2
import numpy as np

from s2vforge.backends.errors import BackendUnavailable
from s2vforge.stages.recipe_keys import need
from ...schema import PERSON_CATEGORIES

log = logging.getLogger(__name__)

BACKENDS = ("auto", "grabcut", "selfie", "sam2")

# algorithm guards, not settings
MIN_BG_PIXELS = 64             # fewer background samples than this (box covers the frame): no GrabCut
RNG_SEED = 0

# recipe key (subjects.masks) -> keyword of grabcut_mask / selfie_mask
GRABCUT_KEYS = {"grabcut_iterations": "iterations", "context_margin": "context_margin", "rect_margin": "rect_margin",
                "work_long_side": "work_long_side", "min_component_share": "min_component_share",
                "max_hole_share": "max_hole_share"}
SELFIE_KEYS = {"selfie_crop_margin": "crop_margin", "selfie_threshold": "threshold", "rect_margin": "rect_margin",
               "min_component_share": "min_component_share", "max_hole_share": "max_hole_share"}


def grabcut_params(cfg: dict) -> dict:
    """grabcut_mask's keywords from the recipe's `subjects.masks` section."""
    return {kw: need(cfg, key, "subjects.masks") for key, kw in GRABCUT_KEYS.items()}


def selfie_params(cfg: dict) -> dict:
    """selfie_mask's keywords from the recipe's `subjects.masks` section."""
    return {kw: need(cfg, key, "subjects.masks") for key, kw in SELFIE_KEYS.items()}


def clip_box(box, shape) -> tuple[int, int, int, int]:
    """Integer box inside the frame; raises ValueError when nothing of it is inside."""
    h, w = shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    ix0, iy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    ix1, iy1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
    if ix1 <= ix0 or iy1 <= iy0:
        raise ValueError(f"box {tuple(box)} has no area inside the {w}x{h} frame")
    return ix0, iy0, ix1, iy1


def grow_box(box, frac: float, shape, min_px: int = 0) -> tuple[int, int, int, int]:
    """Box grown by `frac` of its width/height (at least min_px) per side, clipped to the frame."""
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    dx = max(min_px, int(round(frac * (x1 - x0))))
    dy = max(min_px, int(round(frac * (y1 - y0))))
    return max(0, x0 - dx), max(0, y0 - dy), min(w, x1 + dx), min(h, y1 + dy)


def box_mask(shape, box) -> np.ndarray:
    m = np.zeros(shape[:2], bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


def clean_mask(fg: np.ndarray, min_component_share: float, max_hole_share: float) -> np.ndarray:
    """Drop specks (components < share of the largest) and fill small holes."""
    fg = fg.astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return fg.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= min_component_share * areas.max()) + 1
    fg = np.isin(labels, keep)
    total = int(fg.sum())
    inv = (~fg).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    h, w = fg.shape
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        touches_border = x == 0 or y == 0 or x + bw == w or y + bh == h
        if not touches_border and area < max_hole_share * total:
            fg[labels == i] = True
    return fg


def _resize_mask(m: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    if (m.shape[1], m.shape[0]) == tuple(size_wh):
        return m.astype(bool)
    return cv2.resize(m.astype(np.float32), size_wh, interpolation=cv2.INTER_LINEAR) >= 0.5


def grabcut_mask(frame_rgb: np.ndarray, box, *, iterations: int, context_margin: float, rect_margin: float,
                 work_long_side: int, min_component_share: float, max_hole_share: float) -> np.ndarray:
    """GrabCut initialised from `box` (see module docstring). Falls back to the filled box
    when there is no background to learn from (the box covers the whole context window)."""
    shape = frame_rgb.shape
    b = clip_box(box, shape)
    cx0, cy0, cx1, cy1 = grow_box(b, context_margin, shape)
    crop = np.ascontiguousarray(frame_rgb[cy0:cy1, cx0:cx1, :3])
    ch, cw = crop.shape[:2]
    s = min(1.0, work_long_side / max(ch, cw))
    small = crop if s == 1.0 else cv2.resize(crop, (max(1, round(cw * s)), max(1, round(ch * s))),
                                             interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    rx0, ry0, rx1, ry1 = grow_box(b, rect_margin, shape, min_px=1)
    r0x, r0y = int(np.floor((rx0 - cx0) * s)), int(np.floor((ry0 - cy0) * s))
    r1x, r1y = min(sw, int(np.ceil((rx1 - cx0) * s))), min(sh, int(np.ceil((ry1 - cy0) * s)))
    rect = (r0x, r0y, max(1, r1x - r0x), max(1, r1y - r0y))
    n_bg = sh * sw - rect[2] * rect[3]
    out = np.zeros(shape[:2], bool)
    grown = box_mask(shape, (rx0, ry0, rx1, ry1))
    if n_bg < MIN_BG_PIXELS or rect[2] < 2 or rect[3] < 2:
        out[b[1]:b[3], b[0]:b[2]] = True
        return out
    gc = np.zeros((sh, sw), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(RNG_SEED)
    try:
        cv2.grabCut(small, gc, rect, bgd, fgd, int(iterations), cv2.GC_INIT_WITH_RECT)
    except cv2.error as exc:  # degenerate colour models (flat crops)
        log.debug("grabcut failed (%s); using the box", exc)
        out[b[1]:b[3], b[0]:b[2]] = True
        return out
    fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    fg = clean_mask(fg, min_component_share, max_hole_share)
    out[cy0:cy1, cx0:cx1] = _resize_mask(fg, (cw, ch))
    return out & grown


def selfie_mask(frame_rgb: np.ndarray, box, *, crop_margin: float, threshold: float, rect_margin: float,
                min_component_share: float, max_hole_share: float) -> np.ndarray:
    """MediaPipe selfie segmentation on the window around `box`, kept inside the grown box."""
    from s2vforge.backends.segmentation import load_selfie

    shape = frame_rgb.shape
    b = clip_box(box, shape)
    wx0, wy0, wx1, wy1 = grow_box(b, crop_margin, shape)
    prob = load_selfie().probability(np.ascontiguousarray(frame_rgb[wy0:wy1, wx0:wx1, :3]))
    out = np.zeros(shape[:2], bool)
    out[wy0:wy1, wx0:wx1] = clean_mask(prob >= threshold, min_component_share, max_hole_share)
    return out & box_mask(shape, grow_box(b, rect_margin, shape, min_px=1))


def sam2_mask(frame_rgb: np.ndarray, box, model_dir: str | None, device: str) -> np.ndarray:
    """SAM 2 box-prompted mask (reference backend; ModelNotFound without local weights)."""
    from s2vforge.backends.segmentation import load_sam2

    b = clip_box(box, frame_rgb.shape)
    mask, _ = load_sam2(model_dir, device).segment_box(frame_rgb, b)
    return mask


def segment(frame_rgb: np.ndarray, box, category: str, cfg: dict) -> np.ndarray:
    """Bool HxW mask of the subject in `box` with the recipe's `subjects.masks` section `cfg`
    (see module docstring for the backends)."""
    backend = need(cfg, "backend", "subjects.masks")
    if backend not in BACKENDS:
        raise ValueError(f"unknown mask backend {backend!r}; expected one of {BACKENDS}")
    if backend == "grabcut":
        return grabcut_mask(frame_rgb, box, **grabcut_params(cfg))
    if backend == "selfie":
        return selfie_mask(frame_rgb, box, **selfie_params(cfg))
    if backend == "sam2":
        return sam2_mask(frame_rgb, box, need(cfg, "sam2_model_dir", "subjects.masks"),
                         need(cfg, "device", "subjects.masks"))
    grabcut = grabcut_params(cfg)
    if str(category).lower() in PERSON_CATEGORIES:
        min_fill = float(need(cfg, "selfie_min_box_fill", "subjects.masks"))
        try:
            m = selfie_mask(frame_rgb, box, **selfie_params(cfg))
        except BackendUnavailable as exc:
            log.info("selfie segmentation unavailable, using GrabCut: %s", exc)
        else:
            b = clip_box(box, frame_rgb.shape)
            area = (b[2] - b[0]) * (b[3] - b[1])
            if np.count_nonzero(m) >= min_fill * area:
                return m
    return grabcut_mask(frame_rgb, box, **grabcut)
