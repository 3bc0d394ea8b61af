"""Face detection for the subjects stage: boxes of every face in a frame.

Backends:
- `mediapipe` (embedded, default): MediaPipe BlazeFace, whose two TFLite models ship inside the
  mediapipe 0.10.21 wheel (later releases ship no models). The short-range model (128 px input,
  faces within ~2 m) finds large faces, the full-range model (192 px input) small ones; both
  run and their boxes are merged by NMS, so one frame costs ~15-60 ms on a CPU core.
- `dlib` (embedded): dlib's HOG + linear SVM frontal face detector (dlib-bin), upsampled once.
  Slower and frontal only; kept as a second opinion that needs no mediapipe.
- `scrfd` (reference): insightface's SCRFD ONNX (det_10g.onnx of buffalo_l), the detector the
  papers' face pipelines use, through backends.face.ScrfdDetector. Weights are looked for in
  the same places as the FaceSim models; missing weights raise ModelNotFound.

Every backend returns `Detection`s in frame pixels with the backend's own confidence.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BackendUnavailable, ModelNotFound

MEDIAPIPE_MIN_SCORE = 0.5    # mediapipe FaceDetection min_detection_confidence default
MERGE_NMS_IOU = 0.4          # insightface SCRFD.nms_thresh, reused to merge the two BlazeFace models
DLIB_MIN_SCORE = 0.0         # dlib detector.run adjust_threshold default


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]   # x0, y0, x1, y1 in frame pixels
    score: float
    label: str                               # "face", "person", "object" or a grounded phrase
    backend: str


def clip_box(box, width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return (min(max(x0, 0.0), width), min(max(y0, 0.0), height), min(max(x1, 0.0), width), min(max(y1, 0.0), height))


def nms(dets: list[Detection], iou_thr: float) -> list[Detection]:
    """Greedy NMS over Detections (highest score first), via detection.nms_xyxy."""
    if len(dets) <= 1:
        return list(dets)
    from .detection import nms_xyxy
    keep = nms_xyxy(np.array([d.box for d in dets], np.float64), np.array([d.score for d in dets]), iou_thr)
    return [dets[i] for i in keep]


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence C++ logging (absl/glog, TFLite delegates) written straight to fd 2 while loading.

    mediapipe prints a harmless protobuf AttributeError and INFO/WARNING lines at import and
    graph start; they would interleave with the CLI's progress bar.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(fd, 2)
    finally:
        os.close(fd)


def import_mediapipe_solutions():
    """mediapipe.python.solutions, or BackendUnavailable saying how to install it."""
    try:
        with quiet_native_stderr():
            from mediapipe.python import solutions
    except ImportError as exc:
        raise BackendUnavailable("MediaPipe (face detection / pose)", ["mediapipe"],
                                 f"pip install mediapipe==0.10.21 (needs numpy<2; later releases ship no models) "
                                 f"({exc})") from exc
    return solutions


class MediapipeFaces:
    """BlazeFace short-range + full-range, merged (see module doc)."""

    name = "mediapipe-blazeface"

    def __init__(self, min_score: float = MEDIAPIPE_MIN_SCORE, models: tuple[int, ...] = (0, 1)) -> None:
        solutions = import_mediapipe_solutions()
        with quiet_native_stderr():
            self._models = [solutions.face_detection.FaceDetection(model_selection=m, min_detection_confidence=min_score)
                            for m in models]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        dets: list[Detection] = []
        for model in self._models:
            res = model.process(img)
            for d in res.detections or []:
                b = d.location_data.relative_bounding_box
                box = clip_box((b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h), w, h)
                if box[2] > box[0] and box[3] > box[1]:
                    dets.append(Detection(box, float(d.score[0]), "face", self.name))
        return nms(dets, MERGE_NMS_IOU)

    def close(self) -> None:
        for m in self._models:
            m.close()


class DlibHogFaces:
    name = "dlib-hog"

    def __init__(self, upsample: int = 1, min_score: float = DLIB_MIN_SCORE) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise BackendUnavailable("dlib HOG face detector", ["dlib"], f"pip install dlib-bin ({exc})") from exc
        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.min_score = upsample, min_score

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        rects, scores, _ = self._detector.run(np.ascontiguousarray(rgb, dtype=np.uint8), self.upsample, self.min_score)
        return [Detection(clip_box((r.left(), r.top(), r.right(), r.bottom()), w, h), float(s), "face", self.name)
                for r, s in zip(rects, scores)]


class ScrfdFaces:
    name = "scrfd"

    def __init__(self, model_dir: str | os.PathLike | None = None, device: str = "cpu") -> None:
        from . import face
        dirs = ([Path(model_dir)] if model_dir else []) + face.model_search_dirs(face.FACE_LOCAL_NAME) \
            + face.model_search_dirs("insightface-buffalo_l") + [Path.home() / ".insightface" / "models"]
        path = None
        for d in dirs:
            if d.is_dir():
                for pat in face.DETECTOR_PATTERNS:
                    hits = sorted(d.rglob(pat))
                    if hits:
                        path = hits[0]
                        break
            if path:
                break
        if path is None:
            raise ModelNotFound("SCRFD face detector (insightface buffalo_l det_10g.onnx)", [str(d) for d in dirs],
                                "Copy insightface's buffalo_l/det_10g.onnx into one of these directories, or pass "
                                "model_dir (subjects.detect.face_model_dir in the recipe).")
        self._det = face.ScrfdDetector.from_path(path, device=device)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        return [Detection(clip_box(f.bbox, w, h), float(f.score), "face", self.name) for f in self._det.detect(rgb)]


FACE_BACKENDS = ("mediapipe", "dlib", "scrfd")


def load_face_detector(backend: str = "mediapipe", model_dir: str | os.PathLike | None = None, **kw):
    """A face detector by name (see module doc); BackendUnavailable/ModelNotFound when it cannot run."""
    if backend in ("mediapipe", "auto", "blazeface"):
        return MediapipeFaces(**kw)
    if backend in ("dlib", "dlib-hog"):
        return DlibHogFaces(**kw)
    if backend == "scrfd":
        return ScrfdFaces(model_dir, **kw)
    raise ValueError(f"unknown face detector {backend!r} ({', '.join(FACE_BACKENDS)})")
