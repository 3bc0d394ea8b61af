"""No-reference technical quality: BRISQUE (Mittal, Moorthy & Bovik 2012), lower is better.

Uses the `brisque` package's pretrained SVR (BRISQUE(url=False).score; it ships its model
files, nothing is downloaded). BRISQUE features are scale dependent, so `n_frames` evenly
picked cropped frames are resized to a fixed working size, long side `long_side` px, before
scoring (scorer_params.brisque: 3 frames at 512 px in the default recipe); the clip value is the
mean. It costs ~0.2 s a frame on one CPU core, which is
why only a few frames are scored. The model is loaded once per process.
"""
from __future__ import annotations

import functools
import math
import warnings

import cv2
import numpy as np

from s2vforge.backends.errors import BackendUnavailable
from s2vforge.media.frames import ClipFrames

COLUMNS = ("score_brisque",)


@functools.lru_cache(maxsize=1)
def load_brisque():
    """The package's BRISQUE scorer, built once per process."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package imports deprecated scipy names
            from brisque import BRISQUE
    except ImportError as exc:
        raise BackendUnavailable("BRISQUE (python package `brisque`)", [],
                                 f"Install it: pip install 'brisque>=0.2' ({exc}).") from exc
    return BRISQUE(url=False)


def resize_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    if abs(s - 1.0) < 1e-9:
        return np.ascontiguousarray(rgb)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def brisque_of_image(rgb: np.ndarray) -> float | None:
    """BRISQUE of one RGB image; None for flat/degenerate images (the GGD fit gives NaN or raises).

    Rounded to 6 decimals: the package's feature fit is reproducible only to ~1e-11 (threaded
    BLAS reductions), and every engine must write identical tables run after run."""
    model = load_brisque()
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # flat frames make the GGD fit warn
            value = float(model.score(rgb))
    except (ValueError, ZeroDivisionError, np.linalg.LinAlgError):
        return None
    return round(value, 6) if math.isfinite(value) else None


def score_brisque(frames: ClipFrames, *, n_frames: int, long_side: int) -> dict:
    picked = frames.pick(n_frames)
    if not picked:
        return {"score_brisque": None}
    load_brisque()   # an unavailable backend raises here, once, not per frame
    values = [v for v in (brisque_of_image(resize_long_side(f, long_side))
                          for f in frames.cropped([frames.rgb[i] for i in picked])) if v is not None]
    return {"score_brisque": round(float(np.mean(values)), 6) if values else None}
