"""Stage 1 of `pair`, per clip: identity + context embeddings of a clip's kept subjects, journaled.

One clip is one unit of work (engine.pool.run_pool, stage "pairs_embed"): its kept subject
crops are embedded with their category's identity embedder (embed.py), and the clip file is
decoded once to embed each subject's *context* (its frame with the subject masked out,
diversity.py). The result is a Parquet part plus a JSON marker written last under
DATASET/.work/pairs/, stamped with the embedding config, so a rerun embeds only clips whose
marker is missing or stale. Bad media never raises: it becomes an error column.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from ...engine.parts import StampedParts, config_hash


EMBED_SCHEMA = pa.schema([
    ("subject_id", pa.string()),
    ("clip_id", pa.string()),
    ("category", pa.string()),
    ("vector", pa.list_(pa.float32())),       # identity embedding (null: embedding failed)
    ("context", pa.list_(pa.float32())),      # background embedding of the subject's frame (null: not available)
    ("error", pa.string()),
])

PARTS_DIR = Path(".work") / "pairs"


def read_rgba(path: Path) -> np.ndarray | None:
    """An image file as RGB or RGBA uint8 (alpha kept), None when unreadable."""
    import cv2
    try:
        data = np.frombuffer(Path(path).read_bytes(), np.uint8)
    except OSError:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def clip_frames_at(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    """The frames at `indices` (0 = the clip's first frame) from one forward decode."""
    from ...media.decode import iter_frames
    out: dict[int, np.ndarray] = {}
    if not indices or not Path(path).is_file():
        return out
    last = max(indices)
    for i, _, rgb in iter_frames(str(path)):
        if i in indices:
            out[i] = rgb
        if i >= last:
            break
    return out


def subject_mask(row: dict, shape: tuple[int, int]) -> np.ndarray:
    """The subject's full-frame mask: mask_rle when it fits the frame, else its box."""
    from ..subjects.rle import rle_to_mask
    h, w = shape
    if row.get("mask_rle"):
        try:
            m = rle_to_mask(json.loads(row["mask_rle"])).astype(bool)
            if m.shape == (h, w):
                return m
        except (ValueError, KeyError, TypeError):
            pass
    m = np.zeros((h, w), bool)
    if row.get("bbox"):
        x0, y0, x1, y1 = (int(v) for v in row["bbox"])
        m[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    return m


def unit_or_none(v) -> list[float] | None:
    if v is None:
        return None
    a = np.asarray(v, np.float32).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)):
        return None
    return a.tolist()


# ------------------------------------------------------------------ per-clip embedding (journaled)

_WORKER: dict = {}


def worker_state(cfg: dict) -> dict:
    key = config_hash({"embed": cfg["embed"], "context": cfg["context"]})
    if _WORKER.get("key") != key:
        _WORKER.clear()
        _WORKER.update(key=key, embedders={}, context=None, unavailable={})
    return _WORKER


def cached_embedder(state: dict, category: str, cfg: dict):
    from .embed import embedder_for
    if category not in state["embedders"]:
        state["embedders"][category] = embedder_for(category, cfg["embed"])
    return state["embedders"][category]


def context_embedder(state: dict, cfg: dict):
    if state["context"] is None:
        from .diversity import background_embedder
        state["context"] = background_embedder(cfg["context"])
    return state["context"]


def embed_clip(clip_id: str, rows: list[dict], cfg: dict, dataset: Path) -> tuple[list[dict], dict]:
    """Identity + context embeddings of one clip's kept subjects. Never raises for bad media."""
    from ...backends.errors import BackendUnavailable
    t0 = time.perf_counter()
    state = worker_state(cfg)
    out = {r["subject_id"]: {"subject_id": r["subject_id"], "clip_id": clip_id, "category": r["category"],
                             "vector": None, "context": None, "error": None} for r in rows}
    by_cat: dict[str, list[dict]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r)
    for cat, rs in sorted(by_cat.items()):
        crops, have = [], []
        for r in rs:
            img = read_rgba(dataset / r["crop_path"]) if r.get("crop_path") else None
            if img is None:
                out[r["subject_id"]]["error"] = "crop_unreadable"
            else:
                crops.append(img)
                have.append(r)
        if not crops:
            continue
        try:
            vecs = np.asarray(cached_embedder(state, cat, cfg).embed(crops), np.float32)
        except BackendUnavailable as e:
            state["unavailable"][f"embed_{cat}"] = str(e)
            for r in have:
                out[r["subject_id"]]["error"] = f"embedder_unavailable: {e}"
            continue
        for r, v in zip(have, vecs):
            u = unit_or_none(v)
            out[r["subject_id"]]["vector"] = u
            if u is None:
                out[r["subject_id"]]["error"] = "embedding_failed"
    # context: the subject's frame with the subject masked out, one decode of the clip
    frames = {}
    try:
        frames = clip_frames_at(dataset / "clips" / f"{clip_id}.mp4", {int(r["frame_idx"]) for r in rows
                                                                       if r.get("frame_idx") is not None})
    except Exception as e:   # an unreadable clip costs its context only
        state["unavailable"]["context_decode"] = f"{type(e).__name__}: {e}"
    have = [r for r in rows if r.get("frame_idx") is not None and int(r["frame_idx"]) in frames]
    if have:
        try:
            imgs = [frames[int(r["frame_idx"])] for r in have]
            masks = [subject_mask(r, im.shape[:2]) for r, im in zip(have, imgs)]
            ctx = np.asarray(context_embedder(state, cfg).embed(imgs, masks), np.float32)
            for r, c in zip(have, ctx):
                out[r["subject_id"]]["context"] = unit_or_none(c)
        except BackendUnavailable as e:
            state["unavailable"]["context"] = str(e)
    meta = {"clip_id": clip_id, "status": "ok", "error": None, "n_subjects": len(rows),
            "n_embedded": sum(1 for v in out.values() if v["vector"] is not None),
            "n_context": sum(1 for v in out.values() if v["context"] is not None),
            "unavailable": dict(state["unavailable"]), "seconds": round(time.perf_counter() - t0, 4)}
    return [out[k] for k in sorted(out)], meta


class EmbedParts(StampedParts):
    """Per-clip embedding rows + stamped markers under DATASET/.work/pairs/ (engine.parts.StampedParts)."""

    def __init__(self, dataset: Path, stamp: str) -> None:
        super().__init__(Path(dataset) / PARTS_DIR, EMBED_SCHEMA, stamp)

    def read(self, keys: Sequence[str]) -> list[dict]:
        return self.read_table(keys).to_pylist()


def work_on_clip(item: tuple[str, list[dict]], cfg: dict, dataset: str, stamp: str) -> dict:
    clip_id, rows = item
    ds = Path(dataset)
    try:
        erows, meta = embed_clip(clip_id, rows, cfg, ds)
    except Exception as e:   # a stage bug must not take the run down: error rows say what happened
        err = f"internal_error: {type(e).__name__}: {e}"
        erows = [{"subject_id": r["subject_id"], "clip_id": clip_id, "category": r["category"], "vector": None,
                  "context": None, "error": err} for r in sorted(rows, key=lambda r: r["subject_id"])]
        meta = {"clip_id": clip_id, "status": "error", "error": err, "n_subjects": len(rows), "n_embedded": 0}
    EmbedParts(ds, stamp).write(clip_id, erows, meta)
    return meta

