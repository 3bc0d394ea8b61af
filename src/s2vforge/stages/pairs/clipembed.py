"""Step 1 of `pair`, per clip: identity + context embeddings of a clip's kept subjects.

One clip is one item of the pairs stage (pipeline.PairsStage, run by engine/driver.py): its
kept subject crops are embedded with their category's identity embedder (embed.py), and the
clip file is decoded once to embed each subject's *context* (its frame with the subject masked
out, diversity.py). The driver journals the rows (stamped with the embedding config), so a
rerun embeds only clips whose entry is missing or stale. Bad media never raises: it becomes an
error column.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ...engine.journal import WORK_DIR

CACHE_DIR = Path(WORK_DIR) / "pairs" / "bank"     # --bank images, embedded once (bankreg.py)


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


# ------------------------------------------------------------------ per-clip embedding

def new_state() -> dict:
    """The embedders one worker loads (lazily, per category) and what it found unavailable."""
    return {"embedders": {}, "context": None, "unavailable": {}, "names": {}}


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


def embed_clip(clip_id: str, rows: list[dict], cfg: dict, dataset: Path,
               state: dict | None = None) -> tuple[list[dict], dict]:
    """Identity + context embeddings of one clip's kept subjects. Never raises for bad media."""
    from ...backends.errors import BackendUnavailable
    t0 = time.perf_counter()
    state = state if state is not None else new_state()
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
            "unavailable": dict(state["unavailable"]), "seconds": round(time.perf_counter() - t0, 4),
            "embedders": {c: getattr(e, "name", None) for c, e in sorted(state["embedders"].items())
                          if getattr(e, "name", None)}}
    return [out[k] for k in sorted(out)], meta
