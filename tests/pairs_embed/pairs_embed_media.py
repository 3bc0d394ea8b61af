"""Real subject crops for the identity-embedding tests, built from photos/videos that ship in packages.

Subjects are cut from real photos with fixed hand-traced outlines (the outlines of
tests/subjects_masks/composites.py, copied so this folder stands alone), plus matplotlib's
RGBA gift pack (its own alpha). A *variant* is what the subjects stage would write for the
same instance seen elsewhere: scaled 0.5-1.5, maybe mirrored, brightness/contrast/gamma
changed, pasted on a different real background, the mask eroded or dilated by 2 px (an
imperfect segmentation lets 2 px of the new background in), blurred and JPEG-compressed;
the crop is the mask's box as RGBA with alpha = mask.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from s2vforge.corpus.synth import packaged_clip_frames


def skimage_photo(name: str) -> Path:
    return Path(importlib.util.find_spec("skimage").origin).parent / "data" / name


def mpl_photo(name: str) -> Path:
    return Path(importlib.util.find_spec("matplotlib").origin).parent / "mpl-data" / "sample_data" / name


@lru_cache(maxsize=None)
def load_rgb(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@lru_cache(maxsize=None)
def video_frames(name: str, indices: tuple[int, ...]) -> dict[int, np.ndarray]:
    return packaged_clip_frames(name, indices)


def video_frame(name: str, index: int) -> np.ndarray:
    return video_frames(name, (index,))[index]


@dataclass(frozen=True)
class Subject:
    name: str
    source: str
    polygons: tuple = ()
    ellipses: tuple = ()
    own_alpha: bool = False

    def cutout(self) -> tuple[np.ndarray, np.ndarray]:
        """(RGB, mask) cropped to the outline's box."""
        if self.own_alpha:
            a = np.asarray(Image.open(self.source).convert("RGBA"))
            img, m = a[..., :3], a[..., 3] > 127
        else:
            img = load_rgb(self.source)
            m8 = np.zeros(img.shape[:2], np.uint8)
            for poly in self.polygons:
                cv2.fillPoly(m8, [np.asarray(poly, np.int32)], 1)
            for cx, cy, ax, ay in self.ellipses:
                cv2.ellipse(m8, (cx, cy), (ax, ay), 0, 0, 360, 1, -1)
            m = m8.astype(bool)
        ys, xs = np.nonzero(m)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        return np.ascontiguousarray(img[y0:y1, x0:x1]), m[y0:y1, x0:x1].copy()


SUBJECTS = (
    Subject("coffee_cup", str(skimage_photo("coffee.png")), ellipses=((287, 112, 116, 94), (276, 218, 203, 176))),
    Subject("rocket", str(skimage_photo("rocket.jpg")),
            polygons=(((322, 127), (328, 131), (333, 142), (335, 160), (336, 400), (309, 400), (309, 160),
                       (311, 142), (316, 131)),)),
    Subject("cat_head", str(skimage_photo("chelsea.png")),
            polygons=(((0, 0), (352, 0), (372, 18), (396, 0), (388, 40), (372, 70), (368, 130), (358, 200),
                       (336, 255), (305, 300), (0, 300)),)),
    Subject("astronaut", str(skimage_photo("astronaut.png")),
            polygons=(((225, 12), (262, 18), (290, 40), (302, 75), (300, 115), (310, 150), (312, 195), (340, 230),
                       (358, 270), (362, 340), (400, 342), (460, 360), (500, 400), (512, 440), (512, 512),
                       (30, 512), (28, 330), (45, 270), (75, 235), (115, 200), (125, 175), (150, 140), (152, 95),
                       (155, 50), (180, 25)),)),
    Subject("grace_hopper", str(mpl_photo("grace_hopper.jpg")),
            polygons=(((265, 22), (305, 28), (340, 45), (362, 85), (372, 125), (372, 175), (360, 235), (345, 300),
                       (350, 320), (420, 345), (480, 375), (505, 415), (512, 460), (512, 600), (15, 600),
                       (18, 470), (35, 405), (75, 375), (140, 345), (195, 328), (185, 295), (165, 245),
                       (153, 175), (160, 115), (175, 70), (205, 38), (235, 25)),)),
    Subject("gift_pack", str(mpl_photo("Minduka_Present_Blue_Pack.png")), own_alpha=True),
)

BACKGROUNDS = {   # real scenes, none of them a subject's own photo
    "garage": lambda: load_rgb(str(skimage_photo("motorcycle_left.png"))),
    "street_a": lambda: video_frame("bikes.mp4", 10),
    "street_b": lambda: video_frame("bikes.mp4", 200),
    "grass": lambda: load_rgb(str(skimage_photo("grass.png"))),
    "bricks": lambda: load_rgb(str(skimage_photo("brick.png"))),
    "meadow": lambda: video_frame("bigbuckbunny.mp4", 0),
}


def apply_gain(rgb: np.ndarray, gain: float, gamma: float = 1.0, contrast: float = 1.0) -> np.ndarray:
    x = (rgb.astype(np.float32) / 255.0) ** gamma * gain
    x = (x - 0.5) * contrast + 0.5
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


BASE_HEIGHT = 200   # px of a subject at scale 1.0


def variant(subject: Subject, bg: np.ndarray, *, scale: float, flip: bool, gain: float, gamma: float,
            contrast: float, mask_px: int, rng: np.random.Generator) -> np.ndarray:
    """One RGBA crop of `subject` as the subjects stage would write it (see module docstring)."""
    rgb, m = subject.cutout()
    if flip:
        rgb, m = rgb[:, ::-1], m[:, ::-1]
    s = BASE_HEIGHT * scale / rgb.shape[0]
    wh = (max(2, round(rgb.shape[1] * s)), max(2, round(rgb.shape[0] * s)))
    rgb = cv2.resize(np.ascontiguousarray(rgb), wh, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    m = cv2.resize(np.ascontiguousarray(m.astype(np.uint8)), wh, interpolation=cv2.INTER_NEAREST)
    rgb = apply_gain(rgb, gain, gamma, contrast)
    margin = 4
    h, w = m.shape[0] + 2 * margin, m.shape[1] + 2 * margin
    big = cv2.resize(bg, (max(bg.shape[1], w + 1), max(bg.shape[0], h + 1)))
    y0 = int(rng.integers(0, big.shape[0] - h + 1))
    x0 = int(rng.integers(0, big.shape[1] - w + 1))
    canvas = big[y0:y0 + h, x0:x0 + w].copy()
    full = np.zeros((h, w), np.uint8)
    full[margin:margin + m.shape[0], margin:margin + m.shape[1]] = m
    region = canvas[margin:margin + m.shape[0], margin:margin + m.shape[1]]
    region[m.astype(bool)] = rgb[m.astype(bool)]
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.6)
    ok, buf = cv2.imencode(".jpg", canvas[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    canvas = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    k = np.ones((2 * abs(mask_px) + 1,) * 2, np.uint8)
    if mask_px > 0:
        full = cv2.dilate(full, k)
    elif mask_px < 0:
        full = cv2.erode(full, k)
    ys, xs = np.nonzero(full)
    ya, yb, xa, xb = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return np.ascontiguousarray(np.dstack([canvas[ya:yb, xa:xb], full[ya:yb, xa:xb] * 255]).astype(np.uint8))


def variants(subject: Subject, n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` seeded variants over rotating backgrounds: scale 0.5-1.5, flips, lighting, mask error."""
    rng = np.random.default_rng(seed + sum(map(ord, subject.name)))
    names = list(BACKGROUNDS)
    out = []
    for i in range(n):
        bg = BACKGROUNDS[names[(i + len(subject.name)) % len(names)]]()
        out.append(variant(subject, bg, scale=float(rng.uniform(0.5, 1.5)), flip=bool(i % 2),
                           gain=float(rng.uniform(0.6, 1.4)), gamma=float(rng.uniform(0.8, 1.25)),
                           contrast=float(rng.uniform(0.75, 1.25)), mask_px=int(rng.choice([-2, 0, 2])), rng=rng))
    return out


BUNNY_BOXES = {60: (160, 0, 640, 620), 90: (160, 80, 620, 620), 120: (260, 80, 620, 600)}   # traced on the frames


def bunny_crops() -> list[np.ndarray]:
    """RGB crops (no mask) of Big Buck Bunny in three poses (frames 60, 90, 120)."""
    frames = video_frames("bigbuckbunny.mp4", tuple(BUNNY_BOXES))
    return [np.ascontiguousarray(frames[i][y0:y1, x0:x1]) for i, (x0, y0, x1, y1) in BUNNY_BOXES.items()]


@lru_cache(maxsize=None)
def carphone_frames(indices: tuple[int, ...] = (0, 60, 110)) -> dict[int, np.ndarray]:
    return video_frames("carphone_pristine.mp4", indices)


def separation(emb: np.ndarray, labels: list[str]) -> dict:
    """min same-instance cosine, max different-instance cosine and the ROC AUC (same vs different)."""
    sim = emb @ emb.T
    lab = np.asarray(labels)
    iu = np.triu_indices(len(lab), 1)
    same = lab[iu[0]] == lab[iu[1]]
    s = sim[iu]
    pos, neg = s[same], s[~same]
    auc = float((pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean())
    return {"min_same": float(pos.min()), "max_diff": float(neg.max()), "mean_same": float(pos.mean()),
            "mean_diff": float(neg.mean()), "auc": auc, "n_same": int(len(pos)), "n_diff": int(len(neg))}


def embed_cfg(**categories) -> dict:
    """The default recipe's `pairs.embed` section, some categories' settings overridden:
    embed_cfg(object={"backend": "clip", "model": DIR})."""
    from s2vforge.recipes import load_recipe
    cfg = load_recipe(None)["pairs"]["embed"]
    for cat, settings in categories.items():
        cfg[cat] = {**cfg[cat], **settings}
    return cfg
