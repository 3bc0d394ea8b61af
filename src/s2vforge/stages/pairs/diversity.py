"""Stage 7 of pairing: context diversity between a reference and its target.

A cross-context pair is only useful against copy-paste if the reference's surroundings differ
from the target's (Phantom-Data's "contextually diverse retrieval"; OpenSubject selects pairs
by DINOv2 feature distance). So the subject is removed from each frame first and only the
*context* is described:

- embedded `scene` (default, no torch): the frame is downscaled, the subject is inpainted away
  (cv2.inpaint, Telea) and left out of the pooled statistics; the descriptor is a spatial
  pyramid (1x1 + 2x2) of Lab colour histograms plus a GIST-like bank of Gabor energies
  (4 orientations x 2 scales) pooled on a 4x4 grid (Oliva & Torralba 2001). Each block is
  mean-centred and L2-normalised, so the cosine of two descriptors is the average per-block
  correlation and 1 - cosine spreads over [0, 1] instead of bunching near 0 as raw histograms do.
- reference `dinov2` ({"model": dir}): DINOv2 patch tokens of the inpainted frame, averaged over
  the patches the subject does not cover (CLS when it covers them all), L2-normalised.

Which one, and its settings, come from the recipe's `pairs.context` section (values and sources
in recipes/openhumanvid.yaml). The scene descriptor's layout constants below define the
descriptor itself (changing one changes every vector), so they are not recipe settings.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ...backends.errors import ModelNotFound  # noqa: F401 - re-exported for callers' except clauses
from ..recipe_keys import need, take

SCENE_SIDE = 160            # ours: context needs layout + colour, not detail; 160 px keeps inpaint ~2 ms
MASK_DILATE_FRAC = 0.02     # grow the mask by 2% of the side so the subject's halo is removed too
LAB_BINS = (4, 6, 6)        # L, a, b bins: 144-d per pyramid cell
GABOR_GRID = 4              # GIST pools on a 4x4 grid (Oliva & Torralba 2001)
GABOR_ORIENTATIONS = 4
GABOR_WAVELENGTHS = (4.0, 10.0)   # px at SCENE_SIDE: fine texture and coarse structure
DINOV2_HF_REPO = "facebook/dinov2-base"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@runtime_checkable
class BackgroundEmbedder(Protocol):
    name: str

    def embed(self, frames: list[np.ndarray], masks: list[np.ndarray | None]) -> np.ndarray:
        """(N, D) unit rows describing each frame's context with its subject removed.

        frames: RGB uint8 HxWx3. masks: bool HxW of the subject, or None to describe the whole
        frame (pass `bbox_mask(...)` when only a box is known)."""
        ...


def bbox_mask(shape: tuple[int, ...], bbox) -> np.ndarray:
    """Bool HxW mask of an [x0, y0, x1, y1] box (pixels), for subjects without a mask."""
    h, w = shape[:2]
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = (int(round(float(v))) for v in bbox)
    m[max(0, y0):min(h, y1), max(0, x0):min(w, x1)] = True
    return m


def remove_subject(frame: np.ndarray, mask: np.ndarray | None, side: int = SCENE_SIDE
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Downscale so the long side is `side`, inpaint the (dilated) subject away.

    Returns (RGB uint8 subject-free frame, bool mask of removed pixels at that size)."""
    import cv2
    rgb = np.asarray(frame)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected HxWx3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
    rgb = np.ascontiguousarray(rgb[..., :3])
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    if mask is None:
        return small, np.zeros(small.shape[:2], bool)
    m = np.asarray(mask)
    if m.shape[:2] != (h, w):
        raise ValueError(f"mask shape {m.shape} does not match frame {rgb.shape[:2]}")
    m = cv2.resize(m.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) > 0
    k = max(1, int(round(MASK_DILATE_FRAC * side)))
    m = cv2.dilate(m.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8)) > 0
    if m.any() and not m.all():
        small = cv2.inpaint(small, m.astype(np.uint8) * 255, max(3, k), cv2.INPAINT_TELEA)
    return small, m


def _centred_unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64).ravel()
    v = v - v.mean()
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else np.zeros_like(v)


def _weighted_hist(lab: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Lab histogram (LAB_BINS) with per-pixel weights, Hellinger (sqrt) mapped."""
    bins = np.array(LAB_BINS)
    idx = np.minimum((lab.reshape(-1, 3).astype(np.int64) * bins) // 256, bins - 1)
    flat = (idx[:, 0] * bins[1] + idx[:, 1]) * bins[2] + idx[:, 2]
    hist = np.bincount(flat, weights=weight.ravel(), minlength=int(np.prod(bins)))
    tot = hist.sum()
    return np.sqrt(hist / tot) if tot > 0 else hist


_GABOR_CACHE: dict[tuple, list[np.ndarray]] = {}


def _gabor_bank() -> list[np.ndarray]:
    import cv2
    key = (GABOR_ORIENTATIONS, GABOR_WAVELENGTHS)
    bank = _GABOR_CACHE.get(key)
    if bank is None:
        bank = []
        for lam in GABOR_WAVELENGTHS:
            ks = int(2 * round(lam * 1.5) + 1)
            for o in range(GABOR_ORIENTATIONS):
                k = cv2.getGaborKernel((ks, ks), 0.56 * lam, np.pi * o / GABOR_ORIENTATIONS, lam, 0.5, 0,
                                       ktype=cv2.CV_32F)
                bank.append(k - k.mean())
        _GABOR_CACHE[key] = bank
    return bank


def _grid_pool(img: np.ndarray, weight: np.ndarray, grid: int) -> np.ndarray:
    h, w = img.shape[:2]
    ys = np.linspace(0, h, grid + 1).astype(int)
    xs = np.linspace(0, w, grid + 1).astype(int)
    out = np.zeros((grid, grid))
    for i in range(grid):
        for j in range(grid):
            cw = weight[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            ci = img[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            sw = float(cw.sum())
            out[i, j] = float((ci * cw).sum() / sw) if sw > 1e-9 else float(ci.mean()) if ci.size else 0.0
    return out.ravel()


def scene_descriptor(frame: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The embedded context descriptor of one frame (unit vector; see module docstring)."""
    import cv2
    small, removed = remove_subject(frame, mask)
    # removed pixels count a little (inpainted colour is made up) but never zero, so a frame that
    # is all subject still yields a defined descriptor
    weight = np.where(removed, 0.05, 1.0)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)
    h, w = lab.shape[:2]
    blocks = [_weighted_hist(lab, weight)]
    for i in range(2):
        for j in range(2):
            sl = (slice(i * h // 2, (i + 1) * h // 2), slice(j * w // 2, (j + 1) * w // 2))
            blocks.append(_weighted_hist(lab[sl], weight[sl]))
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    energies = []
    for k in _gabor_bank():
        resp = np.abs(cv2.filter2D(gray, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT))
        energies.append(np.sqrt(_grid_pool(resp, weight, GABOR_GRID)))
    gist = np.concatenate(energies)
    # colour layout (5 blocks) and structure (1 block) weigh equally: 0.5 each
    parts = [_centred_unit(b) * np.sqrt(0.5 / len(blocks)) for b in blocks] + [_centred_unit(gist) * np.sqrt(0.5)]
    v = np.concatenate(parts)
    n = float(np.linalg.norm(v))
    return (v / n if n > 1e-12 else v).astype(np.float32)


class SceneEmbedder:
    """Embedded context descriptor: Lab colour pyramid + GIST-like Gabor energies (no torch)."""
    name = "scene"

    def embed(self, frames: list[np.ndarray], masks: list[np.ndarray | None]) -> np.ndarray:
        if len(frames) != len(masks):
            raise ValueError(f"{len(frames)} frames but {len(masks)} masks")
        if not frames:
            return np.zeros((0, scene_dim()), np.float32)
        return np.stack([scene_descriptor(f, m) for f, m in zip(frames, masks)])


def scene_dim() -> int:
    return 5 * int(np.prod(LAB_BINS)) + GABOR_ORIENTATIONS * len(GABOR_WAVELENGTHS) * GABOR_GRID ** 2


class Dinov2Embedder:
    """Reference: DINOv2 patch tokens of the subject-free frame, pooled outside the subject."""
    name = "dinov2"

    def __init__(self, model: str | None, *, device: str, dtype, long_side: int, batch_size: int = 16) -> None:
        from ...backends.hf import quiet_transformers, require_torch_transformers, resolve_torch_dtype
        require_torch_transformers("DINOv2 background embedder")
        from ...backends.paths import find_model_dir
        from transformers import AutoModel
        self.model_dir = find_model_dir("dinov2-base", DINOV2_HF_REPO, explicit=model, model_label="DINOv2 (dinov2-base)")
        self.device = device
        self.dtype = resolve_torch_dtype(dtype, device)
        with quiet_transformers():
            self.model = AutoModel.from_pretrained(str(self.model_dir), dtype=self.dtype).to(device).eval()
        self.patch = int(getattr(self.model.config, "patch_size", 14))
        self.long_side = int(long_side)
        self.batch_size = int(batch_size)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        pp = Path(self.model_dir) / "preprocessor_config.json"
        if pp.is_file():
            cfg = json.loads(pp.read_text())
            mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
        from ...backends.torch_batch import TorchBatchRunner
        model = self.model
        # the shared GPU path (backends/torch_batch.py): uint8 on the wire, /255 and mean/std on the device
        self.runner = TorchBatchRunner(lambda x: model(pixel_values=x).last_hidden_state, device=device,
                                       dtype=self.dtype, batch_frames=1, pin_memory=True, mean=mean, std=std)
        self._lock = threading.Lock()

    def _prepare(self, frame: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        import cv2
        img, removed = remove_subject(frame, mask, side=self.long_side)
        h, w = img.shape[:2]
        gh, gw = max(1, round(h / self.patch)), max(1, round(w / self.patch))
        img = cv2.resize(img, (gw * self.patch, gh * self.patch), interpolation=cv2.INTER_AREA)
        cover = cv2.resize(removed.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
        return img, cover < 0.5

    def embed(self, frames: list[np.ndarray], masks: list[np.ndarray | None]) -> np.ndarray:
        if len(frames) != len(masks):
            raise ValueError(f"{len(frames)} frames but {len(masks)} masks")
        hidden = int(self.model.config.hidden_size)
        out = np.zeros((len(frames), hidden), np.float32)
        # one frame per forward: frames differ in aspect ratio, and context frames are few per pair
        for i, (f, m) in enumerate(zip(frames, masks)):
            img, keep = self._prepare(f, m)
            with self._lock:
                tokens = self.runner(np.ascontiguousarray(img, np.uint8)[None])[0]
            cls, patches = tokens[0], tokens[1:]
            patches = patches[-keep.size:]   # skip register tokens when the model has them
            kept = patches[keep.ravel()]
            v = kept.mean(0) if len(kept) else cls
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out


_EMBEDDERS: dict[str, BackgroundEmbedder] = {}
_EMB_LOCK = threading.Lock()


def background_embedder(cfg: dict) -> BackgroundEmbedder:
    """The context embedder named by the recipe's `pairs.context` section (backend "scene" or
    "dinov2"), once per process.

    dinov2 settings: model (dir; null = $S2VFORGE_MODELS/dinov2-base, the HF cache of
    facebook/dinov2-base), device, dtype, long_side. Raises ModelNotFound when the weights are
    absent, MissingRecipeKey when a setting is."""
    cfg = dict(cfg or {})
    backend = str(need(cfg, "backend", "pairs.context")).lower()
    cfg.pop("backend")
    key = json.dumps([backend, cfg], sort_keys=True, default=str)
    with _EMB_LOCK:
        emb = _EMBEDDERS.get(key)
        if emb is None:
            if backend in ("scene", "embedded"):
                emb = SceneEmbedder()
            elif backend == "dinov2":
                s = take(cfg, ("model", "device", "dtype", "long_side"), "pairs.context")
                emb = Dinov2Embedder(s["model"], device=s["device"], dtype=s["dtype"], long_side=int(s["long_side"]))
            else:
                raise ValueError(f"unknown background embedder {backend!r}; known: scene, dinov2")
            _EMBEDDERS[key] = emb
    return emb


def context_diversity(ref_bg: np.ndarray, tgt_bg: np.ndarray) -> float:
    """1 - cosine of two context embeddings, clipped to [0, 1] (higher = more different context)."""
    a = np.asarray(ref_bg, np.float64).ravel()
    b = np.asarray(tgt_bg, np.float64).ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-12 or nb < 1e-12 or not (np.isfinite(na) and np.isfinite(nb)):
        return float("nan")
    return float(np.clip(1.0 - float(a @ b) / (na * nb), 0.0, 1.0))
