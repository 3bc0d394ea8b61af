"""Identity embeddings of subject crops, for pair mining (Phantom-Data, OpenS2V-Nexus).

A crop is what the subjects stage writes: RGBA uint8 with alpha = the subject mask (the RGB
under alpha 0 keeps the real pixels), or plain RGB. Every embedder returns (N, dim) float32
rows, L2-normalised, and a row of NaN for a crop it cannot embed (empty mask, no texture,
no face) - one bad crop never raises.

Embedded backends (no torch, no downloads):

- `SiftColourDescriptor` ("sift-colour-v1"), an *instance* descriptor for objects and animals,
  concatenating, each block L2-normalised and weighted:
  (a) a hue x saturation histogram of the masked pixels (HSV hue and saturation do not change
      under a gain on RGB, so brightness/contrast changes barely move it), soft-binned in hue,
      with one bin for achromatic pixels, Hellinger-mapped (sqrt);
  (b) a bag of visual words of RootSIFT descriptors (Arandjelovic & Zisserman 2012) quantised
      on a fixed 256-word codebook (`data/sift_codebook_256.npz`: seeded k-means over SIFT of
      packaged photos that are not our test subjects, rebuilt bit-identically by
      `build_sift_codebook`), centred by the mean histogram of those photos. The crop (160 px
      long side) and its mirror are both described and their words pooled: flip-invariant;
  (c) a colour layout: the same hue histogram in 4 horizontal bands of the subject's box
      (flip-invariant by construction; it tells a red-over-blue subject from blue-over-red).
  The crop is first cut to its mask's box, scaled to a 224-px long side (scale invariance)
  and composited on neutral grey (the background never enters; the silhouette becomes a
  shape cue seen identically on every background).
- `DlibFaceIdentity` ("dlib-face-128"): dlib HOG face detection on the grey-padded crop, the
  5-landmark shape and dlib's 128-d ResNet descriptor (backends/face.DlibFaces). When HOG
  finds nothing, the crop rectangle itself is used as the face box (`embed_with_info` says
  so). Cosine of the unit vectors; dlib's documented same-person rule (face_recognition's
  tolerance 0.6 on raw vectors) is converted by `dlib_cosine_threshold`.
- `ConcatIdentity`: weighted concatenation (persons = appearance ++ face, Phantom-Data).

Reference backends (lazy imports):

- `OnnxFaceIdentity` ("arcface:<file>"): ArcFace/CurricularFace IR-ResNet ONNX through
  backends/face.OnnxFaceEmbedder on a 112 px crop aligned from dlib's 5 landmarks (see
  `align_from_dlib5`);
- `HFImageIdentity` ("clip:<dir>", "dinov2:<dir>", "siglip:<dir>"): CLIP image_embeds,
  DINOv2 pooler (CLS after the final layernorm), SigLIP pooler, via transformers, with the
  preprocessing in numpy/cv2 (RGBA composited on grey, padded to a square so a tall subject
  is never cut by a centre crop, resized, normalised with the model's mean/std), batched.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import BackendUnavailable, ModelNotFound

# ---------------------------------------------------------------- shared crop handling

ALPHA_THRESHOLD = 127        # as stages/subjects/quality.py: alpha > 127 is subject
GREY = 128                   # neutral grey behind composited subjects (also backends/face.pad_frame)
MIN_SUBJECT_PX = 64          # ours: fewer masked pixels than an 8x8 patch carry no identity
MIN_SUBJECT_STD = 2.0        # ours: a flat patch (grey-level std < 2) carries no identity either


def crop_rgb_mask(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8, bool mask) of an RGBA / RGB / grey crop; RGB crops are all subject."""
    a = np.asarray(crop)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        return np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0), bool)
    if a.shape[2] == 4:
        return np.ascontiguousarray(a[..., :3]), a[..., 3] > ALPHA_THRESHOLD
    return np.ascontiguousarray(a), np.ones(a.shape[:2], bool)


def composite_on_grey(rgb: np.ndarray, mask: np.ndarray, value: int = GREY) -> np.ndarray:
    out = rgb.copy()
    out[~mask] = value
    return out


def _l2(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else v


# ---------------------------------------------------------------- (a)+(c) colour

HUE_BINS = 16          # ours: 22.5 degrees a bin, soft-assigned to the two nearest
SAT_BINS = 3           # ours: pale / medium / vivid
CHROMA_MIN_S = 40      # ours (of 255): below this saturation a pixel's hue is noise -> achromatic bin
CHROMA_MIN_V = 40      # ours (of 255): below this value too (dark pixels have unstable hue)
LAYOUT_BANDS = 4       # ours: head / upper / lower / feet for people, top-to-bottom parts for objects
LAYOUT_HUE_BINS = 8


def _hue_sat_hist(hsv: np.ndarray, hue_bins: int, sat_bins: int) -> np.ndarray:
    """Soft hue x hard saturation histogram + 1 achromatic bin over (P, 3) HSV pixels (OpenCV ranges)."""
    hist = np.zeros(hue_bins * sat_bins + 1, np.float64)
    if hsv.shape[0] == 0:
        return hist
    h = hsv[:, 0].astype(np.float64) * (hue_bins / 180.0)
    s = hsv[:, 1].astype(np.int64)
    v = hsv[:, 2].astype(np.int64)
    chroma = (s >= CHROMA_MIN_S) & (v >= CHROMA_MIN_V)
    hist[-1] = float((~chroma).sum())
    h, s = h[chroma], s[chroma]
    sb = np.minimum(((s - CHROMA_MIN_S) * sat_bins) // (256 - CHROMA_MIN_S), sat_bins - 1)
    pos = h - 0.5
    lo = np.floor(pos)
    frac = pos - lo
    lo = lo.astype(np.int64) % hue_bins
    hi = (lo + 1) % hue_bins
    np.add.at(hist, lo * sat_bins + sb, 1.0 - frac)
    np.add.at(hist, hi * sat_bins + sb, frac)
    return hist


def _hellinger(hist: np.ndarray) -> np.ndarray:
    total = hist.sum()
    return np.sqrt(hist / total) if total > 0 else hist


def colour_histogram(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(a): Hellinger hue x saturation histogram of the masked pixels, L2-normalised."""
    import cv2
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[mask]
    return _l2(_hellinger(_hue_sat_hist(hsv, HUE_BINS, SAT_BINS))).astype(np.float32)


def colour_layout(rgb: np.ndarray, mask: np.ndarray, bands: int = LAYOUT_BANDS) -> np.ndarray:
    """(c): hue histograms of `bands` horizontal bands of the mask box (flip-invariant), L2-normalised."""
    import cv2
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    edges = np.linspace(0, rgb.shape[0], bands + 1).round().astype(int)
    parts = []
    for y0, y1 in zip(edges[:-1], edges[1:]):
        px = hsv[y0:y1][mask[y0:y1]]
        parts.append(_hellinger(_hue_sat_hist(px, LAYOUT_HUE_BINS, 1)))
    return _l2(np.concatenate(parts)).astype(np.float32)


# ---------------------------------------------------------------- (b) RootSIFT bag of words

CODEBOOK_WORDS = 256
CODEBOOK_FILE = Path(__file__).with_name("data") / f"sift_codebook_{CODEBOOK_WORDS}.npz"
CODEBOOK_SEED = 0
# skimage photos that are NOT subjects or backgrounds in our tests/benchmarks (no train/test overlap)
CODEBOOK_PHOTOS = ("camera.png", "coins.png", "page.png", "text.png", "moon.png", "hubble_deep_field.jpg",
                   "ihc.png", "retina.jpg", "gravel.png", "horse.png", "cell.png", "clock_motion.png", "color.png",
                   "microaneurysms.png", "phantom.png", "logo.png")
SIFT_MAX_FEATURES = 400    # ours: per view (crop and mirror)
# ours, measured on tests/pairs_embed composites: SIFT on a 160 px long side separates instances
# better than 224 (AUC 0.97 vs 0.95 for the word block) at half the cost (SIFT doubles the image first)
SIFT_SIDE = 160
OBJECT_SIDE = 224          # ours: canonical long side of a subject for the colour blocks


@lru_cache(maxsize=1)
def _sift():
    import cv2
    return cv2.SIFT_create(nfeatures=SIFT_MAX_FEATURES)


def root_sift(grey: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(K, 128) RootSIFT: SIFT L1-normalised then square-rooted (unit L2 rows)."""
    m = None if mask is None else mask.astype(np.uint8) * 255
    _, desc = _sift().detectAndCompute(grey, m)
    if desc is None or len(desc) == 0:
        return np.zeros((0, 128), np.float32)
    desc = desc.astype(np.float32)
    desc /= np.maximum(desc.sum(axis=1, keepdims=True), 1e-7)
    return np.sqrt(desc)


def mirrored_root_sift(grey: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """RootSIFT of the image and of its mirror, pooled: a flip-invariant set of local features."""
    fl = (lambda a: None if a is None else np.ascontiguousarray(a[:, ::-1]))
    return np.concatenate([root_sift(grey, mask), root_sift(fl(grey), fl(mask))])


def _kmeans(x: np.ndarray, k: int, seed: int, iters: int = 30) -> np.ndarray:
    """Plain Lloyd k-means with k-means++ seeding from a fixed numpy Generator (deterministic)."""
    rng = np.random.default_rng(seed)
    x = x.astype(np.float64)
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        c = x[rng.choice(len(x), p=d2 / d2.sum())]
        centres.append(c)
        d2 = np.minimum(d2, ((x - c) ** 2).sum(1))
    c = np.stack(centres)
    for _ in range(iters):
        assign = (-2 * x @ c.T + (c ** 2).sum(1)).argmin(1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(0)
    return c.astype(np.float32)


def _photo_grey(name: str, long_side: int) -> np.ndarray:
    import cv2
    from PIL import Image
    img = np.asarray(Image.open(Path(importlib.util.find_spec("skimage").origin).parent / "data" / name).convert("L"))
    s = long_side / max(img.shape)
    return cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)


def build_sift_codebook(out: str | os.PathLike | None = CODEBOOK_FILE, words: int = CODEBOOK_WORDS,
                        seed: int = CODEBOOK_SEED, per_photo: int = 600) -> dict[str, np.ndarray]:
    """Rebuild the packaged codebook (deterministic for a given OpenCV build):

    - "words" (words, 128): seeded k-means over RootSIFT of CODEBOOK_PHOTOS and their mirrors
      (512-px long side, `per_photo` strongest keypoints each);
    - "bow_mean" (words,): the mean word histogram of SIFT_SIDE tiles of the same photos, subtracted
      before the cosine so the words every image has (edges, corners) stop making unrelated
      subjects look alike (centring raised the word block's AUC from 0.90 to 0.97 on our composites).
    Saved as .npz of plain arrays (np.load(..., allow_pickle=False))."""
    import cv2
    sift = cv2.SIFT_create(nfeatures=per_photo)
    descs = []
    for name in CODEBOOK_PHOTOS:
        img = _photo_grey(name, 512)
        for view in (img, img[:, ::-1]):
            _, d = sift.detectAndCompute(np.ascontiguousarray(view), None)
            if d is not None:
                d = d.astype(np.float32)
                descs.append(np.sqrt(d / np.maximum(d.sum(1, keepdims=True), 1e-7)))
    words_arr = _kmeans(np.concatenate(descs), words, seed)
    hists = []
    for name in CODEBOOK_PHOTOS:
        img = _photo_grey(name, 2 * SIFT_SIDE)
        step = SIFT_SIDE // 2
        for y in range(0, img.shape[0] - step, step):
            for x in range(0, img.shape[1] - step, step):
                tile = np.ascontiguousarray(img[y:y + SIFT_SIDE, x:x + SIFT_SIDE])
                h = word_histogram(mirrored_root_sift(tile), words_arr)
                if h.any():
                    hists.append(h)
    book = {"words": words_arr, "bow_mean": np.mean(hists, axis=0).astype(np.float32)}
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        np.savez(str(out), **book)
    return book


@lru_cache(maxsize=1)
def sift_codebook() -> dict[str, np.ndarray]:
    """The packaged RootSIFT codebook: {"words": (256, 128), "bow_mean": (256,)} float32 (no pickle)."""
    if not CODEBOOK_FILE.is_file():
        raise BackendUnavailable("sift-colour-v1 codebook", [str(CODEBOOK_FILE)],
                                 "Reinstall s2vforge, or rebuild it with "
                                 "`python -c 'from s2vforge.backends.identity import build_sift_codebook as b; b()'`.")
    with np.load(str(CODEBOOK_FILE), allow_pickle=False) as z:
        return {"words": z["words"].astype(np.float32), "bow_mean": z["bow_mean"].astype(np.float32)}


def codebook_digest() -> str:
    book = sift_codebook()
    h = hashlib.sha1(np.ascontiguousarray(book["words"]).tobytes())
    h.update(np.ascontiguousarray(book["bow_mean"]).tobytes())
    return h.hexdigest()[:12]


def word_histogram(desc: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Hard-assigned word histogram (hard beat 3-word soft assignment on our composites), Hellinger, L2."""
    hist = np.zeros(len(words), np.float64)
    if len(desc) == 0:
        return hist.astype(np.float32)
    d2 = (desc ** 2).sum(1)[:, None] - 2 * desc @ words.T + (words ** 2).sum(1)[None]
    np.add.at(hist, d2.argmin(1), 1.0)
    return _l2(_hellinger(hist)).astype(np.float32)


def bag_of_words(desc: np.ndarray, book: dict[str, np.ndarray]) -> np.ndarray:
    """(b): the centred word histogram, L2-normalised; zeros when the crop has no keypoint."""
    h = word_histogram(desc, book["words"])
    if not h.any():
        return h
    return _l2(h - book["bow_mean"]).astype(np.float32)


# ---------------------------------------------------------------- the embedded object descriptor

# Block weights (squared weights sum to 1, so the cosine of two rows is the weighted mean of
# the block cosines). Ours, tuned on the composites of tests/pairs_embed (same instance under
# scale 0.5-1.5, flips, gain/gamma and other backgrounds vs different instances).
OBJECT_WEIGHTS = {"colour": 0.30, "sift": 0.40, "layout": 0.30}


def prepare_subject(crop: np.ndarray, side: int = OBJECT_SIDE) -> tuple[np.ndarray, np.ndarray] | None:
    """Cut to the mask box, scale to `side` on the long side, composite on grey; None if nothing is there."""
    import cv2
    rgb, mask = crop_rgb_mask(crop)
    if mask.sum() < MIN_SUBJECT_PX:
        return None
    ys, xs = np.nonzero(mask)
    rgb = rgb[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    mask = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    if float(rgb[mask].std()) < MIN_SUBJECT_STD:
        return None
    s = side / max(rgb.shape[:2])
    wh = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
    rgb = cv2.resize(rgb, wh, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.uint8), wh, interpolation=cv2.INTER_NEAREST).astype(bool)
    if not mask.any():
        return None
    return composite_on_grey(rgb, mask), mask


class SiftColourDescriptor:
    """Embedded instance descriptor for objects/animals (see module docstring)."""

    version = "sift-colour-v1"

    def __init__(self, weights: dict | None = None) -> None:
        self.weights = dict(OBJECT_WEIGHTS, **(weights or {}))
        self.codebook = sift_codebook()
        self.name = self.version
        self.dim = (HUE_BINS * SAT_BINS + 1) + len(self.codebook["words"]) + LAYOUT_BANDS * (LAYOUT_HUE_BINS + 1)

    def describe(self, crop: np.ndarray) -> dict[str, np.ndarray] | None:
        """The three L2-normalised blocks, or None when the crop holds no subject."""
        import cv2
        prep = prepare_subject(crop)
        if prep is None:
            return None
        rgb, mask = prep
        s = SIFT_SIDE / max(rgb.shape[:2])
        wh = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
        grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), wh, interpolation=cv2.INTER_AREA)
        small = cv2.resize(mask.astype(np.uint8), wh, interpolation=cv2.INTER_NEAREST)
        # a 2-px dilation keeps the silhouette's corners (on the grey composite) as features
        dil = cv2.dilate(small, np.ones((5, 5), np.uint8)).astype(bool)
        desc = mirrored_root_sift(grey, dil)
        return {"colour": colour_histogram(rgb, mask), "sift": bag_of_words(desc, self.codebook),
                "layout": colour_layout(rgb, mask)}

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(crops), self.dim), np.float32)
        for i, crop in enumerate(crops):
            blocks = self.describe(crop)
            if blocks is None:
                out[i] = np.nan
                continue
            row = np.concatenate([self.weights[k] ** 0.5 * blocks[k] for k in ("colour", "sift", "layout")])
            out[i] = _l2(row)
        return out


# ---------------------------------------------------------------- faces

# face_recognition's `compare_faces` tolerance: Euclidean distance < 0.6 between raw dlib vectors
# means the same person (dlib's dlib_face_recognition_resnet_model_v1 documentation).
DLIB_SAME_PERSON_DISTANCE = 0.6
# Measured on the packaged photos (astronaut 1.457, grace_hopper 1.406, carphone ~1.4): raw dlib
# descriptors have a norm of ~1.43, so the rule is a cosine of ~0.91 on unit vectors.
DLIB_TYPICAL_RAW_NORM = 1.43
FACE_DETECT_SIDE = 200     # ours: crops scaled to a 200 px long side; dlib HOG's 80 px window then fits
FACE_PAD_SCALE = 1.25      # backends/face.RETRY_PAD_SCALE (OpenS2V-Eval's grey 25 % padding)
MIN_FACE_CROP_PX = 12      # ours: below this side there is no face to describe
PERSON_FACE_TOP_SHARE = 0.5  # ours: a person's face is looked for in the top half of the person crop


def dlib_cosine_threshold(distance: float = DLIB_SAME_PERSON_DISTANCE, norm_a: float = DLIB_TYPICAL_RAW_NORM,
                          norm_b: float | None = None) -> float:
    """Cosine between unit dlib vectors equivalent to a Euclidean `distance` between raw vectors of
    norms `norm_a`, `norm_b`: |a-b|^2 = na^2 + nb^2 - 2 na nb cos. The default 0.6 gives ~0.912."""
    nb = norm_a if norm_b is None else norm_b
    return float((norm_a ** 2 + nb ** 2 - distance ** 2) / (2 * norm_a * nb))


def dlib_raw_distance(cosine: float, norm_a: float = DLIB_TYPICAL_RAW_NORM, norm_b: float | None = None) -> float:
    """Inverse of dlib_cosine_threshold: the raw Euclidean distance a unit-vector cosine stands for."""
    nb = norm_a if norm_b is None else norm_b
    return float(np.sqrt(max(norm_a ** 2 + nb ** 2 - 2 * norm_a * nb * cosine, 0.0)))


class FaceLocator:
    """Finds one face in a crop with dlib: HOG on the grey-padded crop scaled to 200 px, else the
    crop rectangle itself; then dlib's 5 landmarks. Shared by the dlib and ONNX face identities."""

    def __init__(self, faces=None) -> None:
        if faces is None:
            from .face import DlibFaces
            try:
                faces = DlibFaces()
            except BackendUnavailable as exc:
                raise BackendUnavailable.missing_extra("faces", "dlib face identity (dlib-face-128)", exc) from None
        self.faces = faces

    def locate(self, crop: np.ndarray, fallback: bool = True):
        """(image, dlib rectangle, dlib 5-point shape, info) or (None, None, None, info).

        The RGB under alpha 0 is used as is: a face crop's mask cuts hair and jaw, and dlib's
        detector and landmarks were trained on natural faces, not on cut-outs."""
        import cv2
        rgb, mask = crop_rgb_mask(crop)
        info = {"face": None, "box": None}
        if min(rgb.shape[:2]) < MIN_FACE_CROP_PX or mask.sum() < MIN_SUBJECT_PX or float(rgb.std()) < MIN_SUBJECT_STD:
            return None, None, None, info
        s = FACE_DETECT_SIDE / max(rgb.shape[:2])
        img = cv2.resize(rgb, (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))),
                         interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        from .face import pad_frame
        padded, (left, top) = pad_frame(img, FACE_PAD_SCALE, GREY)
        padded = np.ascontiguousarray(padded)
        dlib = self.faces._dlib
        found = self.faces.detect(padded)
        if found:
            best = max(found, key=lambda f: (f.area, f.score))
            x1, y1, x2, y2 = (int(round(v)) for v in best.bbox)
            info["face"] = "hog"
        elif fallback:
            x1, y1, x2, y2 = left, top, left + img.shape[1] - 1, top + img.shape[0] - 1
            info["face"] = "crop_box"
        else:
            return None, None, None, info
        rect = dlib.rectangle(x1, y1, x2, y2)
        shape = self.faces.shape(padded, rect)
        # box in the crop's own pixels (for the record)
        info["box"] = [round((x1 - left) / s, 1), round((y1 - top) / s, 1), round((x2 - left) / s, 1),
                       round((y2 - top) / s, 1)]
        return padded, rect, shape, info


class DlibFaceIdentity:
    """Embedded face identity: dlib 128-d on unit rows (see module docstring)."""

    name = "dlib-face-128"
    dim = 128

    def __init__(self, fallback_to_crop: bool = True, locator: FaceLocator | None = None) -> None:
        self.locator = locator or FaceLocator()
        self.fallback_to_crop = fallback_to_crop

    def embed_with_info(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, list[dict]]:
        """Rows + per crop {"face": "hog" | "crop_box" | None, "box": [x0,y0,x1,y1] in crop px | None,
        "raw_norm": norm of dlib's raw vector | None} ("crop_box": HOG found nothing, the crop
        rectangle was used as the face box)."""
        out = np.empty((len(crops), self.dim), np.float32)
        infos = []
        for i, crop in enumerate(crops):
            img, _, shape, info = self.locator.locate(crop, self.fallback_to_crop)
            info["raw_norm"] = None
            if img is None:
                out[i] = np.nan
            else:
                v = np.asarray(self.locator.faces.encoder.compute_face_descriptor(img, shape), np.float32)
                info["raw_norm"] = round(float(np.linalg.norm(v)), 4)
                out[i] = _l2(v)
            infos.append(info)
        return out, infos

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return self.embed_with_info(crops)[0]


# ArcFace 112 template (backends/face.ARCFACE_TEMPLATE_112): eye centres as they are; dlib's 5th
# point is the bottom of the nose (subnasale), not the tip, so its target is moved a quarter of
# the nose-tip-to-mouth-line distance down (71.74 + 0.25 * (92.28 - 71.74) = 76.9; a facial
# proportion, ours). Mouth corners are not in dlib's 5 points: 3 points fix a similarity.
DLIB5_TO_ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 76.88]], np.float32)


def align_from_dlib5(image: np.ndarray, shape, size: int = 112) -> np.ndarray:
    """ArcFace-style crop from dlib's 5 landmarks (points 2,3 = image-left eye corners, 0,1 =
    image-right eye corners, 4 = nose bottom): least-squares similarity onto the template."""
    import cv2
    from .face import similarity_transform
    p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float32)
    src = np.stack([(p[2] + p[3]) / 2, (p[0] + p[1]) / 2, p[4]])
    m = similarity_transform(src, DLIB5_TO_ARCFACE_112 * (size / 112.0))
    return cv2.warpAffine(image, m, (size, size), borderValue=0.0)


FACE_ONNX_PATTERNS = {
    "arcface": ("w600k_r50.onnx", "glintr100.onnx", "arcface*.onnx"),                     # backends/face.ARCFACE_PATTERNS
    "curricularface": ("curricularface*.onnx", "glint360k_curricular_face_r101*.onnx", "*curricular*.onnx"),
}


def find_face_onnx(kind: str = "arcface", model: str | os.PathLike | None = None) -> Path:
    """An ArcFace / CurricularFace ONNX: `model` (a file or a dir, searched recursively), then the
    directories backends/face.find_face_models searches. ModelNotFound says where it looked."""
    from .face import FACE_LOCAL_NAME, _find_file
    from .paths import model_search_dirs
    if model and Path(model).is_file():
        return Path(model)
    dirs = ([Path(model)] if model else []) + model_search_dirs(FACE_LOCAL_NAME) \
        + model_search_dirs("insightface-buffalo_l") + [Path.home() / ".insightface" / "models"]
    hit = _find_file(dirs, FACE_ONNX_PATTERNS[kind])
    if hit is None:
        raise ModelNotFound(f"{kind} face embedding ONNX ({' | '.join(FACE_ONNX_PATTERNS[kind])})", [str(d) for d in dirs],
                            "Copy insightface's buffalo_l/w600k_r50.onnx (ArcFace) or a CurricularFace ONNX exported with "
                            "`python -m s2vforge.backends.face export-ir BIN OUT.onnx` into one of these directories, "
                            "or pass {'model': DIR_OR_FILE}.")
    return hit


class OnnxFaceIdentity:
    """Reference face identity: dlib-located 5 points -> ArcFace-aligned 112 crop -> IR-ResNet ONNX."""

    def __init__(self, kind: str = "arcface", model: str | os.PathLike | None = None, device: str = "cpu",
                 fallback_to_crop: bool = True, locator: FaceLocator | None = None) -> None:
        from .face import OnnxFaceEmbedder
        path = find_face_onnx(kind, model)
        self.embedder = OnnxFaceEmbedder.from_path(path, device=device, align_size=112)
        self.locator = locator or FaceLocator()
        self.fallback_to_crop = fallback_to_crop
        self.name = f"{kind}:{path.name}"
        out_shape = self.embedder.session.get_outputs()[0].shape
        self.dim = int(out_shape[-1]) if isinstance(out_shape[-1], int) else int(
            self.embedder.embed_crops([np.zeros((*self.embedder.input_hw, 3), np.uint8)]).shape[1])

    def embed_with_info(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, list[dict]]:
        import cv2
        out = np.full((len(crops), self.dim), np.nan, np.float32)
        infos, aligned, rows = [], [], []
        for i, crop in enumerate(crops):
            img, _, shape, info = self.locator.locate(crop, self.fallback_to_crop)
            infos.append(info)
            if img is None:
                continue
            a = align_from_dlib5(img, shape, 112)
            h, w = self.embedder.input_hw
            aligned.append(a if a.shape[:2] == (h, w) else cv2.resize(a, (w, h)))
            rows.append(i)
        if aligned:
            out[rows] = self.embedder.embed_crops(aligned)
        return out, infos

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return self.embed_with_info(crops)[0]


class TopFaceIdentity:
    """A face embedder looking only in the top share of a person crop. Build `face` without the
    crop-box fallback (a person crop's rectangle is not a face): NaN rows when no face is found,
    which ConcatIdentity turns into a zero face block."""

    def __init__(self, face, top_share: float = PERSON_FACE_TOP_SHARE) -> None:
        self.face = face
        self.top_share = top_share
        self.name = f"{face.name}@top{top_share:g}"
        self.dim = face.dim

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        tops = []
        for crop in crops:
            rgb, mask = crop_rgb_mask(crop)
            if mask.any():
                ys = np.nonzero(mask.any(axis=1))[0]
                y0, y1 = ys.min(), ys.max() + 1
                cut = y0 + max(1, int(round((y1 - y0) * self.top_share)))
                tops.append(np.asarray(crop)[:cut])
            else:
                tops.append(np.asarray(crop))
        return self.face.embed(tops)


class ConcatIdentity:
    """Weighted concatenation of unit-row embedders (Phantom-Data persons: appearance ++ face).

    A part that gives NaN for a crop contributes zeros (e.g. no face visible); the row is NaN
    only when every part is; rows are L2-normalised again, so the cosine of two complete rows is
    the weight-averaged cosine of the parts (weights are squared-sum normalised)."""

    def __init__(self, parts: Sequence[tuple[object, float]]) -> None:
        total = sum(w for _, w in parts)
        self.parts = [(e, w / total) for e, w in parts]
        self.name = "+".join(f"{e.name}*{w:g}" for e, w in self.parts)
        self.dim = sum(e.dim for e, _ in self.parts)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        blocks, valid = [], np.zeros(len(crops), bool)
        for emb, w in self.parts:
            x = np.asarray(emb.embed(crops), np.float32)
            ok = np.isfinite(x).all(axis=1)
            valid |= ok
            blocks.append(np.where(ok[:, None], x, 0.0) * np.float32(w ** 0.5))
        out = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(crops), 0), np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, 1e-12)
        out[~valid] = np.nan
        return out.astype(np.float32)


# ---------------------------------------------------------------- transformers image embedders (reference)

HF_DEFAULTS = {   # kind -> (local dir name, Hugging Face repo)
    "clip": ("clip-vit-large-patch14", "openai/clip-vit-large-patch14"),     # OpenS2V-Nexus / Phantom-Data CLIP
    "dinov2": ("dinov2-base", "facebook/dinov2-base"),                       # OpenSubject's DINOv2 distances
    "siglip": ("siglip-base-patch16-224", "google/siglip-base-patch16-224"),
}
HF_NORM = {   # the processors' image_mean / image_std defaults
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
HF_BATCH = 32


def resolve_hf_model_dir(kind: str, model: str | os.PathLike | None = None) -> Path:
    """`model`: a directory (absolute, relative or ~), a local name under the model dirs, or an HF
    repo id ("org/name") looked up in the HF cache; None = the kind's default (HF_DEFAULTS)."""
    from .paths import find_model_dir
    local, repo = HF_DEFAULTS[kind]
    explicit = None
    if model:
        m = str(model)
        p = Path(m).expanduser()
        if p.is_dir() or p.is_absolute() or m.startswith((".", "~")) or m.count("/") > 1:
            explicit, local, repo = p, p.name, None       # an explicit dir never falls back to the default model
        elif "/" in m:
            local, repo = m.split("/")[-1], m
        else:
            local, repo = m, None
    return find_model_dir(local, repo, explicit=explicit, model_label=f"{kind} image embedder ({model or repo})")


def preprocess_square(crops: Sequence[np.ndarray], size: int, mean, std) -> np.ndarray:
    """(N, 3, size, size) float32: RGBA composited on grey, padded to a square with grey, resized
    (area when shrinking, bicubic when enlarging), scaled to [0, 1] and normalised."""
    import cv2
    out = np.zeros((len(crops), 3, size, size), np.float32)
    mean = np.asarray(mean, np.float32)[:, None, None]
    std = np.asarray(std, np.float32)[:, None, None]
    for i, crop in enumerate(crops):
        rgb, mask = crop_rgb_mask(crop)
        if rgb.size == 0:
            rgb, mask = np.full((size, size, 3), GREY, np.uint8), np.zeros((size, size), bool)
        img = composite_on_grey(rgb, mask)
        h, w = img.shape[:2]
        side = max(h, w)
        sq = np.full((side, side, 3), GREY, np.uint8)
        sq[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = img
        sq = cv2.resize(sq, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_CUBIC)
        out[i] = (sq.transpose(2, 0, 1).astype(np.float32) / 255.0 - mean) / std
    return out


def _clip_vision_config(model_dir: Path):
    """CLIPVisionConfig of a full CLIPModel checkpoint with the model's `projection_dim` (the vision
    sub-config may omit it, and its default 512 would mismatch the visual projection)."""
    from transformers import CLIPVisionConfig
    raw = json.loads((model_dir / "config.json").read_text())
    if raw.get("model_type") != "clip":
        return CLIPVisionConfig.from_pretrained(str(model_dir))
    vision = dict(raw.get("vision_config") or {})
    vision.pop("model_type", None)
    if "projection_dim" in raw:
        vision["projection_dim"] = raw["projection_dim"]
    return CLIPVisionConfig(**vision)


def _config_image_size(config) -> int:
    vc = getattr(config, "vision_config", None) or config
    size = getattr(vc, "image_size", None)
    return int(size[0] if isinstance(size, (list, tuple)) else size or 224)


class HFImageIdentity:
    """CLIP / DINOv2 / SigLIP image embeddings of subject crops (reference backends)."""

    def __init__(self, kind: str, model: str | os.PathLike | None = None, device: str = "auto",
                 dtype: str | None = None, batch_size: int = HF_BATCH, image_size: int | None = None) -> None:
        if kind not in HF_DEFAULTS:
            raise ValueError(f"unknown image embedder {kind!r} (expected one of {sorted(HF_DEFAULTS)})")
        from .hf import quiet_transformers, require_torch_transformers, resolve_torch_dtype
        require_torch_transformers(f"{kind} image embedder")
        import torch
        model_dir = resolve_hf_model_dir(kind, model)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.dtype = resolve_torch_dtype(dtype, device)
        with quiet_transformers():
            if kind == "clip":
                from transformers import CLIPVisionModelWithProjection as cls
            elif kind == "dinov2":
                from transformers import Dinov2Model as cls
            else:
                from transformers import SiglipVisionModel as cls
            kwargs = {"dtype": self.dtype}
            if kind == "clip":
                kwargs["config"] = _clip_vision_config(model_dir)
            self.model = cls.from_pretrained(str(model_dir), **kwargs).to(device).eval()
        self.kind = kind
        self.name = f"{kind}:{model_dir.name}"
        self.image_size = int(image_size or self._processor_size(model_dir) or _config_image_size(self.model.config))
        self.mean, self.std = self._processor_norm(model_dir) or HF_NORM[kind]
        self.batch_size = batch_size
        self._batch_runner = None
        with torch.no_grad():
            self.dim = int(self._forward(np.zeros((1, 3, self.image_size, self.image_size), np.float32)).shape[1])

    @staticmethod
    def _preprocessor(model_dir: Path) -> dict:
        p = model_dir / "preprocessor_config.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def _processor_size(self, model_dir: Path) -> int | None:
        """The processor's crop size (CLIP/DINOv2) or size (SigLIP), when a processor config ships."""
        cfg = self._preprocessor(model_dir)
        for key in ("crop_size", "size"):
            v = cfg.get(key)
            if isinstance(v, dict):
                v = v.get("height") or v.get("shortest_edge")
            if isinstance(v, int):
                return v
        return None

    def _processor_norm(self, model_dir: Path):
        cfg = self._preprocessor(model_dir)
        if "image_mean" in cfg and "image_std" in cfg:
            return tuple(cfg["image_mean"]), tuple(cfg["image_std"])
        return None

    def _runner(self):
        """The shared GPU path (backends/torch_batch.py: pinned staging, copies overlapped with
        compute, autocast for bf16), built on first use around this model."""
        if getattr(self, "_batch_runner", None) is None:
            from .torch_batch import TorchBatchRunner
            model, kind = self.model, self.kind

            def forward(x):
                out = model(pixel_values=x)
                return out.image_embeds if kind == "clip" else out.pooler_output
            self._batch_runner = TorchBatchRunner(forward, device=self.device, dtype=self.dtype,
                                                  batch_frames=int(self.batch_size), pin_memory=True)
        return self._batch_runner

    def _forward(self, pixels: np.ndarray) -> np.ndarray:
        return self._runner()(np.ascontiguousarray(pixels, np.float32))

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        import torch
        if not len(crops):
            return np.zeros((0, self.dim), np.float32)
        out = np.empty((len(crops), self.dim), np.float32)
        empty = np.array([crop_rgb_mask(c)[1].sum() < MIN_SUBJECT_PX for c in crops])
        with torch.inference_mode():
            for s in range(0, len(crops), self.batch_size):
                px = preprocess_square(crops[s:s + self.batch_size], self.image_size, self.mean, self.std)
                out[s:s + len(px)] = self._forward(px)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        out[empty] = np.nan
        return out
