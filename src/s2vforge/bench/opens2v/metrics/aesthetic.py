"""Aesthetic metric: mean LAION aesthetic score of 32 uniformly sampled frames.

OpenS2V-Eval get_aesscore.py: CLIP ViT-L/14 image embedding, L2-normalised, through the LAION
improved-aesthetic MLP; raw value is the mean over `linspace(0, T-1, 32)` frames (normalised
later as clip(x, 4, 7) -> (x - 4) / 3). The predictor lives in s2vforge.backends.aesthetic.
"""
from __future__ import annotations

import numpy as np

from .base import Sample, Video

N_FRAMES = 32   # OpenS2V-Eval get_aesscore.py num_frames


class AestheticScore:
    """Raw value: mean LAION aesthetic (~1..10) over 32 uniform frames."""
    name = "aesthetic"
    comparable = True         # with the official 32 frames
    same_scale = True


    def __init__(self, backend: str = "laion", clip_dir=None, mlp_path=None, model_dir=None, device: str = "cpu",
                 dtype=None, n_frames: int = N_FRAMES, batch_size: int = 16, predictor=None) -> None:
        if backend != "laion":
            raise ValueError(f"aesthetic has one backend, 'laion' (got {backend!r})")
        self.clip_dir = clip_dir or model_dir
        self.mlp_path = mlp_path
        self.device, self.dtype = device, dtype
        self.n_frames, self.batch_size = int(n_frames), batch_size
        self.comparable = self.n_frames == N_FRAMES
        self.predictor = predictor

    def settings(self) -> dict:
        """What decides the values (the runner records it and never mixes rows of other settings)."""
        return {"backend": "laion", "n_frames": self.n_frames}

    def load(self) -> None:
        if self.predictor is None:
            from ....backends.aesthetic import AestheticPredictor
            self.predictor = AestheticPredictor.from_dirs(self.clip_dir, self.mlp_path, device=self.device, dtype=self.dtype)

    def applies_to(self, sample: Sample) -> bool:
        return True

    def compute_record(self, video: Video, sample: Sample) -> dict:
        self.load()
        scores = np.asarray(self.predictor.predict(list(video.uniform(self.n_frames)), batch_size=self.batch_size), np.float64)
        if scores.size == 0:
            return {"value": None, "details": {"reason": "no frames"}}
        return {"value": float(scores.mean()), "details": {"n_frames": int(scores.size), "min": float(scores.min()),
                                                             "max": float(scores.max())}}

    def compute(self, video: Video, sample: Sample) -> float | None:
        return self.compute_record(video, sample)["value"]
