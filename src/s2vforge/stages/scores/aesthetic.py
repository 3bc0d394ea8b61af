"""Aesthetic quality (reference backend only): LAION improved-aesthetic MLP on CLIP ViT-L/14.

score_aesthetic = mean predictor score over `n_frames` evenly picked cropped frames (4 in the
default recipe's scorer_params.aesthetic; LAION scale ~1..10; OpenS2V-Eval normalises [4, 7]). There is no embedded fallback: without the
weights the loader raises BackendUnavailable, run_scorers records the reason and the column
stays None. The predictor is built once per process and per (dirs, device, dtype); a
failed load is remembered too, so a missing model is not searched for again on every clip.
"""
from __future__ import annotations

import threading

import numpy as np

from s2vforge.backends.aesthetic import AestheticPredictor
from s2vforge.backends.errors import BackendUnavailable
from s2vforge.media.frames import ClipFrames

COLUMNS = ("score_aesthetic",)

_CACHE: dict[tuple, AestheticPredictor | BackendUnavailable] = {}
_LOCK = threading.Lock()


def load_predictor(clip_dir, mlp_path, device: str, dtype) -> AestheticPredictor:
    """The predictor for these weights (None = searched where backends/aesthetic.py looks)."""
    key = (str(clip_dir) if clip_dir else None, str(mlp_path) if mlp_path else None, str(device), str(dtype))
    with _LOCK:
        if key not in _CACHE:
            try:
                _CACHE[key] = AestheticPredictor.from_dirs(clip_dir, mlp_path, device=device, dtype=dtype)
            except BackendUnavailable as exc:
                _CACHE[key] = str(exc)
        cached = _CACHE[key]
    if isinstance(cached, str):
        # a fresh exception per call: re-raising one cached instance chains every caller's
        # traceback onto it and keeps each clip's frames alive (a leak of ~200 MB per video)
        raise BackendUnavailable.from_message(cached)
    return cached


def clear_cache() -> None:
    """Forget loaded predictors and remembered failures (tests; weights added mid-process)."""
    with _LOCK:
        _CACHE.clear()


def score_aesthetic(frames: ClipFrames, *, n_frames: int, clip_dir, mlp_path, device: str, dtype) -> dict:
    predictor = load_predictor(clip_dir, mlp_path, device, dtype)
    picked = frames.pick(n_frames)
    if not picked:
        return {"score_aesthetic": None}
    scores = predictor.predict(frames.cropped([frames.rgb[i] for i in picked]))
    return {"score_aesthetic": float(np.mean(scores))}
