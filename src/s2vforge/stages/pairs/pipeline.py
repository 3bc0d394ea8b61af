"""The pairs stage: kept subject instances -> identity pairs (pairs.parquet) + a FAISS bank.

Phantom-Data (Chen et al., 2025) pairs every target subject with a reference of the *same
identity* taken from a *different context*, so a model cannot copy-paste the reference into
the video; OpenS2V-Nexus (Yuan et al., 2025) builds its cross-video pairs the same way and
keeps in-clip ("regular") references as the fallback. For DATASET:

1. per kept clip (run through engine.pool.run_pool, journaled): every kept subject crop is
   embedded with its category's identity embedder (stages/pairs/embed.py) and the context of
   its frame (the frame with the subject masked out) with the background embedder
   (stages/pairs/diversity.py); the clip file is decoded once;
2. within a clip, instances of one identity (same category, cosine >= the in-clip threshold,
   or overlapping boxes on different frames) form a track; its best instance is the target;
3. banks per category under DATASET/index/<category>/ hold every kept instance plus the
   images of any --bank folder (faces found in them as `face`, the whole image / its alpha as
   `object`);
4. every target queries its bank with a lower bound (drop unrelated) and an upper bound (drop
   near-duplicates: the copy-paste case); priors decide who may pair (living subjects: another
   clip of the same group_id; objects: another video); the best candidates are verified
   (local features + RANSAC for objects and animals, face-embedding agreement for faces and
   persons, optionally a VLM endpoint) and the most context-diverse verified ones kept; with
   none, another instance of the same track is the in_pair fallback;
5. verified edges + tracks are clustered into identities;
6. pairs.parquet (one row per target track, sorted by pair_id) + pairs_run.json.

Resume: each finished clip's embeddings are a Parquet part plus a JSON marker written last,
both under DATASET/.work/pairs/, stamped with a hash of the embedding config; a rerun only
embeds clips without a matching marker. Everything after embedding is cheap and redone, so
reruns give identical tables.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ...engine.pool import run_pool

CATEGORIES = ("face", "person", "animal", "object")
LIVING = ("face", "person", "animal")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# Thresholds are cosine similarities between unit embeddings of the *embedded* backends
# (dlib 128-d for faces; local features + colour for objects). Phantom-Data retrieves with both
# an upper bound (near-duplicates would teach copy-paste) and a lower bound (unrelated subjects)
# but publishes no numbers for its embedders, so every value below is ours, with the
# measurement that set it (docs/pairs.md, tests/pairs_pipeline).
DEFAULT_PAIRS: dict = {
    "embed": {},                       # per-category embedder options, see stages/pairs/embed.py
    "context": {},                     # background (context) embedder options, see stages/pairs/diversity.py
    "bank": {},                        # IdentityBank options (exact below a size threshold, IVF/HNSW beyond)
    "bounds": {
        # faces, dlib 128-d: lower = face_recognition's tolerance 0.6 on raw descriptors (norm ~1.43) as a
        # cosine of unit vectors, backends.identity.dlib_cosine_threshold() = 0.912. Measured on
        # tests/pairs_pipeline: the same face mirrored/rescaled in another clip 0.990, two different people
        # (astronaut / Grace Hopper) 0.883-0.885. Upper: the same photo only rescaled and brightened in
        # another clip measured 0.998 (a copy, Phantom-Data's copy-paste case), so 0.995 (ours).
        "face": {"lower": 0.91, "upper": 0.995},
        "person": {"lower": 0.80, "upper": 0.995},    # ours: 0.6 face + 0.4 appearance cosine (embed.PERSON_WEIGHTS)
        "animal": {"lower": 0.60, "upper": 0.995},    # ours: the objects' descriptor; geometric verification decides
        # objects, sift-colour-v1: the same cup photo mirrored/rescaled/re-lit in another video 0.975-0.980
        # (tests/pairs_pipeline); ours: a loose lower bound, RANSAC inliers decide.
        "object": {"lower": 0.60, "upper": 0.995},
    },
    "in_clip_threshold": {"face": 0.91, "person": 0.85, "animal": 0.80, "object": 0.80},   # ours (facetrack's 0.91)
    "in_clip_box_iou": 0.5,            # ours: boxes overlapping this much on different frames are one track
    "priors": {
        "living": "same_group",        # Phantom-Data: people/animals across different clips of one long video
        "objects": "cross_video",      # OpenS2V-Nexus: objects paired across videos
        "text_match": False,           # optional OCR logo/text agreement for objects (Phantom-Data's prior)
    },
    "top_k": 20,                       # ours: bank neighbours looked at per target
    "max_candidates": 5,               # ours: candidates verified per target (verification is the costly part)
    "max_references": 1,               # references per target row
    # keyword overrides for verify.verify_geometric (min_inliers, ratio, max_side) and
    # verify.verify_face_agreement (max_distance); their defaults cite their sources there
    "verify": {"geometric": {}, "face": {}, "vlm": None},
    "cluster": {"method": "components", "threshold": None},   # stages/pairs/cluster.py; verified edges only
}

PAIR_SCHEMA = pa.schema([
    ("pair_id", pa.string()),                  # p-<12 hex of the target subject id>
    ("target_clip_id", pa.string()),
    ("target_subject_id", pa.string()),
    ("target_video_id", pa.string()),
    ("group_id", pa.string()),
    ("category", pa.string()),
    ("phrase", pa.string()),
    ("kind", pa.string()),                     # cross_clip | cross_video | in_pair | none
    ("reference_subject_ids", pa.list_(pa.string())),   # subject ids, or bank:<relpath>#<entry> for bank images
    ("reference_clip_ids", pa.list_(pa.string())),
    ("reference_source", pa.string()),         # subject | bank
    ("similarity", pa.float64()),              # identity cosine target vs first reference
    ("diversity", pa.float64()),               # context distance target vs first reference (higher = more diverse)
    ("verdicts", pa.list_(pa.string())),       # every check that passed the chosen reference(s)
    ("rejected", pa.list_(pa.string())),       # "<candidate id>:<verdict>" for every rejected candidate
    ("track_subject_ids", pa.list_(pa.string())),  # the target track's instances
    ("cluster_id", pa.string()),
    ("keep", pa.bool_()),
    ("embedder", pa.string()),
])

EMBED_SCHEMA = pa.schema([
    ("subject_id", pa.string()),
    ("clip_id", pa.string()),
    ("category", pa.string()),
    ("vector", pa.list_(pa.float32())),       # identity embedding (null: embedding failed)
    ("context", pa.list_(pa.float32())),      # background embedding of the subject's frame (null: not available)
    ("error", pa.string()),
])

PARTS_DIR = Path(".work") / "pairs"
INDEX_DIR = "index"


# ------------------------------------------------------------------ config

def pairs_config(recipe: dict) -> dict:
    """The recipe's `pairs` section over DEFAULT_PAIRS (one level of merge per sub-section)."""
    sub = dict((recipe or {}).get("pairs") or {})
    cfg: dict = {}
    for key, default in DEFAULT_PAIRS.items():
        val = sub.pop(key, None)
        if isinstance(default, dict) and isinstance(val, dict):
            merged = dict(default)
            for k, v in val.items():
                merged[k] = {**default[k], **v} if isinstance(default.get(k), dict) and isinstance(v, dict) else v
            cfg[key] = merged
        else:
            cfg[key] = default if val is None else val
    cfg.update(sub)
    return cfg


def config_hash(obj: Any) -> str:
    return hashlib.blake2b(json.dumps(obj, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


def embed_stamp(cfg: dict) -> str:
    """What the per-clip parts depend on: each category's effective embedder (embed.embedder_key
    covers backend, settings and descriptor version) and the context embedder."""
    return config_hash({"context": {"backend": "scene", **(cfg["context"] or {})},
                        "embedders": {c: _deps().embedder_key(c, cfg["embed"]) for c in CATEGORIES}})


def pair_id_for(target_subject_id: str) -> str:
    return "p-" + hashlib.blake2b(target_subject_id.encode(), digest_size=6).hexdigest()


# ------------------------------------------------------------------ sibling modules (with fallbacks)

class _Deps:
    """The sibling modules, imported once on first use (keeps `import pipeline` cheap)."""

    def __init__(self) -> None:
        from . import cluster, diversity, embed, verify
        from .bank import IdentityBank
        self.IdentityBank = IdentityBank
        self.embedder_for, self.embedder_key = embed.embedder_for, embed.embedder_key
        self.Verdict, self.verify_geometric = verify.Verdict, verify.verify_geometric
        self.verify_face_agreement, self.verify_text_match = verify.verify_face_agreement, verify.verify_text_match
        self.vlm_verifier_from_config = verify.vlm_verifier_from_config
        self.background_embedder, self.context_diversity = diversity.background_embedder, diversity.context_diversity
        self.cluster_identities, self.cluster_summary = cluster.cluster_identities, cluster.cluster_summary


_DEPS: _Deps | None = None


def _deps() -> _Deps:
    global _DEPS
    if _DEPS is None:
        _DEPS = _Deps()
    return _DEPS


# ------------------------------------------------------------------ media helpers

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


def _unit_or_none(v) -> list[float] | None:
    if v is None:
        return None
    a = np.asarray(v, np.float32).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)):
        return None
    return a.tolist()


# ------------------------------------------------------------------ per-clip embedding (journaled)

_WORKER: dict = {}


def _worker_state(cfg: dict) -> dict:
    key = config_hash({"embed": cfg["embed"], "context": cfg["context"]})
    if _WORKER.get("key") != key:
        _WORKER.clear()
        _WORKER.update(key=key, embedders={}, context=None, unavailable={})
    return _WORKER


def _embedder(state: dict, category: str, cfg: dict):
    if category not in state["embedders"]:
        state["embedders"][category] = _deps().embedder_for(category, cfg["embed"])
    return state["embedders"][category]


def _context_embedder(state: dict, cfg: dict):
    if state["context"] is None:
        state["context"] = _deps().background_embedder(cfg["context"])
    return state["context"]


def embed_clip(clip_id: str, rows: list[dict], cfg: dict, dataset: Path) -> tuple[list[dict], dict]:
    """Identity + context embeddings of one clip's kept subjects. Never raises for bad media."""
    from ...backends.errors import BackendUnavailable
    t0 = time.perf_counter()
    state = _worker_state(cfg)
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
            vecs = np.asarray(_embedder(state, cat, cfg).embed(crops), np.float32)
        except BackendUnavailable as e:
            state["unavailable"][f"embed_{cat}"] = str(e)
            for r in have:
                out[r["subject_id"]]["error"] = f"embedder_unavailable: {e}"
            continue
        for r, v in zip(have, vecs):
            u = _unit_or_none(v)
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
            ctx = np.asarray(_context_embedder(state, cfg).embed(imgs, masks), np.float32)
            for r, c in zip(have, ctx):
                out[r["subject_id"]]["context"] = _unit_or_none(c)
        except BackendUnavailable as e:
            state["unavailable"]["context"] = str(e)
    meta = {"clip_id": clip_id, "status": "ok", "error": None, "n_subjects": len(rows),
            "n_embedded": sum(1 for v in out.values() if v["vector"] is not None),
            "n_context": sum(1 for v in out.values() if v["context"] is not None),
            "unavailable": dict(state["unavailable"]), "seconds": round(time.perf_counter() - t0, 4)}
    return [out[k] for k in sorted(out)], meta


class EmbedParts:
    """Per-clip Parquet parts + JSON markers (written last) under DATASET/.work/pairs/."""

    def __init__(self, dataset: Path, stamp: str) -> None:
        self.dir = Path(dataset) / PARTS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stamp = stamp

    def _marker(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def is_done(self, key: str) -> bool:
        p = self._marker(key)
        if not p.exists() or not (self.dir / f"{key}.parquet").exists():
            return False
        try:
            return json.loads(p.read_text()).get("stamp") == self.stamp
        except ValueError:
            return False

    def meta(self, key: str) -> dict:
        return json.loads(self._marker(key).read_text())

    def write(self, key: str, rows: list[dict], meta: dict) -> None:
        from ...engine.parts import atomic_bytes, atomic_parquet
        from ...schema import table_from_rows
        atomic_parquet(table_from_rows(rows, EMBED_SCHEMA), self.dir / f"{key}.parquet")
        atomic_bytes(json.dumps({**meta, "stamp": self.stamp}, sort_keys=True, default=str).encode(), self._marker(key))

    def read(self, keys: Sequence[str]) -> list[dict]:
        rows = []
        for k in sorted(set(keys)):
            rows.extend(pq.read_table(self.dir / f"{k}.parquet", schema=EMBED_SCHEMA).to_pylist())
        return rows

    def sweep_tmp(self) -> None:
        for p in self.dir.glob(".*.tmp"):
            p.unlink(missing_ok=True)


def _work_on_clip(item: tuple[str, list[dict]], cfg: dict, dataset: str, stamp: str) -> dict:
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


def _run_pool_compat(fn, items, args, workers, on_done, on_crash, engine, stage: str) -> None:
    """run_pool with engine/stage only when given and supported (the seam is gaining them)."""
    kw: dict = {"on_done": on_done, "on_crash": on_crash}
    if engine not in (None, "local"):
        params = inspect.signature(run_pool).parameters
        if "engine" not in params:
            raise ValueError(f"engine {engine!r} requested but this build's run_pool has no engine support")
        kw["engine"] = engine
        if "stage" in params:
            kw["stage"] = stage
    run_pool(fn, items, args, workers, **kw)


# ------------------------------------------------------------------ tracks

@dataclass
class Instance:
    subject_id: str
    clip_id: str
    video_id: str | None
    group_id: str | None
    category: str
    phrase: str | None
    frame_idx: int | None
    bbox: list[int] | None
    det_score: float
    quality: float
    crop_path: str | None
    vector: np.ndarray | None
    context: np.ndarray | None
    track: int = -1


@dataclass
class Track:
    clip_id: str
    category: str
    members: list[Instance] = field(default_factory=list)

    @property
    def target(self) -> Instance:
        return self.members[0]


def _box_iou(a, b) -> float:
    if a is None or b is None:
        return 0.0
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def _quality_score(row: dict) -> float:
    """Higher is better: the detector score, nudged by crop sharpness when the subjects stage measured it."""
    q = 0.0
    try:
        qd = json.loads(row["quality"]) if row.get("quality") else {}
        s = qd.get("sharpness")
        if isinstance(s, (int, float)) and math.isfinite(s):
            q = min(1.0, float(s) / 1000.0) * 0.1
    except ValueError:
        pass
    return float(row.get("det_score") or 0.0) + q


def build_tracks(instances: list[Instance], cfg: dict) -> list[Track]:
    """Group one clip's instances of one identity (see module doc); target = best quality, ties
    broken by closeness to the clip's middle frame, then subject_id."""
    thr = cfg["in_clip_threshold"]
    iou_thr = float(cfg["in_clip_box_iou"])
    by_key: dict[tuple[str, str], list[Instance]] = {}
    for inst in instances:
        by_key.setdefault((inst.clip_id, inst.category), []).append(inst)
    tracks: list[Track] = []
    for (clip_id, cat), insts in sorted(by_key.items()):
        insts = sorted(insts, key=lambda i: i.subject_id)
        parent = list(range(len(insts)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i
        for i in range(len(insts)):
            for j in range(i + 1, len(insts)):
                a, b = insts[i], insts[j]
                if a.frame_idx == b.frame_idx:
                    continue    # two boxes on one frame are two subjects
                same = _box_iou(a.bbox, b.bbox) >= iou_thr
                if not same and a.vector is not None and b.vector is not None:
                    same = float(a.vector @ b.vector) >= float(thr.get(cat, 0.9))
                if same:
                    parent[find(i)] = find(j)
        groups: dict[int, list[Instance]] = {}
        for i, inst in enumerate(insts):
            groups.setdefault(find(i), []).append(inst)
        frames = [i.frame_idx for i in insts if i.frame_idx is not None]
        mid = (min(frames) + max(frames)) / 2 if frames else 0
        for members in groups.values():
            members.sort(key=lambda i: (i.vector is None, -round(i.quality, 3),
                                        abs((i.frame_idx or 0) - mid), i.subject_id))
            tracks.append(Track(clip_id, cat, members))
    tracks.sort(key=lambda t: t.target.subject_id)
    for k, t in enumerate(tracks):
        for m in t.members:
            m.track = k
    return tracks


# ------------------------------------------------------------------ banks

@dataclass
class BankEntry:
    """An image from a --bank folder as a bank entry."""
    entry_id: str
    category: str
    path: str
    relpath: str
    box: list[int] | None
    vector: np.ndarray | None
    context: np.ndarray | None


def _bank_images(dirs: Sequence[Path]) -> list[tuple[Path, str]]:
    out = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"bank folder {d} not found")
        for p in sorted(d.rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
                out.append((p, f"{d.name}/{p.relative_to(d).as_posix()}"))
    return out


def _face_detector(state: dict, cfg: dict):
    """The face embedder's own detector when it exposes one (dlib HOG for the embedded backend)."""
    emb = _embedder(state, "face", cfg)
    for obj in (emb, getattr(emb, "locator", None), getattr(getattr(emb, "locator", None), "faces", None)):
        if obj is not None and callable(getattr(obj, "detect", None)):
            return obj
    from ...backends.face import DlibFaces
    return DlibFaces()


def embed_bank_image(path: Path, relpath: str, cfg: dict) -> tuple[list[dict], dict]:
    """Entries of one bank image: each face found as `face`, the whole image (alpha = mask) as `object`."""
    from ...backends.errors import BackendUnavailable
    state = _worker_state(cfg)
    img = read_rgba(path)
    rows: list[dict] = []
    if img is None:
        return rows, {"status": "error", "error": "image_unreadable"}
    rgb = img[:, :, :3] if img.shape[2] == 4 else img
    h, w = rgb.shape[:2]
    alpha = img[:, :, 3] > 127 if img.shape[2] == 4 else np.ones((h, w), bool)
    ctx_emb = None
    try:
        ctx_emb = _context_embedder(state, cfg)
    except BackendUnavailable:
        pass

    def context_of(mask: np.ndarray):
        if ctx_emb is None or mask.all():
            return None          # nothing around the subject: no context to compare
        try:
            return _unit_or_none(np.asarray(ctx_emb.embed([rgb], [mask]), np.float32)[0])
        except BackendUnavailable:
            return None
    try:
        faces = list(_face_detector(state, cfg).detect(np.ascontiguousarray(rgb)))
    except BackendUnavailable:
        faces = []
    for k, f in enumerate(sorted(faces, key=lambda f: tuple(float(v) for v in f.bbox))):
        x0, y0, x1, y1 = (int(round(v)) for v in f.bbox)
        # the crop a subjects-stage face box would give: the face box grown by a quarter on each side
        mx, my = (x1 - x0) // 4, (y1 - y0) // 4
        box = [max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)]
        if box[2] - box[0] < 8 or box[3] - box[1] < 8:
            continue
        crop = rgb[box[1]:box[3], box[0]:box[2]]
        try:
            v = np.asarray(_embedder(state, "face", cfg).embed([crop]), np.float32)[0]
        except BackendUnavailable:
            continue
        m = np.zeros((h, w), bool)
        m[box[1]:box[3], box[0]:box[2]] = True
        rows.append({"entry_id": f"bank:{relpath}#face{k}", "category": "face", "path": str(path), "relpath": relpath,
                     "box": box, "vector": _unit_or_none(v), "context": context_of(m)})
    ys, xs = np.nonzero(alpha)
    if ys.size:
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        crop = img[box[1]:box[3], box[0]:box[2]]
        try:
            v = np.asarray(_embedder(state, "object", cfg).embed([crop]), np.float32)[0]
            rows.append({"entry_id": f"bank:{relpath}#object", "category": "object", "path": str(path),
                         "relpath": relpath, "box": box, "vector": _unit_or_none(v), "context": context_of(alpha)})
        except BackendUnavailable:
            pass
    return rows, {"status": "ok", "error": None}


BANK_ENTRY_SCHEMA = pa.schema([
    ("entry_id", pa.string()), ("category", pa.string()), ("path", pa.string()), ("relpath", pa.string()),
    ("box", pa.list_(pa.int32())), ("vector", pa.list_(pa.float32())), ("context", pa.list_(pa.float32())),
])


def register_bank_dirs(dataset: Path, dirs: Sequence[Path], cfg: dict, stamp: str) -> list[BankEntry]:
    """Bank-folder images as entries, embedded once per (file, size, mtime, embed config)."""
    from ...engine.parts import atomic_parquet
    from ...schema import table_from_rows
    cache = Path(dataset) / PARTS_DIR / "bank"
    cache.mkdir(parents=True, exist_ok=True)
    entries: list[BankEntry] = []
    for path, rel in _bank_images(dirs):
        st = path.stat()
        key = config_hash({"rel": rel, "size": st.st_size, "mtime": st.st_mtime_ns, "stamp": stamp})
        part = cache / f"{key}.parquet"
        if part.exists():
            rows = pq.read_table(part, schema=BANK_ENTRY_SCHEMA).to_pylist()
        else:
            rows, _ = embed_bank_image(path, rel, cfg)
            atomic_parquet(table_from_rows(rows, BANK_ENTRY_SCHEMA), part)
        for r in rows:
            entries.append(BankEntry(r["entry_id"], r["category"], r["path"], r["relpath"], r["box"],
                                     None if r["vector"] is None else np.asarray(r["vector"], np.float32),
                                     None if r["context"] is None else np.asarray(r["context"], np.float32)))
    return entries


def _bank_ids(bank) -> set[str]:
    for attr in ("ids", "_ids"):
        ids = getattr(bank, attr, None)
        if ids is not None:
            return set(ids() if callable(ids) else ids)
    return set()


def open_banks(dataset: Path, instances: list[Instance], entries: list[BankEntry], cfg: dict) -> dict[str, Any]:
    """One persisted bank per category holding every kept instance and bank entry; new ids are
    appended, a bank built by another embedder is rebuilt."""
    d = _deps()
    banks = {}
    for cat in CATEGORIES:
        vecs: list[tuple[str, np.ndarray, dict]] = []
        for i in instances:
            if i.category == cat and i.vector is not None:
                vecs.append((i.subject_id, i.vector, {"source": "subject", "clip_id": i.clip_id, "video_id": i.video_id,
                                                      "group_id": i.group_id, "track": i.track}))
        for e in entries:
            if e.category == cat and e.vector is not None:
                vecs.append((e.entry_id, e.vector, {"source": f"bank:{e.relpath}", "path": e.path, "box": e.box}))
        path = Path(dataset) / INDEX_DIR / cat
        if not vecs and not path.exists():
            continue
        key = d.embedder_key(cat, cfg["embed"])
        dim = int(vecs[0][1].shape[0]) if vecs else None
        bank = _open_bank(path, dim, key, cfg)
        have = _bank_ids(bank)
        new = [v for v in sorted(vecs, key=lambda t: t[0]) if v[0] not in have]
        if new:
            bank.add([v[0] for v in new], np.stack([v[1] for v in new]).astype(np.float32), [v[2] for v in new])
            bank.save()
        banks[cat] = bank
    return banks


def _open_bank(path: Path, dim: int | None, key: str, cfg: dict):
    Bank = _deps().IdentityBank
    kw = {"embedder": key}
    if cfg.get("bank"):
        params = inspect.signature(Bank.open_or_create).parameters
        kw.update({k: v for k, v in cfg["bank"].items() if k in params})
    try:
        bank = Bank.open_or_create(path, dim, **kw)
    except (ValueError, RuntimeError):   # another embedder / dimension built it: rebuild
        shutil.rmtree(path, ignore_errors=True)
        bank = Bank.open_or_create(path, dim, **kw)
    stored = getattr(bank, "embedder", key)
    if stored not in (None, key):
        shutil.rmtree(path, ignore_errors=True)
        bank = Bank.open_or_create(path, dim, **kw)
    return bank


# ------------------------------------------------------------------ candidates, verification, choice

@dataclass
class Candidate:
    ref_id: str
    sim: float
    source: str                 # subject | bank
    clip_id: str | None
    video_id: str | None
    kind: str
    inst: Instance | None = None
    entry: BankEntry | None = None
    verdicts: list[str] = field(default_factory=list)
    diversity: float | None = None


def _prior(target: Instance, cand: Candidate, cfg: dict) -> str | None:
    """None when the candidate may pair with the target, else the verdict that says why not."""
    pri = cfg["priors"]
    if cand.source == "bank":
        return None
    c = cand.inst
    if c.clip_id == target.clip_id:
        return "same_clip"
    if target.category in LIVING:
        if pri.get("living", "same_group") == "same_group" and c.group_id != target.group_id:
            return "prior_different_group"
    elif pri.get("objects", "cross_video") == "cross_video" and c.video_id == target.video_id:
        return "prior_same_video"
    return None


def _kind(target: Instance, cand: Candidate) -> str:
    if cand.source == "bank":
        return "cross_video"
    if target.category in LIVING:
        return "cross_clip" if cand.inst.video_id == target.video_id or cand.inst.group_id == target.group_id \
            else "cross_video"
    return "cross_video"


class _Images:
    """Crops and frames loaded once per run for verification."""

    def __init__(self, dataset: Path) -> None:
        self.dataset = dataset
        self.cache: dict[str, np.ndarray | None] = {}

    def crop(self, inst: Instance | None = None, entry: BankEntry | None = None):
        key = inst.subject_id if inst else entry.entry_id
        if key not in self.cache:
            if inst is not None:
                self.cache[key] = read_rgba(self.dataset / inst.crop_path) if inst.crop_path else None
            else:
                img = read_rgba(Path(entry.path))
                if img is not None and entry.box:
                    x0, y0, x1, y1 = entry.box
                    img = img[y0:y1, x0:x1]
                self.cache[key] = img
        return self.cache[key]


IDENTITY_CHECKS = ("geometric", "face_agreement")
_TIMING = re.compile(r",?\bms=[0-9.]+")


def verdict_text(v) -> str:
    """str(Verdict) without run-time measurements (ms=...), so reruns give identical tables."""
    return _TIMING.sub("", str(v))


def _accepted(verdicts) -> bool:
    """One identity check must pass (ok True) and none may fail; the text prior and the VLM must
    not say no (their ok None, "could not decide", is recorded and tolerated: an endpoint outage
    must not empty the dataset). A person whose face cannot be compared (ok None) is decided by
    local features."""
    if not any(v.check in IDENTITY_CHECKS and v.ok is True for v in verdicts):
        return False
    return not any(v.ok is False for v in verdicts)


def face_part(embedder, vec) -> np.ndarray | None:
    """The face slice of a person vector (appearance ++ face, embed.ConcatIdentity), unit length;
    None when the embedder has no face part or the face slice is empty (no face found)."""
    if vec is None:
        return None
    parts = getattr(embedder, "parts", None)
    if not parts:
        return None
    off = 0
    for emb, _w in parts:
        dim = int(emb.dim)
        if "face" in str(getattr(emb, "name", "")):
            v = np.asarray(vec, np.float32)[off:off + dim]
            n = float(np.linalg.norm(v))
            return None if (not np.all(np.isfinite(v)) or n < 1e-6) else v / n
        off += dim
    return None


def _verify(target: Instance, cand: Candidate, images: _Images, cfg: dict, vlm) -> list:
    """Every verdict on one candidate: identity checks by category, the text prior, the VLM."""
    d = _deps()
    out = []
    ref_vec = cand.inst.vector if cand.inst is not None else cand.entry.vector
    tgt_crop = images.crop(inst=target)
    ref_crop = images.crop(inst=cand.inst) if cand.inst is not None else images.crop(entry=cand.entry)
    vcfg = cfg.get("verify") or {}
    face_v = None
    if target.category == "face":
        face_v = d.verify_face_agreement(ref_vec, target.vector, **(vcfg.get("face") or {}))
    elif target.category == "person":
        emb = _embedder(_worker_state(cfg), "person", cfg)
        face_v = d.verify_face_agreement(face_part(emb, ref_vec), face_part(emb, target.vector), **(vcfg.get("face") or {}))
    if face_v is not None and (target.category == "face" or face_v.ok is not None):
        out.append(face_v)
    else:   # objects, animals, and persons whose face cannot be compared (turned away): local features
        if face_v is not None:
            out.append(face_v)
        if tgt_crop is None or ref_crop is None:
            out.append(d.Verdict("geometric", False, None, "crop_unreadable"))
        else:
            out.append(d.verify_geometric(ref_crop, tgt_crop, **(vcfg.get("geometric") or {})))
        if cfg["priors"].get("text_match") and tgt_crop is not None and ref_crop is not None:
            out.append(d.verify_text_match(ref_crop, tgt_crop))
    if vlm is not None and ref_crop is not None and _accepted(out):
        frame = tgt_crop
        try:
            frames = clip_frames_at(images.dataset / "clips" / f"{target.clip_id}.mp4", {int(target.frame_idx or 0)})
            frame = frames.get(int(target.frame_idx or 0), tgt_crop)
        except Exception:
            pass
        out.extend(vlm.verify(ref_crop, frame, target.phrase or target.category))
    return out


def pair_track(track: Track, banks: dict, by_id: dict[str, Instance], entries: dict[str, BankEntry],
               images: _Images, cfg: dict, vlm) -> tuple[dict, list[tuple[str, str, float]]]:
    """The pairs row of one track and the verified identity edges (target id, reference id)."""
    d = _deps()
    t = track.target
    cat = track.category
    b = cfg["bounds"].get(cat) or {}
    lower, upper = float(b.get("lower", 0.0)), float(b.get("upper", 1.0))
    rejected: list[str] = []
    edges: list[tuple[str, str, float]] = []
    chosen: list[Candidate] = []
    if t.vector is not None and cat in banks:
        bank = banks[cat]
        k = int(cfg["top_k"])

        def candidate(rid: str) -> Candidate | None:
            if rid in entries:
                return Candidate(rid, 0.0, "bank", None, None, "cross_video", entry=entries[rid])
            if rid in by_id:
                i = by_id[rid]
                return Candidate(rid, 0.0, "subject", i.clip_id, i.video_id, "", inst=i)
            return None          # an entry of an earlier run no longer in the tables (or a removed bank folder)

        def exclude(rid: str):
            c = candidate(rid)
            if c is None:
                return "stale"
            return (_prior(t, c, cfg) or False)
        hits = bank.query_bounded(t.vector[None, :].astype(np.float32), k, lower=lower, upper=upper,
                                  exclude=exclude, return_rejected=True)[0]
        cands: list[Candidate] = []
        seen_tracks: set[int] = set()
        for rid, sim, bverdict in hits:
            sim = float(sim)
            c = candidate(rid)
            if bverdict != "kept":
                # same-clip instances are the target's own track or its neighbours, not candidates: not listed
                if c is not None and c.inst is not None and c.inst.clip_id == t.clip_id:
                    continue
                if "stale" not in str(bverdict):
                    rejected.append(f"{rid}:{bverdict}:{sim:.3f}")
                continue
            c.sim = sim
            if c.inst is not None:
                if c.inst.track in seen_tracks:
                    continue     # one candidate per other track: its best-matching instance
                seen_tracks.add(c.inst.track)
            c.kind = _kind(t, c)
            cands.append(c)
        cands.sort(key=lambda c: (-c.sim, c.ref_id))
        for i, c in enumerate(cands):
            if i >= int(cfg["max_candidates"]):
                rejected.append(f"{c.ref_id}:not_verified:beyond_max_candidates")
                continue
            verdicts = _verify(t, c, images, cfg, vlm)
            if _accepted(verdicts):
                c.verdicts = [f"bounds:ok:{c.sim:.3f}", f"prior:{c.kind}"] + [verdict_text(v) for v in verdicts]
                ctx = c.inst.context if c.inst is not None else c.entry.context
                c.diversity = None if (ctx is None or t.context is None) else float(d.context_diversity(t.context, ctx))
                chosen.append(c)
                edges.append((t.subject_id, c.ref_id, c.sim))
            else:
                rejected.append(f"{c.ref_id}:" + ";".join(verdict_text(v) for v in verdicts))
    base = {"pair_id": pair_id_for(t.subject_id), "target_clip_id": t.clip_id, "target_subject_id": t.subject_id,
            "target_video_id": t.video_id, "group_id": t.group_id, "category": cat, "phrase": t.phrase,
            "rejected": sorted(rejected), "track_subject_ids": sorted(m.subject_id for m in track.members)}
    if chosen:
        # prefer the most diverse context among verified references (OpenSubject / Phantom-Data), then similarity
        chosen.sort(key=lambda c: (-(c.diversity if c.diversity is not None else -1.0), -c.sim, c.ref_id))
        refs = chosen[:max(1, int(cfg["max_references"]))]
        for c in chosen[len(refs):]:
            base["rejected"].append(f"{c.ref_id}:not_chosen:less_diverse")
        base["rejected"].sort()
        first = refs[0]
        row = {**base, "kind": first.kind, "reference_subject_ids": [c.ref_id for c in refs],
               "reference_clip_ids": [c.clip_id for c in refs if c.clip_id],
               "reference_source": first.source, "similarity": round(first.sim, 6),
               "diversity": None if first.diversity is None else round(first.diversity, 6),
               "verdicts": [v for c in refs for v in c.verdicts], "keep": True}
        return row, edges
    others = [m for m in track.members[1:] if m.frame_idx != t.frame_idx] or track.members[1:]
    if others:
        ref = others[0]
        sim = float(ref.vector @ t.vector) if (ref.vector is not None and t.vector is not None) else None
        div = float(d.context_diversity(t.context, ref.context)) if (
            ref.context is not None and t.context is not None) else None
        row = {**base, "kind": "in_pair", "reference_subject_ids": [ref.subject_id],
               "reference_clip_ids": [ref.clip_id], "reference_source": "subject",
               "similarity": None if sim is None else round(sim, 6), "diversity": None if div is None else round(div, 6),
               "verdicts": ["fallback:no_verified_cross_reference"], "keep": True}
        return row, edges
    why = "none:embedding_failed" if t.vector is None else "none:no_verified_cross_reference_single_instance"
    row = {**base, "kind": "none", "reference_subject_ids": [], "reference_clip_ids": [], "reference_source": None,
           "similarity": None, "diversity": None, "verdicts": [why], "keep": False}
    return row, edges


# ------------------------------------------------------------------ the run

def _read_subjects(dataset: Path) -> list[dict]:
    path = dataset / "subjects.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `s2vforge subjects {dataset}` first")
    rows = pq.read_table(path).to_pylist()
    return [r for r in rows if r.get("keep") and r.get("category") in CATEGORIES]


def run_pairs(dataset: Path, recipe: dict, *, bank_dirs: Sequence[Path] = (), workers: int = 1, engine=None,
              progress: Callable[[dict], None] | None = None) -> dict:
    """Mine identity pairs over DATASET's kept subjects (see module doc); returns a summary.

    Writes DATASET/pairs.parquet, DATASET/pairs_run.json and DATASET/index/<category>/.
    Reruns resume: clips already embedded with the same config are not embedded again."""
    dataset = Path(dataset)
    t0 = time.perf_counter()
    d = _deps()
    cfg = pairs_config(recipe)
    subjects = _read_subjects(dataset)
    stamp = embed_stamp(cfg)
    store = EmbedParts(dataset, stamp)
    store.sweep_tmp()
    by_clip: dict[str, list[dict]] = {}
    for r in subjects:
        by_clip.setdefault(r["clip_id"], []).append(r)
    clip_ids = sorted(by_clip)
    summary: dict = {"dataset": str(dataset), "n_clips": len(clip_ids), "n_instances": len(subjects),
                     "n_skipped_done": 0, "n_clip_errors": 0, "errors": [], "unavailable": {}}
    todo = []
    for c in clip_ids:
        if store.is_done(c):
            summary["n_skipped_done"] += 1
            if progress:
                progress({**store.meta(c), "resumed": True})
        else:
            todo.append((c, sorted(by_clip[c], key=lambda r: r["subject_id"])))

    def on_crash(item, e: BaseException) -> dict:
        clip_id, rows = item
        err = f"worker crashed: {type(e).__name__}: {e}"
        erows = [{"subject_id": r["subject_id"], "clip_id": clip_id, "category": r["category"], "vector": None,
                  "context": None, "error": err} for r in rows]
        meta = {"clip_id": clip_id, "status": "error", "error": err, "n_subjects": len(rows), "n_embedded": 0}
        store.write(clip_id, erows, meta)
        return meta

    t_embed = time.perf_counter()
    _run_pool_compat(_work_on_clip, todo, (cfg, str(dataset), stamp), workers,
                     on_done=lambda item, meta: progress(meta) if progress else None, on_crash=on_crash,
                     engine=engine, stage="pairs_embed")
    summary["embed_s"] = round(time.perf_counter() - t_embed, 3)
    for c in clip_ids:
        m = store.meta(c)
        summary["unavailable"].update(m.get("unavailable") or {})
        if m.get("status") == "error":
            summary["n_clip_errors"] += 1
            summary["errors"].append({"clip_id": c, "error": m.get("error")})
    emb = {r["subject_id"]: r for r in store.read(clip_ids)}

    instances: list[Instance] = []
    for r in sorted(subjects, key=lambda r: r["subject_id"]):
        e = emb.get(r["subject_id"]) or {}
        instances.append(Instance(
            r["subject_id"], r["clip_id"], r.get("video_id"), r.get("group_id") or r.get("video_id"), r["category"],
            r.get("phrase"), r.get("frame_idx"), list(r["bbox"]) if r.get("bbox") else None,
            float(r.get("det_score") or 0.0), _quality_score(r), r.get("crop_path"),
            None if e.get("vector") is None else np.asarray(e["vector"], np.float32),
            None if e.get("context") is None else np.asarray(e["context"], np.float32)))
    summary["n_embedding_failures"] = sum(1 for i in instances if i.vector is None)
    tracks = build_tracks(instances, cfg)
    summary["n_tracks"] = len(tracks)

    t_bank = time.perf_counter()
    entries = register_bank_dirs(dataset, bank_dirs, cfg, stamp) if bank_dirs else []
    summary["n_bank_entries"] = len(entries)
    banks = open_banks(dataset, instances, entries, cfg)
    summary["banks"] = {c: {"size": len(b), "index": str(getattr(b, "index_kind", "?"))} for c, b in sorted(banks.items())}
    summary["bank_s"] = round(time.perf_counter() - t_bank, 3)

    t_pair = time.perf_counter()
    vlm = d.vlm_verifier_from_config(cfg["verify"].get("vlm")) if cfg["verify"].get("vlm") else None
    by_id = {i.subject_id: i for i in instances}
    entry_by_id = {e.entry_id: e for e in entries}
    images = _Images(dataset)
    rows, edges = [], []
    for tr in tracks:
        row, e = pair_track(tr, banks, by_id, entry_by_id, images, cfg, vlm)
        row["embedder"] = _safe_name(tr.category, cfg)
        rows.append(row)
        edges.extend(e)
    summary["pair_s"] = round(time.perf_counter() - t_pair, 3)

    clusters = cluster_rows(rows, tracks, instances, edges, cfg)
    summary["clusters"] = clusters
    table = write_pairs(dataset, rows)
    kinds: dict[str, int] = {}
    by_cat: dict[str, dict[str, int]] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        by_cat.setdefault(r["category"], {}).setdefault(r["kind"], 0)
        by_cat[r["category"]][r["kind"]] += 1
    summary.update(n_pairs=table.num_rows, kinds=dict(sorted(kinds.items())), kinds_by_category=by_cat,
                   n_kept=sum(1 for r in rows if r["keep"]),
                   embedders={c: _safe_name(c, cfg) for c in sorted({i.category for i in instances})},
                   wall_s=round(time.perf_counter() - t0, 3))
    _atomic_json(dataset / "pairs_run.json", {"pairs": cfg, "summary": summary})
    return summary


def _safe_name(cat: str, cfg: dict) -> str:
    st = _worker_state(cfg)
    e = st["embedders"].get(cat)
    return getattr(e, "name", None) or _deps().embedder_key(cat, cfg["embed"])


def cluster_rows(rows: list[dict], tracks: list[Track], instances: list[Instance], edges: list[tuple[str, str, float]],
                 cfg: dict) -> dict:
    """cluster_id on every row: identities = connected components over tracks + verified edges."""
    d = _deps()
    ids = sorted({i.subject_id for i in instances} | {b for _, b, _ in edges})
    index = {s: k for k, s in enumerate(ids)}
    pairs: list[tuple[int, int, float]] = []
    for tr in tracks:       # one track = one identity: in-clip edges carry full weight
        for m in tr.members[1:]:
            pairs.append((index[tr.target.subject_id], index[m.subject_id], 1.0))
    for a, b, w in edges:
        pairs.append((index[a], index[b], float(min(1.0, max(0.0, w)))))
    ccfg = cfg.get("cluster") or {}
    labels = list(d.cluster_identities(len(ids), pairs, method=ccfg.get("method", "components"),
                                       threshold=ccfg.get("threshold")))
    members: dict[int, list[str]] = {}
    for s, lab in zip(ids, labels):
        members.setdefault(int(lab), []).append(s)
    name = {lab: "id-" + hashlib.blake2b(min(ms).encode(), digest_size=5).hexdigest() for lab, ms in members.items()}
    for r in rows:
        r["cluster_id"] = name[int(labels[index[r["target_subject_id"]]])]
    summary = d.cluster_summary(labels)
    summary = json.loads(json.dumps(summary, default=str))      # int size keys -> str, numpy -> plain
    # identities seen by pairs rows (bank-only clusters are not identities of the dataset)
    row_clusters: dict[str, int] = {}
    for r in rows:
        row_clusters[r["cluster_id"]] = row_clusters.get(r["cluster_id"], 0) + 1
    summary["n_row_clusters"] = len(row_clusters)
    summary["rows_per_cluster_max"] = max(row_clusters.values()) if row_clusters else 0
    return summary


def write_pairs(dataset: Path, rows: list[dict]) -> pa.Table:
    from ...engine.parts import atomic_parquet
    from ...schema import table_from_rows
    for r in rows:
        r.setdefault("embedder", None)
    table = table_from_rows(rows, PAIR_SCHEMA).sort_by("pair_id")
    atomic_parquet(table, Path(dataset) / "pairs.parquet")
    return table


def _atomic_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
