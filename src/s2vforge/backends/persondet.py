"""Person detection for the subjects stage: whole-person boxes.

Embedded backends (no weights outside installed packages):
- `mediapipe-pose`: MediaPipe Pose (BlazePose detector + pose_landmark_full, both in the
  mediapipe 0.10.21 wheel) on the still frame. It finds *one* person, the most prominent; the
  box is the extent of the landmarks it sees (visibility >= 0.5), widened to cover the body
  around the joints and the head above the eyes/ears. Works on upper-body and seated shots.
- `hog`: OpenCV's HOG + linear SVM people detector (Dalal & Triggs), several people per frame
  but only upright, mostly full-body pedestrians of at least 64x128 px.
- `auto`: both, merged by NMS, so the prominent person comes from pose and further full-body
  people from HOG. Not the recipes' default: on benchmarks/bench_subjects_detection.py HOG found
  none of the upper-body people and only added false positives (docs/quality.md).

Scores: pose uses the mean visibility of the landmarks it kept; HOG's SVM margin is mapped
through a logistic so that both read as 0..1 confidences.
"""
from __future__ import annotations

import math

import numpy as np

from .facedet import Detection, clip_box, import_mediapipe_solutions, nms, quiet_native_stderr

POSE_MIN_DETECTION = 0.5     # mediapipe Pose min_detection_confidence default
POSE_MIN_VISIBILITY = 0.5    # ours: landmarks below this are guesses, not seen
POSE_MIN_LANDMARKS = 6       # ours: fewer seen landmarks is not a usable person box
POSE_PAD_SIDE = 0.15         # ours: joints sit inside the body; widen by 15% of the box per side
POSE_PAD_TOP = 0.6           # ours: head top is ~0.6 eye-to-shoulder distances above the eyes
HOG_LONG_SIDE = 640          # ours: HOG runs on a frame scaled to this long side
HOG_WIN_STRIDE = (8, 8)      # OpenCV peopledetect.py sample
HOG_PADDING = (8, 8)         # OpenCV peopledetect.py sample
HOG_SCALE = 1.05             # OpenCV peopledetect.py sample
HOG_MIN_MARGIN = 0.5         # ours: SVM margin below this is mostly clutter on street scenes
MERGE_NMS_IOU = 0.5          # ours: pose and HOG boxes of one person overlap well above this

# MediaPipe Pose landmark indices (33-point BlazePose topology)
_EYES_EARS = (1, 2, 3, 4, 5, 6, 7, 8)
_SHOULDERS = (11, 12)


class MediapipePose:
    name = "mediapipe-pose"

    def __init__(self, min_detection: float = POSE_MIN_DETECTION) -> None:
        solutions = import_mediapipe_solutions()
        with quiet_native_stderr():
            # model_complexity=1 (pose_landmark_full) ships in the wheel; 2 (heavy) is downloaded: never use it
            self._pose = solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                             min_detection_confidence=min_detection)
            self._pose.process(np.zeros((64, 64, 3), np.uint8))   # graphs start (and log) on their first frame

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        res = self._pose.process(np.ascontiguousarray(rgb, dtype=np.uint8))
        if not res.pose_landmarks:
            return []
        lm = np.array([[p.x * w, p.y * h, p.visibility] for p in res.pose_landmarks.landmark], np.float64)
        seen = lm[:, 2] >= POSE_MIN_VISIBILITY
        if seen.sum() < POSE_MIN_LANDMARKS:
            return []
        box = pose_box(lm, seen)
        box = clip_box(box, w, h)
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            return []
        return [Detection(box, float(lm[seen, 2].mean()), "person", self.name)]

    def close(self) -> None:
        self._pose.close()


def pose_box(lm: np.ndarray, seen: np.ndarray) -> tuple[float, float, float, float]:
    """Person box from (33, 3) landmarks (x, y, visibility) and the seen mask (see constants)."""
    xs, ys = lm[seen, 0], lm[seen, 1]
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
    pad = POSE_PAD_SIDE * (x1 - x0)
    x0, x1 = x0 - pad, x1 + pad
    face = [i for i in _EYES_EARS if seen[i]]
    shoulders = [i for i in _SHOULDERS if seen[i]]
    if face and shoulders:
        eye_y = lm[face, 1].min()
        neck = lm[shoulders, 1].mean() - eye_y
        y0 = min(y0, eye_y - POSE_PAD_TOP * max(neck, 0.0))
    else:
        y0 -= POSE_PAD_SIDE * (y1 - y0)
    y1 += 0.05 * (y1 - y0)
    return float(x0), float(y0), float(x1), float(y1)


class HogPeople:
    name = "hog"

    def __init__(self, long_side: int = HOG_LONG_SIDE, min_margin: float = HOG_MIN_MARGIN) -> None:
        import cv2
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.long_side, self.min_margin = long_side, min_margin

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        import cv2
        h, w = rgb.shape[:2]
        s = min(1.0, self.long_side / max(h, w))
        small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else rgb
        gray = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY)
        if min(gray.shape) < 128:
            return []
        rects, weights = self._hog.detectMultiScale(gray, winStride=HOG_WIN_STRIDE, padding=HOG_PADDING, scale=HOG_SCALE)
        dets = []
        for (x, y, rw, rh), m in zip(rects, np.asarray(weights).reshape(-1)):
            if m < self.min_margin:
                continue
            box = clip_box((x / s, y / s, (x + rw) / s, (y + rh) / s), w, h)
            dets.append(Detection(box, 1.0 / (1.0 + math.exp(-float(m))), "person", self.name))
        return nms(dets, MERGE_NMS_IOU)


class AutoPeople:
    """Pose for the prominent person, HOG for further upright people (see module doc)."""

    name = "auto"

    def __init__(self) -> None:
        self._detectors = []
        self.unavailable: dict[str, str] = {}
        from .errors import BackendUnavailable
        for cls in (MediapipePose, HogPeople):
            try:
                self._detectors.append(cls())
            except BackendUnavailable as e:
                self.unavailable[cls.name] = str(e)
        if not self._detectors:
            raise BackendUnavailable("person detector", [], "; ".join(self.unavailable.values()))

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        dets: list[Detection] = []
        for d in self._detectors:
            dets.extend(d.detect(rgb))
        # pose boxes first on equal footing: NMS keeps the higher score, pose scores are visibilities
        return nms(dets, MERGE_NMS_IOU)


PERSON_BACKENDS = ("auto", "mediapipe-pose", "hog")


def load_person_detector(backend: str = "mediapipe-pose"):
    if backend == "auto":
        return AutoPeople()
    if backend in ("mediapipe-pose", "mediapipe", "pose"):
        return MediapipePose()
    if backend == "hog":
        return HogPeople()
    raise ValueError(f"unknown person detector {backend!r} ({', '.join(PERSON_BACKENDS)})")
