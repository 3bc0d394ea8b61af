"""The contract between the OpenS2V-Eval runner and each metric.

A metric turns one generated video (+ its benchmark sample) into one *raw* value, the same
number the official scripts print before normalisation. Frame sampling follows the original
scripts (see /work/shared/reference/README.md): 32 uniform frames for aesthetic, GmeScore,
FaceSim and NexusScore; 16 frames at stride T//16 for NaturalScore; all frames for motion.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass
class Sample:
    """One benchmark entry from {Open,Human,Single}-Domain_Eval.json."""
    id: str
    prompt: str
    ref_paths: list[Path]            # resolved against --bench-root
    class_label: list[str] = field(default_factory=list)
    synthesis_flag: bool | None = None
    video_path: Path | None = None


@dataclass
class Video:
    """All decoded RGB frames of a generated video (benchmark videos are short: ~50-130 frames)."""
    path: Path

    @cached_property
    def frames(self) -> np.ndarray:          # (T, H, W, 3) uint8 RGB
        from ....media.decode import av_open
        with av_open(self.path) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    def uniform(self, n: int = 32) -> np.ndarray:
        """`linspace(0, T-1, n)` sampling of the official aesthetic/GME/FaceSim/Nexus scripts."""
        idx = np.linspace(0, self.n_frames - 1, n).astype(int)
        return self.frames[idx]

    def strided(self, n: int = 16) -> np.ndarray:
        """Fixed stride T//n sampling of the official NaturalScore script (first n frames at that stride)."""
        step = max(1, self.n_frames // n)
        return self.frames[::step][:n]


class Metric(Protocol):
    name: str            # raw key: aesthetic | motion_smoothness | motion_amplitude | facesim | gme | nexus | natural

    def load(self) -> None:
        """Load models/clients once; raise s2vforge.backends.errors.BackendUnavailable when impossible."""

    def applies_to(self, sample: Sample) -> bool:
        """False when the official scripts skip this sample (e.g. FaceSim only on face/human ids)."""

    def compute(self, video: Video, sample: Sample) -> float | None:
        """Raw per-video value; None when it cannot be computed for this video (recorded, never guessed)."""
