"""Stage 3 of `pair`: the persisted identity banks, and `--bank` image folders registered into them.

One bank per category under DATASET/index/<category>/ (bank.IdentityBank: exact below its size
threshold, IVF/HNSW beyond) holds every kept instance plus the entries of the `--bank` folders:
each face the face embedder's own detector finds becomes a `face` entry, the whole image (or the
alpha of an RGBA png) an `object` entry, ids `bank:<folder>/<relpath>#face<k>|#object`. Folder
images are embedded once per (file, size, mtime, embed config) and cached as Parquet; ids already
in a bank are not added again; a bank built by another embedder is rebuilt.
"""
from __future__ import annotations

import inspect
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow.parquet as pq

from ...engine.journal import config_hash
from ...schema import BANK_ENTRY_SCHEMA, SUBJECT_CATEGORIES as CATEGORIES
from .clipembed import CACHE_DIR, cached_embedder, context_embedder, read_rgba, unit_or_none
from .tracks import Instance

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
INDEX_DIR = "index"


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


def bank_images(dirs: Sequence[Path]) -> list[tuple[Path, str]]:
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
    emb = cached_embedder(state, "face", cfg)
    for obj in (emb, getattr(emb, "locator", None), getattr(getattr(emb, "locator", None), "faces", None)):
        if obj is not None and callable(getattr(obj, "detect", None)):
            return obj
    from ...backends.face import DlibFaces
    return DlibFaces()


def embed_bank_image(path: Path, relpath: str, cfg: dict, state: dict) -> tuple[list[dict], dict]:
    """Entries of one bank image: each face found as `face`, the whole image (alpha = mask) as `object`."""
    from ...backends.errors import BackendUnavailable
    img = read_rgba(path)
    rows: list[dict] = []
    if img is None:
        return rows, {"status": "error", "error": "image_unreadable"}
    rgb = img[:, :, :3] if img.shape[2] == 4 else img
    h, w = rgb.shape[:2]
    alpha = img[:, :, 3] > 127 if img.shape[2] == 4 else np.ones((h, w), bool)
    ctx_emb = None
    try:
        ctx_emb = context_embedder(state, cfg)
    except BackendUnavailable:
        pass

    def context_of(mask: np.ndarray):
        if ctx_emb is None or mask.all():
            return None          # nothing around the subject: no context to compare
        try:
            return unit_or_none(np.asarray(ctx_emb.embed([rgb], [mask]), np.float32)[0])
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
            v = np.asarray(cached_embedder(state, "face", cfg).embed([crop]), np.float32)[0]
        except BackendUnavailable:
            continue
        m = np.zeros((h, w), bool)
        m[box[1]:box[3], box[0]:box[2]] = True
        rows.append({"entry_id": f"bank:{relpath}#face{k}", "category": "face", "path": str(path), "relpath": relpath,
                     "box": box, "vector": unit_or_none(v), "context": context_of(m)})
    ys, xs = np.nonzero(alpha)
    if ys.size:
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        crop = img[box[1]:box[3], box[0]:box[2]]
        try:
            v = np.asarray(cached_embedder(state, "object", cfg).embed([crop]), np.float32)[0]
            rows.append({"entry_id": f"bank:{relpath}#object", "category": "object", "path": str(path),
                         "relpath": relpath, "box": box, "vector": unit_or_none(v), "context": context_of(alpha)})
        except BackendUnavailable:
            pass
    return rows, {"status": "ok", "error": None}


def register_bank_dirs(dataset: Path, dirs: Sequence[Path], cfg: dict, stamp: str, state: dict) -> list[BankEntry]:
    """Bank-folder images as entries, embedded once per (file, size, mtime, embed config)."""
    from ...engine.writer import write_parquet
    from ...schema import table_from_rows
    cache = Path(dataset) / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    entries: list[BankEntry] = []
    for path, rel in bank_images(dirs):
        st = path.stat()
        key = config_hash({"rel": rel, "size": st.st_size, "mtime": st.st_mtime_ns, "stamp": stamp})
        part = cache / f"{key}.parquet"
        if part.exists():
            rows = pq.read_table(part, schema=BANK_ENTRY_SCHEMA).to_pylist()
        else:
            rows, _ = embed_bank_image(path, rel, cfg, state)
            write_parquet(table_from_rows(rows, BANK_ENTRY_SCHEMA), part)
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
    from .embed import embedder_key
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
        key = embedder_key(cat, cfg["embed"])
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
    from .bank import IdentityBank as Bank
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

