"""Box geometry over (x0, y0, x1, y1) boxes: IoU and greedy non-maximum suppression.

Two conventions exist among the detectors we reproduce, and they give different numbers, so
`nms` takes the convention as an explicit parameter:

- `"torchvision"` (default; torchvision.ops.nms, used for OWLv2 / Grounding DINO NexusScore
  post-processing and for merging BlazeFace / pose / saliency boxes): continuous coordinates,
  width = x1 - x0 (negative widths count as 0), boxes computed in float64, union guarded by
  1e-12; candidates visited by descending score with ties in input order (stable sort).
- `"insightface"` (insightface SCRFD/RetinaFace `nms`, used by the FaceSim detector): inclusive
  pixel coordinates, width = x1 - x0 + 1 (areas not clipped), computed in the input dtype
  (float32 from SCRFD) with no union guard; candidates visited in `scores.argsort()[::-1]` order,
  exactly as insightface writes it (ties then come out last-index-first for small inputs).

Both suppress a candidate whose IoU with a kept box is strictly greater than the threshold
(IoU == threshold is kept).
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

NmsConvention = Literal["torchvision", "insightface"]
NMS_CONVENTIONS = ("torchvision", "insightface")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes, continuous coordinates (torchvision.ops.box_iou); a box with no area
    has area 0, and two boxes with no union have IoU 0."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float, *,
        convention: NmsConvention = "torchvision") -> np.ndarray:
    """Greedy class-agnostic NMS; the indices (int64) of the kept boxes, highest score first.

    `boxes` is (N, 4) x0, y0, x1, y1, `scores` (N,). `convention` picks the IoU and ordering rules
    (see the module doc): "torchvision" or "insightface"."""
    if convention == "torchvision":
        boxes = np.asarray(boxes, np.float64)
        order = np.argsort(-np.asarray(scores), kind="stable")
        areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    elif convention == "insightface":
        boxes = np.asarray(boxes)
        order = np.asarray(scores).argsort()[::-1]
        areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    else:
        raise ValueError(f"unknown NMS convention {convention!r} ({', '.join(NMS_CONVENTIONS)})")
    pixel_inclusive = convention == "insightface"
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        if pixel_inclusive:
            inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
            iou = inter / (areas[i] + areas[rest] - inter)
        else:
            inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
            iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_thr]
    return np.asarray(keep, dtype=np.int64)
