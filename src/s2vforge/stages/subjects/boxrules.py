"""Phantom-Data's box rules: which detections of one frame become subject instances.

Each rule leaves a named verdict on the candidates it rejects (nothing is dropped silently):

- `area_frac<0.04` / `area_frac>0.9`: the box covers less than 4% or more than 90% of the frame
  (Phantom-Data: too small to be a useful reference / the frame itself, not a subject);
- `min_side<128`: the box is narrower or shorter than 128 px (Phantom-Data);
- `overlap_iou>0.8:<i>`: IoU above 0.8 with a higher-scoring box of the same category (Phantom-
  Data suppresses near-duplicate boxes, keeping the higher score); <i> is the kept box's index;
- `ambiguous_grounding:<n>`: a caption phrase that names one thing grounded to n > 1 surviving
  boxes whose scores are within `ambiguous_margin` of the best (ours: Phantom-Data drops phrases
  that ground to several ambiguous regions; "within the margin" is our definition of ambiguous.
  A clearly best box, or a plural phrase, is not ambiguous);
- `box_cap>N`: more than N boxes survived in one frame; the lowest scores are not kept (ours:
  bounds mask and crop work on crowded frames).

Candidates are dicts with at least box (x0, y0, x1, y1), score, category, phrase and
single_instance; the rules add `checks` (list of verdicts) and `keep`.

The numbers above are the default recipe's `subjects.boxes` (recipes/openhumanvid.yaml, where
each cites its source); `BoxRules.from_recipe` reads that section and has no defaults of its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...backends.boxes import box_iou
from ..recipe_keys import take


@dataclass(frozen=True)
class BoxRules:
    """The recipe's `subjects.boxes` (values and their sources: recipes/openhumanvid.yaml)."""
    min_area_frac: float
    max_area_frac: float
    min_side_px: int
    nms_iou: float
    ambiguous_margin: float
    max_boxes_per_frame: int

    @classmethod
    def from_recipe(cls, cfg: dict) -> "BoxRules":
        """From the `subjects.boxes` section: every field is required (MissingRecipeKey names
        the absent one), unknown keys and null values are recipe errors (ValueError)."""
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown subjects.boxes keys {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        known = take(cfg, cls.__dataclass_fields__, "subjects.boxes")
        nulls = sorted(k for k, v in known.items() if v is None)
        if nulls:
            raise ValueError(f"subjects.boxes keys {nulls} are null; each needs a value")
        return cls(**known)


def _fmt(x: float) -> str:
    return f"{x:g}"


def size_verdicts(box, frame_w: int, frame_h: int, rules: BoxRules) -> list[str]:
    """Area and side rules for one box (Phantom-Data)."""
    w, h = max(0.0, box[2] - box[0]), max(0.0, box[3] - box[1])
    area = (w * h) / float(frame_w * frame_h)
    out = []
    if area < rules.min_area_frac:
        out.append(f"area_frac<{_fmt(rules.min_area_frac)}")
    if area > rules.max_area_frac:
        out.append(f"area_frac>{_fmt(rules.max_area_frac)}")
    if min(w, h) < rules.min_side_px:
        out.append(f"min_side<{rules.min_side_px}")
    return out


def apply_box_rules(cands: list[dict], frame_w: int, frame_h: int, rules: BoxRules) -> list[dict]:
    """The rules above, in order, over one frame's candidates; returns them with checks/keep set."""
    for c in cands:
        c["checks"] = list(c.get("checks") or []) + size_verdicts(c["box"], frame_w, frame_h, rules)
    alive = [i for i, c in enumerate(cands) if not c["checks"]]
    # duplicates: greedy by score within a category (a face inside a person box is not a duplicate)
    order = sorted(alive, key=lambda i: -float(cands[i]["score"]))
    kept: list[int] = []
    for i in order:
        dup = next((k for k in kept if cands[k]["category"] == cands[i]["category"]
                    and box_iou(cands[k]["box"], cands[i]["box"]) > rules.nms_iou), None)
        if dup is None:
            kept.append(i)
        else:
            cands[i]["checks"].append(f"overlap_iou>{_fmt(rules.nms_iou)}:{dup}")
    # ambiguous grounding of single-instance caption phrases
    by_phrase: dict[str, list[int]] = {}
    for i in kept:
        if cands[i].get("single_instance"):
            by_phrase.setdefault(cands[i]["phrase"], []).append(i)
    for phrase, idx in by_phrase.items():
        best = max(float(cands[i]["score"]) for i in idx)
        close = [i for i in idx if best - float(cands[i]["score"]) <= rules.ambiguous_margin]
        if len(close) > 1:
            for i in idx:
                cands[i]["checks"].append(f"ambiguous_grounding:{len(close)}")
    survivors = sorted((i for i in kept if not cands[i]["checks"]), key=lambda i: -float(cands[i]["score"]))
    for i in survivors[rules.max_boxes_per_frame:]:
        cands[i]["checks"].append(f"box_cap>{rules.max_boxes_per_frame}")
    for c in cands:
        c["keep"] = not c["checks"]
    return cands
