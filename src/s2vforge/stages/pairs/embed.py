"""Stage 1 of `pair`: identity embeddings of subject crops, one embedder per category.

Which backend embeds which category, and with which settings, comes from the recipe's
`pairs.embed` section (values and sources in recipes/openhumanvid.yaml; no defaults here):

    pairs:
      embed:
        face:   {backend: dlib, ...}                 # embedded dlib | arcface | curricularface
        person: {backend: embedded, face: dlib, weights: ..., reuse_face_rows: true, ...}   # appearance ++ face
        animal: {backend: embedded, ...}             # embedded | clip | dinov2 | siglip
        object: {backend: embedded, ...}             # reference: {backend: clip, model: DIR_OR_NAME}

Embedded backends need no torch and no download (backends/identity.py): faces dlib 128-d,
objects/animals the "sift-colour-v1" instance descriptor (RootSIFT words + colour), persons
the same appearance descriptor on the masked person ++ the dlib face found in the top half of
the crop (the pipeline then swaps in the vector of the co-located face row, PERSON_FACE_SOURCE). Reference backends load local weights only (ModelNotFound says where it looked).

Every embedder returns (N, dim) float32 L2-normalised rows and a NaN row for a crop it cannot
embed, so a caller drops `~np.isfinite(rows).all(1)` and records why instead of crashing.
"""
from __future__ import annotations

import hashlib
import json
import threading
from typing import Protocol, runtime_checkable

import numpy as np

from ...schema import SUBJECT_CATEGORIES as CATEGORIES
from ..recipe_keys import need



# Phantom-Data builds person identity from the face and the body appearance; the face carries the
# identity (clothes change across clips), so it weighs more: pairs.embed.person.weights (the
# default recipe's 0.6 face / 0.4 appearance are squared weights, i.e. the cosine of two complete
# rows is 0.6 cos_face + 0.4 cos_appearance).
# The pairs pipeline replaces the face part of a person vector by the vector of the *face row* of
# the same clip and frame whose box lies inside the person box (tracks.attach_face_rows): the
# subjects stage found that face at full frame resolution, while re-detecting it inside a small,
# low-resolution person crop often fails (measured: the carphone man's same-person cosine was
# 0.465 with the re-detected face). `pairs.embed.person.reuse_face_rows: false` turns it off.
PERSON_FACE_SOURCE = "face-row-of-same-frame-v1"
EMBEDDED_ALIASES = {"embedded", "sift-colour", "sift-colour-v1", "classical"}
FACE_BACKENDS = ("dlib", "arcface", "curricularface")
IMAGE_BACKENDS = ("clip", "dinov2", "siglip")


@runtime_checkable
class IdentityEmbedder(Protocol):
    name: str   # recorded in tables, e.g. "dlib-face-128", "sift-colour-v1", "clip:<model dir name>"
    dim: int

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """crops: RGBA uint8 (alpha = subject mask) or RGB -> (N, dim) float32 unit rows; NaN row for a
        crop that cannot be embedded (never raises for one bad crop)."""
        ...


def category_settings(category: str, cfg: dict) -> dict:
    """The effective settings for `category`: the recipe's `pairs.embed.<category>` entry, backend
    lower-cased (MissingRecipeKey when the section lacks the category or its backend)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown subject category {category!r} (expected one of {CATEGORIES})")
    entry = need(cfg, category, "pairs.embed")
    if not isinstance(entry, dict):
        raise ValueError(f"pairs.embed.{category} must be a mapping of settings, not {entry!r}")
    merged = dict(entry)
    merged["backend"] = str(need(merged, "backend", f"pairs.embed.{category}")).lower()
    if category == "face" and merged["backend"] in EMBEDDED_ALIASES:
        merged["backend"] = "dlib"
    return merged


def _setting(s: dict, key: str, category: str):
    """s[key] of the `pairs.embed.<category>` settings (MissingRecipeKey names it when absent)."""
    return need(s, key, f"pairs.embed.{category}")


def embedder_key(category: str, cfg: dict) -> str:
    """Stable id of the backend + settings for `category` (resume stamps): changes when a setting,
    the embedded descriptor's version or its codebook changes; cheap (loads no model)."""
    s = category_settings(category, cfg)
    stamp = dict(s)
    uses_sift = s["backend"] in EMBEDDED_ALIASES
    if uses_sift:
        from ...backends.identity import OBJECT_WEIGHTS, SiftColourDescriptor, codebook_digest
        stamp["descriptor"] = SiftColourDescriptor.version
        stamp["codebook"] = codebook_digest()
        stamp["object_weights"] = OBJECT_WEIGHTS
    if category == "person":
        stamp["person_weights"] = dict(_setting(s, "weights", category))
        if reuses_face_rows(cfg):
            stamp["face_source"] = PERSON_FACE_SOURCE
    digest = hashlib.sha1(json.dumps(stamp, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{category}/{s['backend']}/{digest}"


def reuses_face_rows(cfg: dict) -> bool:
    """True when person vectors take their face part from the co-located face row: the person
    embedder has a face part of the same backend as the face category's embedder (same space)."""
    p = category_settings("person", cfg)
    face_backend = str(_setting(p, "face", "person")).lower()
    if face_backend in ("none", "off", "") or not _setting(p, "reuse_face_rows", "person"):
        return False
    f = category_settings("face", cfg)
    return face_backend == f["backend"] and _setting(p, "face_model", "person") == _setting(f, "model", "face")


def person_parts(embedder, vec) -> dict[str, np.ndarray | None]:
    """{"appearance": unit | None, "face": unit | None}: the parts of a person vector (appearance ++
    face, backends.identity.ConcatIdentity); a part is None when empty (no face found) or absent."""
    out: dict[str, np.ndarray | None] = {"appearance": None, "face": None}
    parts = getattr(embedder, "parts", None)
    if vec is None or not parts:
        return out
    v = np.asarray(vec, np.float32).ravel()
    off = 0
    for k, (emb, _w) in enumerate(parts):
        dim = int(emb.dim)
        block = v[off:off + dim]
        off += dim
        n = float(np.linalg.norm(block)) if block.size == dim else 0.0
        name = ("appearance", "face")[k] if len(parts) == 2 else f"part{k}"   # build_embedder's order
        out[name] = block / n if (n > 1e-6 and np.all(np.isfinite(block))) else None
    return out


def compose_person(embedder, vec, face_vec) -> np.ndarray | None:
    """The person vector `vec` with its face part replaced by `face_vec` (a face-row embedding of
    the same space), re-weighted as ConcatIdentity does; None when the layout does not fit."""
    parts = getattr(embedder, "parts", None)
    if vec is None or face_vec is None or not parts:
        return None
    f = np.asarray(face_vec, np.float32).ravel()
    blocks, off, replaced = [], 0, False
    v = np.asarray(vec, np.float32).ravel()
    if len(parts) != 2:
        return None
    for k, (emb, w) in enumerate(parts):
        dim = int(emb.dim)
        block = v[off:off + dim]
        off += dim
        if k == 1:                              # build_embedder's order: appearance, face
            if f.size != dim or not np.all(np.isfinite(f)) or np.linalg.norm(f) < 1e-6:
                return None
            block, replaced = f / np.linalg.norm(f) * np.float32(w ** 0.5), True
        else:   # the stored block's scale depends on whether the old face part was empty: re-weight it
            n = float(np.linalg.norm(block))
            block = block / n * np.float32(w ** 0.5) if n > 1e-6 and np.all(np.isfinite(block)) else np.zeros(dim, np.float32)
        blocks.append(block)
    if not replaced or off != v.size:
        return None
    out = np.concatenate(blocks).astype(np.float32)
    return out / max(float(np.linalg.norm(out)), 1e-12)


def _face_embedder(backend: str, model, device: str, fallback_to_crop: bool):
    from ...backends import identity
    if backend == "dlib":
        return identity.DlibFaceIdentity(fallback_to_crop=fallback_to_crop)
    if backend in ("arcface", "curricularface"):
        return identity.OnnxFaceIdentity(backend, model, device=device, fallback_to_crop=fallback_to_crop)
    raise ValueError(f"unknown face backend {backend!r} (expected one of {FACE_BACKENDS})")


def _appearance_embedder(backend: str, s: dict, category: str):
    from ...backends import identity
    if backend in EMBEDDED_ALIASES:
        return identity.SiftColourDescriptor(_setting(s, "descriptor_weights", category))
    if backend in IMAGE_BACKENDS:
        return identity.HFImageIdentity(backend, _setting(s, "model", category), device=_setting(s, "device", category),
                                        dtype=_setting(s, "dtype", category),
                                        batch_size=int(_setting(s, "batch_size", category)))
    raise ValueError(f"unknown appearance backend {backend!r} (expected embedded or one of {IMAGE_BACKENDS})")


def build_embedder(category: str, cfg: dict) -> IdentityEmbedder:
    """A fresh embedder (no cache); embedder_for caches these per process."""
    from ...backends import identity
    s = category_settings(category, cfg)
    backend = s["backend"]
    if category == "face":
        return _face_embedder(backend, _setting(s, "model", category), _setting(s, "device", category),
                              fallback_to_crop=bool(_setting(s, "fallback_to_crop", category)))
    if category == "person":
        appearance = _appearance_embedder(backend, s, category)
        face_backend = str(_setting(s, "face", category)).lower()
        if face_backend in ("none", "off", ""):
            return appearance
        # the face part runs on the person's device (ONNX: "cuda..." = GPU, anything else = CPU)
        face = identity.TopFaceIdentity(_face_embedder(face_backend, _setting(s, "face_model", category),
                                                       _setting(s, "device", category), fallback_to_crop=False))
        w = _setting(s, "weights", category)
        return identity.ConcatIdentity([(appearance, float(w["appearance"])), (face, float(w["face"]))])
    return _appearance_embedder(backend, s, category)


_CACHE: dict[str, IdentityEmbedder] = {}
_CACHE_LOCK = threading.Lock()


def embedder_for(category: str, cfg: dict) -> IdentityEmbedder:
    """The embedder for `category` under the recipe's `pairs.embed` section (built once per process
    per embedder_key: a worker loads each model once).

    Raises BackendUnavailable (dlib missing: "pip install 's2vforge[faces]'") or ModelNotFound
    (reference weights absent: which model, where it looked, how to provide it)."""
    key = embedder_key(category, cfg)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
        emb = build_embedder(category, cfg)
        _CACHE[key] = emb
        return emb


def clear_embedder_cache() -> None:
    """Drop cached embedders (tests; freeing GPU memory between stages)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def load_crop(path) -> np.ndarray:
    """A subjects/<id>.png crop as RGBA uint8 (RGB files get an opaque alpha)."""
    import cv2
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FileNotFoundError(f"cannot read crop {path}")
    if raw.ndim == 2:
        return np.dstack([np.repeat(raw[..., None], 3, 2), np.full(raw.shape, 255, np.uint8)])
    if raw.shape[2] == 4:
        return cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA)
    rgb = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
