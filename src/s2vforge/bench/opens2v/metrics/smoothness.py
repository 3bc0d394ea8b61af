"""Motion smoothness (OpenS2V-Eval v1.1): artifact frames found from per-frame quality jumps.

get_motion_smoothness.py: every frame is scored by Q-Align on its 3-frame window; a frame
whose score differs from its neighbour's by more than 0.025 is an artifact (with that
neighbour); raw value = 1 - artifact frames / all frames (normalised later as min(x, 1)).
The rule is s2vforge.bench.opens2v.scoring.smoothness_from_quality; the scorers live in
s2vforge.backends.qalign:

  backend="onnx"    one-align ONNX export (reference)           -> name `motion_smoothness`
  backend="vlm"     Q-Align recipe on a transformers Qwen2-VL   -> name `smoothness_vlm`
  backend="brisque" classical BRISQUE per frame (embedded)       -> name `smoothness_brisque`
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..scoring import artifact_frames, smoothness_from_quality
from .base import Sample, Video

SMOOTHNESS_THR = 0.025   # get_motion_smoothness.py get_artifacts_frames(threshold=0.025)
WINDOW = 3               # get_motion_smoothness.py --window_size

_NAMES = {"onnx": "motion_smoothness", "vlm": "smoothness_vlm", "brisque": "smoothness_brisque"}


class MotionSmoothness:
    """Raw value: 1 - artifact-frame fraction from windowed per-frame quality, all frames."""
    name = "motion_smoothness"   # instance value depends on the backend (see _NAMES)
    comparable = True            # one-align with the official window and threshold only
    same_scale = True            # vlm: the same Q-Align recipe on another model; brisque: an uncalibrated proxy

    def __init__(self, backend: str = "onnx", model_dir=None, device: str = "cpu", dtype=None,
                 window: int = WINDOW, thr: float = SMOOTHNESS_THR, scorer=None, **scorer_kw) -> None:
        if backend not in _NAMES:
            raise ValueError(f"smoothness backend must be one of {sorted(_NAMES)} (got {backend!r})")
        self.backend = backend
        self.name = _NAMES[backend]
        self.window, self.thr = int(window), float(thr)
        self.comparable = backend == "onnx" and self.window == WINDOW and self.thr == SMOOTHNESS_THR
        self.same_scale = backend != "brisque"
        self.model_dir, self.device, self.dtype = model_dir, device, dtype
        self.scorer, self.scorer_kw = scorer, scorer_kw

    def settings(self) -> dict:
        """What decides the values (the runner records it and never mixes rows of other settings)."""
        out = {"backend": self.backend, "window": self.window, "thr": self.thr}
        if self.backend == "vlm":      # any Qwen2-VL: which one matters
            out["model"] = Path(self.model_dir).name if self.model_dir else "qalign-vlm"
        out.update({k: v for k, v in sorted(self.scorer_kw.items()) if k != "batch_size"})   # e.g. long_side
        return out

    def load(self) -> None:
        if self.scorer is None:
            from ....backends.qalign import load_quality_scorer
            self.scorer = load_quality_scorer(self.backend, self.model_dir, device=self.device, dtype=self.dtype,
                                              **self.scorer_kw)

    def applies_to(self, sample: Sample) -> bool:
        return True

    def compute_record(self, video: Video, sample: Sample) -> dict:
        self.load()
        frames = video.frames
        if len(frames) == 0:
            return {"value": None, "details": {"reason": "no frames"}}
        q = np.asarray(self.scorer.score_video(frames, self.window), np.float64)
        n_art = len(artifact_frames(q.tolist(), self.thr))
        return {"value": float(smoothness_from_quality(q.tolist(), self.thr)),
                "details": {"metric": self.name, "n_frames": int(q.size), "artifact_frames": int(n_art), "quality_mean": float(q.mean()),
                            "quality_max_jump": float(np.abs(np.diff(q)).max()) if q.size > 1 else 0.0}}

    def compute(self, video: Video, sample: Sample) -> float | None:
        return self.compute_record(video, sample)["value"]
