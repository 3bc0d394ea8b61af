"""The pairs stage: kept subject instances -> identity pairs (pairs.parquet) + a FAISS bank.

Phantom-Data (Chen et al., 2025) pairs every target subject with a reference of the *same
identity* taken from a *different context*, so a model cannot copy-paste the reference into
the video; OpenS2V-Nexus (Yuan et al., 2025) builds its cross-video pairs the same way and
keeps in-clip ("regular") references as the fallback. `PairsStage` is the stage under the
stage contract (engine/stage.py); each step lives in its own module:

1. clipembed.py, per item (one kept clip, run by the driver on any engine, journaled): identity
   embeddings of the subject crops (embed.py) and context embeddings of their frames
   (diversity.py);
2. in finalize (once, over all clips): tracks.py (instances, the person vectors' face part from
   the co-located face row, in-clip identity tracks whose best instance is the target);
3. bankreg.py: one persisted bank per category (bank.py) with every kept instance and the
   images of any --bank folder;
4. candidates.py: bounded retrieval under the priors, verification per category, the choice of
   the most context-diverse verified reference, the in_pair fallback;
5. here: identity clusters over tracks + verified edges (cluster.py) and pairs.parquet (one row
   per target track, sorted by pair_id).

Resume: the embedding journal is stamped with the embedding config; a rerun only embeds clips
without a matching entry. Everything after embedding is cheap and redone, so reruns give
identical tables.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ...backends.errors import BackendUnavailable
from ...engine.journal import config_hash
from ...engine.stage import Context, Final, Output, Resources, Stage, StageRun
from ...schema import EMBED_SCHEMA, PAIR_SCHEMA, SUBJECT_CATEGORIES as CATEGORIES, TableSpec, table_from_rows
from .bankreg import open_banks, register_bank_dirs
from .candidates import CropCache, pair_track
from .clipembed import cached_embedder, embed_clip, new_state
from .embed import reuses_face_rows
from .tracks import Instance, Track, attach_face_rows, build_tracks, quality_score

# ------------------------------------------------------------------ config

def pairs_config(recipe: dict | None) -> dict:
    """The recipe's `pairs` section over the default recipe's (recipes.section)."""
    from ...recipes import section
    return section(recipe, "pairs")


# ------------------------------------------------------------------ the run

def _read_subjects(dataset: Path) -> list[dict]:
    path = dataset / "subjects.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `s2vforge subjects {dataset}` first")
    rows = pq.read_table(path).to_pylist()
    return [r for r in rows if r.get("keep") and r.get("category") in CATEGORIES]


class PairsStage(Stage):
    """Items: {"clip_id", "rows": the clip's kept subject rows}; finalize builds the pairs."""
    name = "pairs"
    tables = {"embeddings": TableSpec(EMBED_SCHEMA, "subject_id")}
    published = ()
    resources = Resources(num_cpus=1, actors="auto", batch_size=16)

    def __init__(self, recipe: dict | None, bank_dirs: Sequence[Path] = ()) -> None:
        self.cfg = pairs_config(recipe)
        from .verify import vlm_verifier_from_config
        vlm_verifier_from_config(self.cfg["verify"]["vlm"])   # a bad VLM setting is a usage error before any work
        self.bank_dirs = [Path(b) for b in bank_dirs]
        self.state: dict | None = None

    def config(self) -> dict:
        """What the embedding journal depends on: each category's effective embedder
        (embed.embedder_key covers backend, settings and descriptor version) and the context one."""
        from .embed import embedder_key
        return {"context": {"backend": "scene", **(self.cfg["context"] or {})},
                "embedders": {c: embedder_key(c, self.cfg["embed"]) for c in CATEGORIES}}

    def run_info(self) -> dict:
        return {"pairs": self.cfg}

    def key(self, item: dict) -> str:
        return item["clip_id"]

    def setup(self) -> None:
        self.state = new_state()

    def teardown(self) -> None:
        self.state = None

    def process(self, item: dict, ctx: Context) -> Output:
        if self.state is None:
            self.setup()
        rows, meta = embed_clip(item["clip_id"], item["rows"], self.cfg, ctx.dataset, self.state)
        return Output(rows={"embeddings": rows}, meta=meta)

    def error_output(self, item: dict, message: str) -> Output:
        rows = [{"subject_id": r["subject_id"], "clip_id": item["clip_id"], "category": r["category"], "vector": None,
                 "context": None, "error": message} for r in sorted(item["rows"], key=lambda r: r["subject_id"])]
        return Output(rows={"embeddings": rows}, meta={"clip_id": item["clip_id"], "status": "error", "error": message,
                                                         "n_subjects": len(rows), "n_embedded": 0})

    def finalize(self, run: StageRun) -> Final:
        if self.state is None:
            self.setup()
        for m in run.metas.values():      # the names the workers' embedders gave themselves
            for cat, name in (m.get("embedders") or {}).items():
                self.state["names"].setdefault(cat, name)
        table, summary = build_pairs(run, self.cfg, self.bank_dirs, self.state, config_hash(self.config()))
        return Final(tables={"pairs": table}, summary=summary)


def pair_items(dataset: Path) -> tuple[list[dict], int]:
    """The work of `pair`: one item per clip with kept subjects; and the number of instances."""
    subjects = _read_subjects(Path(dataset))
    by_clip: dict[str, list[dict]] = {}
    for r in subjects:
        by_clip.setdefault(r["clip_id"], []).append(r)
    return [{"clip_id": c, "rows": sorted(by_clip[c], key=lambda r: r["subject_id"])} for c in sorted(by_clip)], len(subjects)


def run_pairs(dataset: Path, recipe: dict | None, *, bank_dirs: Sequence[Path] = (), workers: int = 1, engine=None,
              progress: Callable[[dict], None] | None = None) -> dict:
    """Mine identity pairs over DATASET's kept subjects (see module doc); returns the summary.

    Writes DATASET/pairs.parquet, DATASET/pairs_run.json and DATASET/index/<category>/.
    Reruns resume: clips already embedded with the same config are not embedded again."""
    from ...engine.driver import run_stage
    from ...engine.spec import EngineSpec
    items, _ = pair_items(dataset)
    _, summary = run_stage(PairsStage(recipe, bank_dirs), items, Path(dataset),
                           engine=engine or EngineSpec(workers=workers), progress=progress)
    return summary


def build_pairs(run: StageRun, cfg: dict, bank_dirs: Sequence[Path], state: dict, stamp: str) -> tuple[pa.Table, dict]:
    """Everything after embedding (module doc steps 2-5): the pairs table and the summary."""
    from .verify import vlm_verifier_from_config
    dataset = run.dataset
    subjects = _read_subjects(dataset)
    summary: dict = {"n_clips": len(run.keys), "n_instances": len(subjects)}
    emb = {r["subject_id"]: r for r in run.tables["embeddings"].to_pylist()}

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
    unavailable: dict[str, str] = {}
    if any(i.category == "person" for i in instances) and reuses_face_rows(cfg["embed"]):
        try:
            summary["n_persons_with_face_row"] = attach_face_rows(instances, cached_embedder(state, "person", cfg), cfg)
        except BackendUnavailable as e:   # the person embedder is missing: its instances are already NaN rows
            unavailable["embed_person"] = str(e)
    tracks = build_tracks(instances, cfg)
    summary["n_tracks"] = len(tracks)

    t_bank = time.perf_counter()
    entries = register_bank_dirs(dataset, bank_dirs, cfg, stamp, state) if bank_dirs else []
    summary["n_bank_entries"] = len(entries)
    banks = open_banks(dataset, instances, entries, cfg)
    summary["banks"] = {c: {"size": len(b), "index": str(getattr(b, "index_kind", "?"))} for c, b in sorted(banks.items())}
    summary["bank_s"] = round(time.perf_counter() - t_bank, 3)

    t_pair = time.perf_counter()
    vlm = vlm_verifier_from_config(cfg["verify"]["vlm"])
    by_id = {i.subject_id: i for i in instances}
    entry_by_id = {e.entry_id: e for e in entries}
    images = CropCache(dataset)
    rows, edges = [], []
    for tr in tracks:
        row, e = pair_track(tr, banks, by_id, entry_by_id, images, cfg, vlm, state)
        row["embedder"] = _embedder_name(tr.category, cfg, state)
        rows.append(row)
        edges.extend(e)
    summary["pair_s"] = round(time.perf_counter() - t_pair, 3)

    summary["clusters"] = cluster_rows(rows, tracks, instances, edges, cfg)
    for r in rows:
        r.setdefault("embedder", None)
    table = table_from_rows(rows, PAIR_SCHEMA).sort_by("pair_id")
    kinds: dict[str, int] = {}
    by_cat: dict[str, dict[str, int]] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        by_cat.setdefault(r["category"], {}).setdefault(r["kind"], 0)
        by_cat[r["category"]][r["kind"]] += 1
    summary.update(n_pairs=table.num_rows, kinds=dict(sorted(kinds.items())), kinds_by_category=by_cat,
                   n_kept=sum(1 for r in rows if r["keep"]),
                   embedders={c: _embedder_name(c, cfg, state) for c in sorted({i.category for i in instances})})
    if unavailable:
        summary["unavailable"] = unavailable
    return table, summary


def _embedder_name(cat: str, cfg: dict, state: dict) -> str:
    from .embed import embedder_key
    e = state["embedders"].get(cat)
    return getattr(e, "name", None) or state["names"].get(cat) or embedder_key(cat, cfg["embed"])


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
    labels = list(cluster_identities(len(ids), pairs, method=cfg["cluster"]["method"],
                                       threshold=cfg["cluster"]["threshold"]))
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
