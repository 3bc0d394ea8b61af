"""Face detection for the subjects stage: boxes of every face in a frame.

Backends:
- `mediapipe` (embedded, default): MediaPipe BlazeFace, whose two TFLite models ship inside the
  mediapipe 0.10.21 wheel (later releases ship no models). The short-range model (128 px input,
  faces within ~2 m) finds large faces, the full-range model (192 px input) smaller ones. The
  full-range model sees the whole frame squeezed to 192 px, where a 64 px face of a 1280 px
  frame is ~10 px and is missed; so frames larger than TILE_SIDE are also cut into overlapping
  tiles for the full-range model. All boxes are merged by NMS (~150 ms a 1280x720 frame).
- `dlib` (embedded): dlib's HOG + linear SVM frontal face detector (dlib-bin), upsampled once.
  Slower and frontal only; kept as a second opinion that needs no mediapipe.
- `scrfd` (reference): insightface's SCRFD ONNX (det_10g.onnx of buffalo_l), the detector the
  papers' face pipelines use, through backends.face.ScrfdDetector. Weights are looked for in
  the same places as the FaceSim models; missing weights raise ModelNotFound.

Every backend returns `Detection`s in frame pixels with the backend's own confidence.

`HumanFaceCheck` is a second opinion on a face box: BlazeFace also fires on cat and cartoon
animal faces (and on a single cat eye filling the frame), so a box counts as a human face only
when one of two detectors trained on human faces finds a face on it again: dlib's HOG frontal
detector, then (only when HOG does not) dlib's MMOD CNN human face detector
(mmod_human_face_detector.dat of face-recognition-models). Both run on a square crop around
the box, rescaled so the face has the size each detector works best at, so the cost is fixed
per face (~10 ms HOG, ~160 ms CNN on the 2-core development machine) whatever the frame size.
Its settings are the recipe's `subjects.detect.human_face` (values and how they were measured:
recipes/openhumanvid.yaml, docs/quality.md "Animal faces").
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .boxes import nms as nms_boxes
from .errors import BackendUnavailable, ModelNotFound

MEDIAPIPE_MIN_SCORE = 0.5    # mediapipe FaceDetection min_detection_confidence default
MERGE_NMS_IOU = 0.4          # insightface SCRFD.nms_thresh, reused to merge the two BlazeFace models
TILE_SIDE = 512              # ours: full-range tiles; a 64 px face is then >= 24 px of the 192 px input
TILE_OVERLAP = 0.25          # ours: a face up to a quarter tile wide lies whole inside some tile
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
    """Greedy NMS over Detections (highest score first), boxes.nms with torchvision's convention."""
    if len(dets) <= 1:
        return list(dets)
    keep = nms_boxes(np.array([d.box for d in dets], np.float64), np.array([d.score for d in dets]), iou_thr,
                     convention="torchvision")
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

    def __init__(self, min_score: float = MEDIAPIPE_MIN_SCORE, tile_side: int | None = TILE_SIDE) -> None:
        solutions = import_mediapipe_solutions()
        with quiet_native_stderr():
            self._short = solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=min_score)
            self._full = solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score)
            blank = np.zeros((64, 64, 3), np.uint8)      # graphs start (and log) on their first frame
            self._short.process(blank)
            self._full.process(blank)
        self.tile_side = tile_side

    def _run(self, model, img: np.ndarray, ox: int, oy: int, out: list[Detection], w: int, h: int) -> None:
        th, tw = img.shape[:2]
        res = model.process(np.ascontiguousarray(img))
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            box = clip_box((ox + b.xmin * tw, oy + b.ymin * th, ox + (b.xmin + b.width) * tw,
                            oy + (b.ymin + b.height) * th), w, h)
            if box[2] > box[0] and box[3] > box[1]:
                out.append(Detection(box, float(d.score[0]), "face", self.name))

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        dets: list[Detection] = []
        self._run(self._short, img, 0, 0, dets, w, h)
        self._run(self._full, img, 0, 0, dets, w, h)
        if self.tile_side and max(h, w) > self.tile_side * 1.25:
            for x0, y0, x1, y1 in tiles(w, h, self.tile_side, TILE_OVERLAP):
                self._run(self._full, img[y0:y1, x0:x1], x0, y0, dets, w, h)
        return nms(dets, MERGE_NMS_IOU)

    def close(self) -> None:
        self._short.close()
        self._full.close()


def tiles(w: int, h: int, side: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Overlapping square-ish tiles (x0, y0, x1, y1) of at most `side` px covering a w x h frame."""
    def starts(n: int) -> list[int]:
        if n <= side:
            return [0]
        step = side * (1 - overlap)
        k = int(np.ceil((n - side) / step)) + 1
        return [round(i * (n - side) / (k - 1)) for i in range(k)]
    return [(x, y, min(w, x + side), min(h, y + side)) for y in starts(h) for x in starts(w)]


class DlibHogFaces:
    name = "dlib-hog"

    def __init__(self, upsample: int = 1, min_score: float = DLIB_MIN_SCORE) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise BackendUnavailable.missing_extra("faces", "dlib HOG face detector", exc) from None
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


@dataclass(frozen=True)
class HumanFaceVerdict:
    ok: bool
    hog: float | None      # best dlib HOG score of a box matching the face, None when nothing matched
    cnn: float | None      # best MMOD CNN confidence of a matching box, None when nothing matched or not run
    ran_cnn: bool = False

    def detail(self) -> str:
        """`hog=<score|none>,cnn=<score|none|skipped>` for the verdict text."""
        def f(v):
            return "none" if v is None else f"{v:.2f}"
        return f"hog={f(self.hog)},cnn={f(self.cnn) if self.ran_cnn else 'skipped'}"


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def face_window(rgb: np.ndarray, box, context: float, face_px: int) -> tuple[np.ndarray, tuple]:
    """A square crop centred on `box`, `context` x the box's long side added on every side, scaled
    so the box's long side is `face_px` (edges replicated outside the frame); returns the crop
    and the box in crop pixels."""
    import cv2
    x0, y0, x1, y1 = (float(v) for v in box)
    long_side = max(x1 - x0, y1 - y0, 1.0)
    half = long_side * (0.5 + float(context))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sc = float(face_px) / long_side
    side = max(2, int(round(2 * half * sc)))
    m = np.array([[sc, 0.0, -(cx - half) * sc], [0.0, sc, -(cy - half) * sc]])
    crop = cv2.warpAffine(np.ascontiguousarray(rgb, dtype=np.uint8), m, (side, side),
                          flags=cv2.INTER_AREA if sc < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, (x0 * sc + m[0, 2], y0 * sc + m[1, 2], x1 * sc + m[0, 2], y1 * sc + m[1, 2])


class HumanFaceCheck:
    """Is a face box a human face? dlib HOG, else dlib's MMOD CNN, must find it again (module doc).

    hog_min_score / cnn_min_score: the scores that confirm; context: crop margin per side, share
    of the box's long side; hog_face_px / cnn_face_px: the face's long side in the crop each
    detector sees; match_iou: IoU a re-detection needs with the box (BlazeFace boxes are taller
    than dlib's). cnn_min_score None runs HOG only."""

    name = "dlib-hog+mmod"

    def __init__(self, hog_min_score: float, cnn_min_score: float | None, context: float, hog_face_px: int,
                 cnn_face_px: int, match_iou: float) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise BackendUnavailable.missing_extra("faces", "human face check (dlib)", exc) from None
        self._hog = dlib.get_frontal_face_detector()
        self._cnn = None
        if cnn_min_score is not None:
            from .face import DlibFaces
            path = DlibFaces.models_dir() / "mmod_human_face_detector.dat"
            if not path.is_file():
                raise ModelNotFound("mmod_human_face_detector.dat", [str(path.parent)],
                                    "reinstall face-recognition-models==0.3.0")
            self._cnn = dlib.cnn_face_detection_model_v1(str(path))
        self.hog_min_score = float(hog_min_score)
        self.cnn_min_score = None if cnn_min_score is None else float(cnn_min_score)
        self.context, self.match_iou = float(context), float(match_iou)
        self.hog_face_px, self.cnn_face_px = int(hog_face_px), int(cnn_face_px)

    def hog_score(self, rgb: np.ndarray, box) -> float | None:
        crop, b = face_window(rgb, box, self.context, self.hog_face_px)
        # adjust_threshold -1: weak detections too, so the verdict can say how close it was
        rects, scores, _ = self._hog.run(crop, 0, -1.0)
        hits = [float(s) for r, s in zip(rects, scores)
                if _box_iou((r.left(), r.top(), r.right(), r.bottom()), b) >= self.match_iou]
        return max(hits) if hits else None

    def cnn_score(self, rgb: np.ndarray, box) -> float | None:
        crop, b = face_window(rgb, box, self.context, self.cnn_face_px)
        hits = [float(d.confidence) for d in self._cnn(crop, 0)
                if _box_iou((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), b) >= self.match_iou]
        return max(hits) if hits else None

    def check(self, rgb: np.ndarray, box) -> HumanFaceVerdict:
        hog = self.hog_score(rgb, box)
        if hog is not None and hog >= self.hog_min_score:
            return HumanFaceVerdict(True, hog, None)
        if self._cnn is None:
            return HumanFaceVerdict(False, hog, None)
        cnn = self.cnn_score(rgb, box)
        return HumanFaceVerdict(cnn is not None and cnn >= self.cnn_min_score, hog, cnn, ran_cnn=True)


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
