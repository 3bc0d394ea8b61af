"""The pairs stage: kept subject instances -> identity pairs (pairs.parquet) + a FAISS bank.

Phantom-Data (Chen et al., 2025) pairs every target subject with a reference of the *same
identity* taken from a *different context*, so a model cannot copy-paste the reference into
the video; OpenS2V-Nexus (Yuan et al., 2025) builds its cross-video pairs the same way and
keeps in-clip ("regular") references as the fallback. This module is the orchestration; each
step lives in its own module:

1. clipembed.py: per kept clip (engine.pool.run_pool, journaled), identity embeddings of the
   subject crops (embed.py) and context embeddings of their frames (diversity.py);
2. tracks.py: instances, the person vectors' face part from the co-located face row, in-clip
   identity tracks whose best instance is the target;
3. bankreg.py: one persisted bank per category (bank.py) with every kept instance and the
   images of any --bank folder;
4. candidates.py: bounded retrieval under the priors, verification per category, the choice of
   the most context-diverse verified reference, the in_pair fallback;
5. here: identity clusters over tracks + verified edges (cluster.py), pairs.parquet (one row per
   target track, sorted by pair_id) and pairs_run.json.

Resume: each finished clip's embeddings are a Parquet part plus a JSON marker written last,
stamped with a hash of the embedding config; a rerun only embeds clips without a matching
marker. Everything after embedding is cheap and redone, so reruns give identical tables.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# the step modules' public names stay importable from here
from .bankreg import (BANK_ENTRY_SCHEMA, INDEX_DIR, BankEntry, embed_bank_image, open_banks,  # noqa: F401
                      register_bank_dirs)
from .candidates import (Candidate, CropCache, accepted, pair_id_for, pair_track, prior_verdict,  # noqa: F401
                         verdict_text, verify_candidate)
from ...backends.errors import BackendUnavailable
from ...engine.pool import run_pool
from .clipembed import (EMBED_SCHEMA, PARTS_DIR, EmbedParts, clip_frames_at, config_hash, embed_clip,  # noqa: F401
                        read_rgba, subject_mask, work_on_clip, worker_state)
from .embed import reuses_face_rows
from .tracks import Instance, Track, attach_face_rows, build_tracks, quality_score  # noqa: F401

CATEGORIES = ("face", "person", "animal", "object")
LIVING = ("face", "person", "animal")

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
    # identity cosine that accepts a candidate without a passing geometric / face check (candidates.py):
    # object = geometry unknown or failed; animal = the identity check itself (non-rigid); person = the
    # appearance part when one side shows no face. Set from the distributions in docs/quality.md.
    "accept_similarity": {"object": 0.75, "animal": 0.60, "person": 0.80},
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


def embed_stamp(cfg: dict) -> str:
    """What the per-clip parts depend on: each category's effective embedder (embed.embedder_key
    covers backend, settings and descriptor version) and the context embedder."""
    from .embed import embedder_key
    return config_hash({"context": {"backend": "scene", **(cfg["context"] or {})},
                        "embedders": {c: embedder_key(c, cfg["embed"]) for c in CATEGORIES}})


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
    from .verify import vlm_verifier_from_config
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
    run_pool(work_on_clip, todo, (cfg, str(dataset), stamp), workers,
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
            float(r.get("det_score") or 0.0), quality_score(r), r.get("crop_path"),
            None if e.get("vector") is None else np.asarray(e["vector"], np.float32),
            None if e.get("context") is None else np.asarray(e["context"], np.float32)))
    summary["n_embedding_failures"] = sum(1 for i in instances if i.vector is None)
    if any(i.category == "person" for i in instances) and reuses_face_rows(cfg["embed"]):
        try:
            summary["n_persons_with_face_row"] = attach_face_rows(instances, worker_embedder("person", cfg))
        except BackendUnavailable as e:   # the person embedder is missing: its instances are already NaN rows
            summary["unavailable"].setdefault("embed_person", str(e))
    tracks = build_tracks(instances, cfg)
    summary["n_tracks"] = len(tracks)

    t_bank = time.perf_counter()
    entries = register_bank_dirs(dataset, bank_dirs, cfg, stamp) if bank_dirs else []
    summary["n_bank_entries"] = len(entries)
    banks = open_banks(dataset, instances, entries, cfg)
    summary["banks"] = {c: {"size": len(b), "index": str(getattr(b, "index_kind", "?"))} for c, b in sorted(banks.items())}
    summary["bank_s"] = round(time.perf_counter() - t_bank, 3)

    t_pair = time.perf_counter()
    vlm = vlm_verifier_from_config(cfg["verify"].get("vlm")) if cfg["verify"].get("vlm") else None
    by_id = {i.subject_id: i for i in instances}
    entry_by_id = {e.entry_id: e for e in entries}
    images = CropCache(dataset)
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


def worker_embedder(category: str, cfg: dict):
    from .clipembed import cached_embedder
    return cached_embedder(worker_state(cfg), category, cfg)


def _safe_name(cat: str, cfg: dict) -> str:
    from .embed import embedder_key
    e = worker_state(cfg)["embedders"].get(cat)
    return getattr(e, "name", None) or embedder_key(cat, cfg["embed"])


def cluster_rows(rows: list[dict], tracks: list[Track], instances: list[Instance], edges: list[tuple[str, str, float]],
                 cfg: dict) -> dict:
    """cluster_id on every row: identities = connected components over tracks + verified edges."""
    from .cluster import cluster_identities, cluster_summary
    ids = sorted({i.subject_id for i in instances} | {b for _, b, _ in edges})
    index = {s: k for k, s in enumerate(ids)}
    pairs: list[tuple[int, int, float]] = []
    for tr in tracks:       # one track = one identity: in-clip edges carry full weight
        for m in tr.members[1:]:
            pairs.append((index[tr.target.subject_id], index[m.subject_id], 1.0))
    for a, b, w in edges:
        pairs.append((index[a], index[b], float(min(1.0, max(0.0, w)))))
    ccfg = cfg.get("cluster") or {}
    labels = list(cluster_identities(len(ids), pairs, method=ccfg.get("method", "components"),
                                       threshold=ccfg.get("threshold")))
    members: dict[int, list[str]] = {}
    for s, lab in zip(ids, labels):
        members.setdefault(int(lab), []).append(s)
    name = {lab: "id-" + hashlib.blake2b(min(ms).encode(), digest_size=5).hexdigest() for lab, ms in members.items()}
    for r in rows:
        r["cluster_id"] = name[int(labels[index[r["target_subject_id"]]])]
    summary = cluster_summary(labels)
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
