"""NSFW screening with NudeNet 3.4 (its bundled 320n.onnx YOLO detector, no download).

score_nsfw = max over `n_frames` evenly picked cropped frames of the highest detection score
among the exposed `classes`, 0.0 when none is detected (NudeNet only reports boxes with score
>= 0.2). Both are scorer_params.nsfw (3 frames and the NudeNet 3.x labels that mean sexual
nudity in the default recipe: covered body parts, faces, feet, armpits, belly and male chest are
ordinary in clothed or sports footage and are ignored). Frames are handed over in BGR order, as `cv2.imread` would give them, which
is how NudeNet reads image files. The detector is loaded once per process.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from s2vforge.backends.errors import BackendUnavailable
from s2vforge.media.frames import ClipFrames

COLUMNS = ("score_nsfw",)


@functools.lru_cache(maxsize=1)
def load_detector():
    """NudeNet's detector on its bundled 320n.onnx, built once per process."""
    try:
        from nudenet import NudeDetector
    except ImportError as exc:
        raise BackendUnavailable("NudeNet 320n (python package `nudenet`)", [],
                                 f"Install it: pip install 'nudenet>=3.4' ({exc}).") from exc
    return NudeDetector()


def max_exposed_score(detections: list[dict], classes) -> float:
    return max((float(d["score"]) for d in detections if d["class"] in classes), default=0.0)


def score_nsfw(frames: ClipFrames, *, n_frames: int, classes) -> dict:
    picked = frames.pick(n_frames)
    if not picked:
        return {"score_nsfw": None}
    detector = load_detector()
    images = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR)
              for f in frames.cropped([frames.rgb[i] for i in picked])]
    per_frame = detector.detect_batch(images, batch_size=len(images))
    classes = frozenset(classes)
    return {"score_nsfw": max(max_exposed_score(d, classes) for d in per_frame)}
