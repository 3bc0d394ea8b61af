"""OpenS2V-Eval (Yuan et al. 2025, arXiv:2505.20292): metrics, normalisation, total, leaderboard.

Importing this package is cheap: OpenCV, PyAV and the model-backed metrics are imported
only when a function that needs them runs.
"""
from __future__ import annotations

from .scoring import (
    WEIGHTS,
    ScoringError,
    artifact_frames,
    normalize,
    normalize_per_video,
    normalize_value,
    partial_total,
    smoothness_from_quality,
    total_score,
    weights,
)

__all__ = [
    "WEIGHTS", "ScoringError", "artifact_frames", "normalize", "normalize_per_video", "normalize_value",
    "partial_total", "smoothness_from_quality", "total_score", "weights",
    "motion_amplitude", "motion_magnitude", "motion_stats", "evaluate", "verify",
]


def motion_amplitude(video_path) -> float:
    """Official MotionAmplitude raw value (`motion_fb`); see motion.py."""
    from .motion import motion_amplitude as f
    return f(video_path)


def motion_magnitude(video_path) -> float:
    """Mean optical-flow length in px/frame (our variant, not in the total); see motion.py."""
    from .motion import motion_magnitude as f
    return f(video_path)


def motion_stats(video_path):
    from .motion import motion_stats as f
    return f(video_path)


def evaluate(*args, **kwargs) -> dict:
    """See runner.evaluate."""
    from .runner import evaluate as f
    return f(*args, **kwargs)


def verify(csv_path, version: str = "v1.1", domain: str = "open", **kwargs) -> list[dict]:
    """See leaderboard.verify."""
    from .leaderboard import verify as f
    return f(csv_path, version, domain, **kwargs)
