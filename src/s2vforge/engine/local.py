"""Local engine: schedules curate_video over a process pool with a resumable part store.

It holds no stage logic: it assigns ids, skips finished videos, runs the stage in workers,
persists each result atomically and assembles the tables.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..inputs import input_id
from ..schema import display_path
from .parts import PartStore
from .pool import run_pool


@dataclass
class RunSummary:
    dataset: str
    n_inputs: int = 0
    n_ok: int = 0
    n_error: int = 0
    n_duplicate: int = 0
    n_skipped_done: int = 0
    n_clips: int = 0
    n_kept: int = 0
    wall_s: float = 0.0
    unavailable: dict[str, str] = field(default_factory=dict)
    scorer_failures: dict[str, str] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    reject_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def assign_ids(items: list[dict]) -> list[dict]:
    """Give each input its content id; a repeat of earlier content becomes a duplicate row."""
    seen: dict[str, str] = {}
    for it in items:
        vid = input_id(it["path"])
        it["video_id"] = vid
        if vid in seen and not it.get("missing"):
            it["duplicate_of"] = seen[vid]
            it["video_id"] = f"{vid}-dup-{_short_hash(it['path'])}"
        else:
            seen.setdefault(vid, display_path(it["path"]))
    return items


def _short_hash(path) -> str:
    import hashlib
    return hashlib.blake2b(os.fsencode(path), digest_size=4).hexdigest()


def _error_result(item: dict, message: str, status: str = "error"):
    from ..stages.curate import VideoResult
    from ..schema import display_path as dp
    row = {"video_id": item["video_id"], "path": dp(item["path"]), "path_raw": os.fsencode(item["path"]),
           "status": status, "error": message, "group_id": item.get("group_id") or item["video_id"],
           "caption": item.get("caption"), "n_scenes": 0, "n_clips": 0, "n_kept": 0}
    return VideoResult(row, [])


def _work(item: dict, recipe: dict, dataset_dir: str, score_columns: list[str]) -> dict:
    """Worker body: run the stage, persist its parts, return a small summary."""
    from ..stages.curate import curate_video
    t0 = time.perf_counter()
    try:
        res = curate_video(item, recipe, Path(dataset_dir))
    except Exception as e:  # a stage bug must not take the run down; the row says what happened
        res = _error_result(item, f"internal error while curating: {type(e).__name__}: {e}")
    meta = {"video_id": item["video_id"], "status": res.video["status"], "error": res.video.get("error"),
            "unavailable": res.unavailable, "failures": res.failures, "timings": res.timings, "seconds": time.perf_counter() - t0,
            "n_clips": len(res.clips), "n_kept": sum(1 for c in res.clips if c["keep"])}
    PartStore(Path(dataset_dir)).write(item["video_id"], res.video, res.clips, score_columns, meta)
    return meta


def run_local(items: list[dict], recipe: dict, dataset_dir: Path, score_columns: list[str], workers: int = 1,
              on_progress: Callable[[dict], None] | None = None, engine=None) -> RunSummary:
    """Curate every item; `engine` (None = this machine's process pool, or an engine.spec.EngineSpec
    for Ray) only changes where the per-video work runs, never what it writes."""
    dataset_dir = Path(dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    store = PartStore(dataset_dir)
    t0 = time.perf_counter()
    items = assign_ids(items)
    summary = RunSummary(dataset=str(dataset_dir), n_inputs=len(items))
    todo = []
    for it in items:
        if store.is_done(it["video_id"]):
            summary.n_skipped_done += 1
            if on_progress:
                on_progress(store.meta(it["video_id"]))
            continue
        if it.get("missing") or it.get("duplicate_of"):
            msg = ("no such file" if it.get("missing") else f"same content as {it['duplicate_of']}")
            res = _error_result(it, msg, status="error" if it.get("missing") else "duplicate")
            meta = {"video_id": it["video_id"], "status": res.video["status"], "error": msg, "unavailable": {},
                    "timings": {}, "seconds": 0.0, "n_clips": 0, "n_kept": 0}
            store.write(it["video_id"], res.video, [], score_columns, meta)
            if on_progress:
                on_progress(meta)
            continue
        todo.append(it)
    def on_crash(it: dict, exc: BaseException) -> dict:
        res = _error_result(it, f"worker crashed while curating: {type(exc).__name__}: {exc}")
        meta = {"video_id": it["video_id"], "status": "error", "error": res.video["error"],
                "unavailable": {}, "timings": {}, "seconds": 0.0, "n_clips": 0, "n_kept": 0}
        store.write(it["video_id"], res.video, [], score_columns, meta)
        return meta

    run_pool(_work, todo, (recipe, str(dataset_dir), score_columns), workers,
             on_done=lambda it, meta: on_progress(meta) if on_progress else None, on_crash=on_crash,
             engine=engine, stage="curate")
    vt, ct = store.finalize([it["video_id"] for it in items], dataset_dir, score_columns)
    for vid in (it["video_id"] for it in items):
        m = store.meta(vid)
        summary.unavailable.update(m.get("unavailable") or {})
        summary.scorer_failures.update(m.get("failures") or {})
    statuses = vt.column("status").to_pylist()
    summary.n_ok = statuses.count("ok")
    summary.n_error = statuses.count("error")
    summary.n_duplicate = statuses.count("duplicate")
    summary.errors = [{"path": p, "status": s, "error": e} for p, s, e in
                      zip(vt.column("path").to_pylist(), statuses, vt.column("error").to_pylist()) if s != "ok"]
    summary.n_clips = ct.num_rows
    keep = ct.column("keep").to_pylist()
    summary.n_kept = sum(1 for k in keep if k)
    for reasons in ct.column("reject_reasons").to_pylist():
        for r in reasons or []:
            key = r.split("<")[0].split(">")[0].split(":")[0]
            summary.reject_counts[key] = summary.reject_counts.get(key, 0) + 1
    summary.wall_s = time.perf_counter() - t0
    (dataset_dir / "run.json").write_text(json.dumps({"recipe": recipe, "summary": summary.as_dict()}, indent=2,
                                                     default=str))
    return summary
