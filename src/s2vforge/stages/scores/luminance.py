"""Mean luminance of a clip: drops near-black and blown-out footage.

Rec.709 luma weights (0.2126 R + 0.7152 G + 0.0722 B) on the gamma-encoded 0..255 values, as
OpenHumanVid describes; the recipe default keeps [10, 210] (OpenHumanVid). Frames are
cropped first so letterbox bars do not darken the score.
"""
from __future__ import annotations

import cv2
import numpy as np

from s2vforge.media.frames import ClipFrames

COLUMNS = ("score_luminance",)
REC709_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)


def frame_luminance(rgb: np.ndarray) -> float:
    """Mean Rec.709 luma of one HxWx3 uint8 RGB frame, 0..255."""
    channel_means = np.array(cv2.mean(rgb)[:3])  # works on cropped views without a copy
    return float(channel_means @ REC709_WEIGHTS)


def score_luminance(frames: ClipFrames) -> dict:
    if not frames.rgb:
        return {"score_luminance": None}
    return {"score_luminance": float(np.mean([frame_luminance(f) for f in frames.cropped()]))}
