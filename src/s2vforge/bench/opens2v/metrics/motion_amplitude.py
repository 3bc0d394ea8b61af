"""MotionAmplitude metric (official Farneback `motion_fb`) and its magnitude variant.

Pure OpenCV: always available, no weights. All frames are used, as in the original.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..motion import iter_rgb_frames, motion_stats_from_frames
from .base import Sample, Video


def _frames_of(video: Video) -> Iterable[np.ndarray]:
    # Reuse frames another metric already decoded; otherwise stream (keeps memory flat).
    if "frames" in vars(video):
        return iter(video.frames)
    return iter_rgb_frames(video.path)


class MotionAmplitude:
    """Raw value: |mean signed Farneback flow| of width-16 maps (OpenS2V-Eval v1.0/v1.1)."""
    name = "motion_amplitude"

    def __init__(self) -> None:
        pass        # no options: the official recipe has nothing to choose (a typo in -O fails loudly)

    def settings(self) -> dict:
        return {"backend": "opencv-farneback"}

    def load(self) -> None:
        import cv2  # noqa: F401  (fail here, not per video, if OpenCV is broken)

    def applies_to(self, sample: Sample) -> bool:
        return True

    def compute(self, video: Video, sample: Sample) -> float | None:
        return motion_stats_from_frames(_frames_of(video)).amplitude

    def compute_record(self, video: Video, sample: Sample) -> dict:
        """Value plus the magnitude reading, which the runner stores beside it for free."""
        s = motion_stats_from_frames(_frames_of(video))
        return {"value": s.amplitude, "details": {"motion_magnitude": s.magnitude, "motion_drift": s.drift,
                                                  "mean_dx": s.mean_dx, "mean_dy": s.mean_dy, "n_frames": s.n_frames}}


class MotionMagnitude(MotionAmplitude):
    """Mean per-pixel flow length in px/frame. Not in the total: opposite motions do not cancel."""
    name = "motion_magnitude"

    def compute(self, video: Video, sample: Sample) -> float | None:
        return motion_stats_from_frames(_frames_of(video)).magnitude

    def compute_record(self, video: Video, sample: Sample) -> dict:
        s = motion_stats_from_frames(_frames_of(video))
        return {"value": s.magnitude, "details": {"motion_amplitude": s.amplitude, "motion_drift": s.drift,
                                                  "n_frames": s.n_frames}}
