"""Phantom-Data box rules, each with its named verdict."""
from __future__ import annotations

import dataclasses

import pytest

from s2vforge.recipes import load_recipe
from s2vforge.stages.recipe_keys import MissingRecipeKey
from s2vforge.stages.subjects.boxrules import BoxRules, apply_box_rules, box_iou

W, H = 1000, 1000   # 4% of the frame = 40,000 px^2 (200 x 200)
BOXES = load_recipe(None)["subjects"]["boxes"]          # the default recipe's Phantom-Data rules
RULES = BoxRules.from_recipe(BOXES)


def cand(box, score=0.9, category="object", phrase="cup", single=False):
    return {"box": box, "score": score, "category": category, "phrase": phrase, "single_instance": single, "checks": []}


def test_area_and_side_rules():
    out = apply_box_rules([
        cand((0, 0, 150, 150)),              # 2.25% of the frame and 150 px sides: too small
        cand((0, 0, 990, 990)),              # 98% of the frame
        cand((0, 0, 1000, 100)),             # 10% of the frame but only 100 px tall
        cand((100, 100, 400, 400)),          # 9%, 300 px: kept
    ], W, H, RULES)
    assert out[0]["checks"] == ["area_frac<0.04"]
    assert out[1]["checks"] == ["area_frac>0.9"]
    assert out[2]["checks"] == ["min_side<128"]
    assert out[3]["checks"] == [] and out[3]["keep"]
    assert [c["keep"] for c in out] == [False, False, False, True]


def test_small_area_and_small_side_both_named():
    out = apply_box_rules([cand((0, 0, 100, 100))], W, H, RULES)
    assert out[0]["checks"] == ["area_frac<0.04", "min_side<128"]


def test_duplicates_keep_the_higher_score_within_a_category():
    a, b = (100, 100, 500, 500), (110, 110, 505, 505)
    assert box_iou(a, b) > 0.8
    out = apply_box_rules([cand(a, 0.6), cand(b, 0.9), cand(a, 0.5, category="person", phrase="person")], W, H, RULES)
    assert out[1]["keep"] and not out[0]["keep"]
    assert out[0]["checks"] == ["overlap_iou>0.8:1"]
    assert out[2]["keep"], "a box of another category is not a duplicate"
    # IoU at 0.8 or below is not a duplicate
    c = (100, 100, 500, 500)
    d = (100, 100, 500, 600)        # IoU = 0.8 exactly
    assert abs(box_iou(c, d) - 0.8) < 1e-9
    assert all(x["keep"] for x in apply_box_rules([cand(c, 0.9), cand(d, 0.8)], W, H, RULES))


def test_ambiguous_single_instance_phrase_is_dropped_but_a_clear_winner_is_kept():
    left, right = (0, 0, 300, 300), (600, 600, 900, 900)
    amb = apply_box_rules([cand(left, 0.62, single=True), cand(right, 0.58, single=True)], W, H, RULES)
    assert [c["checks"] for c in amb] == [["ambiguous_grounding:2"], ["ambiguous_grounding:2"]]
    clear = apply_box_rules([cand(left, 0.9, single=True), cand(right, 0.5, single=True)], W, H, RULES)
    assert [c["keep"] for c in clear] == [True, True]      # not ambiguous: the best stands out
    plural = apply_box_rules([cand(left, 0.6), cand(right, 0.6)], W, H, RULES)
    assert all(c["keep"] for c in plural), "plural phrases name several things"


def test_cap_on_boxes_per_frame():
    boxes = [cand((x, 0, x + 200, 300), score=1.0 - x / 10000) for x in range(0, 800, 40)]   # 20 boxes, no dup
    for i, c in enumerate(boxes):
        c["category"] = f"object{i}"          # distinct categories: no IoU suppression
    out = apply_box_rules(boxes, W, H, dataclasses.replace(RULES, max_boxes_per_frame=5))
    assert sum(c["keep"] for c in out) == 5
    assert [c["keep"] for c in out[:5]] == [True] * 5
    assert all(c["checks"] == ["box_cap>5"] for c in out[5:])


def test_recipe_keys_are_checked():
    assert BoxRules.from_recipe({**BOXES, "min_side_px": 64}).min_side_px == 64
    with pytest.raises(ValueError, match="min_sid"):
        BoxRules.from_recipe({**BOXES, "min_sid_px": 64})
    with pytest.raises(MissingRecipeKey, match="subjects.boxes.min_side_px"):
        BoxRules.from_recipe({k: v for k, v in BOXES.items() if k != "min_side_px"})
    with pytest.raises(ValueError, match="null"):
        BoxRules.from_recipe({**BOXES, "nms_iou": None})
