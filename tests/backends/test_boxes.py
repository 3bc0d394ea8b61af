"""backends.boxes: the one IoU and the one greedy NMS, with its two conventions pinned by hand."""
from __future__ import annotations

import numpy as np
import pytest

from s2vforge.backends.boxes import box_iou, nms


# ---------------------------------------------------------------- box_iou (continuous coordinates)

@pytest.mark.parametrize("a, b, expected", [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
    ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),       # inter 5x10, union 100 + 100 - 50
    ((0, 0, 10, 10), (0, 0, 5, 5), 25 / 100),         # contained
    ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),           # touching edges share no area
    ((0, 0, 1, 1), (2, 2, 3, 3), 0.0),                # disjoint
    ((5, 5, 5, 5), (5, 5, 5, 5), 0.0),                # no union at all
    ((10, 10, 0, 0), (0, 0, 10, 10), 0.0),            # an inverted box has no area
    ((0.5, 0.5, 2.5, 2.5), (1.5, 1.5, 3.5, 3.5), 1 / 7),  # inter 1, union 4 + 4 - 1
])
def test_box_iou(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected, abs=1e-15)
    assert box_iou(b, a) == pytest.approx(expected, abs=1e-15)


def test_pairs_and_subjects_iou_are_the_shared_one():
    from s2vforge.stages.pairs.tracks import box_iou as tracks_iou
    from s2vforge.stages.subjects.boxrules import box_iou as rules_iou
    assert rules_iou is box_iou
    assert tracks_iou([0, 0, 10, 10], [5, 0, 15, 10]) == box_iou((0, 0, 10, 10), (5, 0, 15, 10))
    assert tracks_iou(None, [0, 0, 10, 10]) == 0.0 and tracks_iou([0, 0, 10, 10], None) == 0.0


# ---------------------------------------------------------------- nms, torchvision convention (default)

def _arr(rows):
    return np.array(rows, np.float32)


def test_nms_keeps_highest_first_and_suppresses_strictly_above_threshold():
    boxes = _arr([[0, 0, 10, 10], [0, 0, 10, 8], [20, 20, 30, 30]])
    scores = _arr([0.9, 0.8, 0.7])
    # IoU(0, 1) = 80 / 100 = 0.8 exactly: suppressed only when IoU > thr
    assert nms(boxes, scores, 0.8).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.79).tolist() == [0, 2]
    out = nms(boxes[::-1].copy(), scores[::-1].copy(), 0.79)
    assert out.dtype == np.int64 and out.tolist() == [2, 0]           # indices into the input, best first


def test_nms_orders_by_score_and_breaks_ties_by_input_order():
    disjoint = _arr([[0, 0, 1, 1], [10, 10, 11, 11], [20, 20, 21, 21]])
    assert nms(disjoint, _arr([0.1, 0.9, 0.5]), 0.5).tolist() == [1, 2, 0]
    same = _arr([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    assert nms(same, _arr([0.5, 0.7, 0.7]), 0.5).tolist() == [1]       # tie 1 vs 2: the earlier index wins


def test_nms_torchvision_degenerate_and_empty():
    points = _arr([[5, 5, 5, 5], [5, 5, 5, 5]])                       # zero area: IoU 0, both kept
    assert nms(points, _arr([0.9, 0.8]), 0.5).tolist() == [0, 1]
    empty = nms(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), 0.5)
    assert empty.dtype == np.int64 and empty.size == 0


# ---------------------------------------------------------------- nms, insightface convention (+1 pixels)

def test_nms_insightface_counts_pixels_inclusively():
    # inclusive pixels: 10x10 and 10x8 boxes, IoU 80 / 100 = 0.8; continuous: 63 / 81 = 0.777...
    boxes = _arr([[0, 0, 9, 9], [0, 0, 9, 7]])
    scores = _arr([0.9, 0.8])
    assert nms(boxes, scores, 0.78, convention="torchvision").tolist() == [0, 1]
    assert nms(boxes, scores, 0.78, convention="insightface").tolist() == [0]
    assert nms(boxes, scores, 0.81, convention="insightface").tolist() == [0, 1]


def test_nms_insightface_shared_edge_pixel_overlaps():
    # boxes sharing the column x = 9: inclusive inter 1 x 10 = 10, union 100 + 100 - 10 -> IoU 10 / 190
    boxes = _arr([[0, 0, 9, 9], [9, 0, 18, 9]])
    scores = _arr([0.9, 0.8])
    assert nms(boxes, scores, 0.05, convention="torchvision").tolist() == [0, 1]     # continuous IoU 0
    assert nms(boxes, scores, 0.05, convention="insightface").tolist() == [0]        # 0.0526 > 0.05
    assert nms(boxes, scores, 0.06, convention="insightface").tolist() == [0, 1]


def test_nms_insightface_single_pixel_boxes_have_area_one():
    points = _arr([[5, 5, 5, 5], [5, 5, 5, 5]])                       # 1 px each, IoU 1
    assert nms(points, _arr([0.9, 0.8]), 0.5, convention="insightface").tolist() == [0]


def test_nms_insightface_visits_in_its_argsort_order():
    # insightface walks `scores.argsort()[::-1]` (not a stable descending sort), so ties follow that order
    same = _arr([[0, 0, 10, 10], [0, 0, 10, 10]])
    scores = _arr([0.5, 0.5])
    assert nms(same, scores, 0.5, convention="insightface").tolist() == [int(scores.argsort()[::-1][0])]
    assert nms(same, scores, 0.5, convention="torchvision").tolist() == [0]
    disjoint = _arr([[0, 0, 1, 1], [10, 10, 11, 11], [20, 20, 21, 21]])
    assert nms(disjoint, _arr([0.1, 0.9, 0.5]), 0.4, convention="insightface").tolist() == [1, 2, 0]


def test_nms_unknown_convention():
    with pytest.raises(ValueError, match="unknown NMS convention"):
        nms(_arr([[0, 0, 1, 1]]), _arr([1.0]), 0.5, convention="pixel")
