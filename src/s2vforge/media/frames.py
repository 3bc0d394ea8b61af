"""The frames of one clip, decoded once and shared by every scorer.

Decode is the floor of curation cost, so the engine decodes each video in one streaming
pass and hands every stage (crop detection, scorers) the same small set of analysis frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ClipFrames:
    clip_id: str
    fps: float                       # nominal fps of the source (average rate for VFR)
    start_s: float
    end_s: float
    source_size: tuple[int, int]     # (width, height) of the decoded, rotation-corrected video
    rgb: list[np.ndarray]            # analysis frames, HxWx3 uint8 RGB, ~analysis_fps, uncropped
    times: list[float]               # presentation time (s) of each analysis frame
    next_rgb: list[np.ndarray] = field(default_factory=list)  # the frame right after rgb[i] (same size): flow pairs
    next_dt: list[float] = field(default_factory=list)        # seconds between rgb[i] and next_rgb[i]
    crop: tuple[int, int, int, int] | None = None              # x0, y0, x1, y1 in *source* pixels

    @property
    def analysis_size(self) -> tuple[int, int]:
        h, w = self.rgb[0].shape[:2]
        return w, h

    @property
    def scale(self) -> float:
        """analysis pixels per source pixel."""
        return self.analysis_size[0] / self.source_size[0]

    def crop_in_analysis(self) -> tuple[int, int, int, int]:
        w, h = self.analysis_size
        if self.crop is None:
            return 0, 0, w, h
        s = self.scale
        x0, y0, x1, y1 = self.crop
        return (max(0, round(x0 * s)), max(0, round(y0 * s)),
                min(w, max(round(x0 * s) + 1, round(x1 * s))), min(h, max(round(y0 * s) + 1, round(y1 * s))))

    def cropped(self, frames: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Analysis frames with the clip's crop applied (views, no copy)."""
        x0, y0, x1, y1 = self.crop_in_analysis()
        return [f[y0:y1, x0:x1] for f in (self.rgb if frames is None else frames)]

    def pick(self, n: int) -> list[int]:
        """Indices of n analysis frames spread evenly over the clip (for costly per-frame models)."""
        k = len(self.rgb)
        if k == 0:
            return []
        if n >= k:
            return list(range(k))
        return sorted({int(round(i)) for i in np.linspace(0, k - 1, n)})
