"""Text detection + recognition on single frames (for the crop stage's subtitle bands and ocr_area).

One backend, ``rapidocr``: PP-OCR (the PaddleOCR family the curation papers use) exported to
ONNX and shipped inside the rapidocr wheel, so it runs offline with nothing to download. It is
both the embedded and the reference backend. rapidocr is imported lazily: importing this
module costs nothing.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .errors import BackendUnavailable


@dataclass(frozen=True)
class TextBox:
    """One detected text line. quad: 4 (x, y) corners in pixels of the image given to detect()."""
    quad: tuple[tuple[float, float], ...]
    text: str | None        # recognised text; None when the detector only detects
    score: float            # recognition confidence (detection confidence when text is None)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.quad]
        ys = [p[1] for p in self.quad]
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.bbox
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def area(self) -> float:
        """Polygon (shoelace) area, so slanted lines are not over-counted by their bounding box."""
        q = np.asarray(self.quad, dtype=np.float64)
        x, y = q[:, 0], q[:, 1]
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


class TextDetector(Protocol):
    def detect(self, rgb: np.ndarray) -> list[TextBox]:
        """Text lines in one HxWx3 uint8 RGB frame."""
        ...


class RapidOCRTextDetector:
    """PP-OCR det (+ rec) through rapidocr's ONNX models.

    Defaults differ from rapidocr's own on purpose:
    - detection resizes with PaddleOCR's ``det_limit_type="max"``, ``det_limit_side_len=960``
      (PaddleOCR's inference default) instead of rapidocr's "min side >= 736", which
      upscales a 640x272 analysis frame to 1732x736 and costs ~3x the time (measured 650 vs
      230 ms per frame on 2 CPU cores) for the same subtitle boxes;
    - the 180-degree line classifier is off: subtitles and captions are upright, and it only
      adds time;
    - ``text_score=0.5`` is PaddleOCR's ``drop_score`` default (rapidocr's too). The crop stage
      applies its own stricter filter on top;
    - onnxruntime runs one intra-op thread (ours): curation already runs one worker per core,
      and ORT's spinning thread pool collapses under that contention (3 OCR frames: 0.5 s with
      1 thread vs 1.7 s with 2 threads, wall, on a busy 2-core box). Pass num_threads=-1 for
      all cores when one process has the machine to itself.
    """

    def __init__(self, *, recognize: bool = True, det_limit_side_len: int = 960, text_score: float = 0.5,
                 box_thresh: float = 0.5, num_threads: int = 1):
        try:
            from rapidocr import RapidOCR
        except ImportError as e:  # pragma: no cover - rapidocr is a core dependency
            raise BackendUnavailable(
                "rapidocr (PP-OCR ONNX)", ["python package 'rapidocr'"],
                f"Install it with `pip install rapidocr onnxruntime` ({e}).") from e
        self.recognize = recognize
        params = {
            "Global.log_level": "error",    # rapidocr warns on every frame without text
            "Global.use_cls": False,
            "Global.use_rec": recognize,
            "Global.text_score": text_score,
            "Det.limit_type": "max",
            "Det.limit_side_len": det_limit_side_len,
            "Det.box_thresh": box_thresh,   # PaddleOCR det_db_box_thresh default 0.5
            "EngineConfig.onnxruntime.intra_op_num_threads": num_threads,
        }
        try:
            self._engine = RapidOCR(params=params)
        except Exception as e:  # missing/corrupt model files inside the wheel
            raise BackendUnavailable("rapidocr (PP-OCR ONNX)", ["rapidocr package models/ directory"],
                                     f"Reinstall rapidocr ({type(e).__name__}: {e}).") from e
        # RapidOCR keeps per-call state on the instance; serialise calls from threads.
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[TextBox]:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected HxWx3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])   # rapidocr treats arrays as BGR (OpenCV order)
        with self._lock:
            out = self._engine(bgr)
        boxes = getattr(out, "boxes", None)
        if boxes is None or len(boxes) == 0:
            return []
        txts = getattr(out, "txts", None) if self.recognize else None
        scores = getattr(out, "scores", None)
        result = []
        for i, quad in enumerate(np.asarray(boxes, dtype=np.float64)):
            text = str(txts[i]) if txts is not None else None
            score = float(scores[i]) if scores is not None and i < len(scores) else 1.0
            result.append(TextBox(quad=tuple((float(x), float(y)) for x, y in quad), text=text, score=score))
        return result


_BACKENDS = {"rapidocr": RapidOCRTextDetector}
_CACHE: dict[tuple, TextDetector] = {}
_CACHE_LOCK = threading.Lock()


def get_text_detector(backend: str = "rapidocr", **options) -> TextDetector:
    """The process-wide detector for (backend, options); models load once per process."""
    if backend not in _BACKENDS:
        raise ValueError(f"unknown OCR backend {backend!r}; known: {sorted(_BACKENDS)}")
    key = (backend, tuple(sorted(options.items())))
    with _CACHE_LOCK:
        det = _CACHE.get(key)
        if det is None:
            det = _CACHE[key] = _BACKENDS[backend](**options)
    return det
