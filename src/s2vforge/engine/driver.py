"""The one driver: runs any stage (engine/stage.py) on any engine and assembles its tables.

    run = run_stage(stage, items, dataset, engine=spec, progress=callback)

1. stamp = hash of the stage's config() and the package version; the journal under
   DATASET/.work/<stage>/ says which items are done with that stamp; those are skipped;
2. the rest go to the engine (local process pool or Ray), which runs them in workers through
   worker.StageHost (setup once, process, commit through the one writer);
3. an item whose worker died gets the stage's error_output, committed here;
4. every table is assembled from the journal parts of exactly this run's items, sorted by its
   id column, written as DATASET/<table>.parquet with its declared schema; then the stage's
   finalize() runs and its tables and files are written too;
5. the summary (one shape for every stage, see `summary_of`) goes to DATASET/<stage>_run.json.
"""
from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from . import writer
from .faults import raise_if_disk_full
from .lock import dataset_lock
from .journal import WORK_DIR, Journal, config_hash, item_digest
from .spec import EngineSpec
from .stage import Final, Stage, StageRun

MAX_ERRORS_LISTED = 1000


def stage_stamp(stage: Stage) -> str:
    from .. import __version__
    return config_hash({"stage": stage.name, "config": stage.config(), "version": __version__})


def run_stage(stage: Stage, items: Sequence[Any], dataset: Path, *, engine: EngineSpec | None = None,
              progress: Callable[[dict], None] | None = None) -> tuple[StageRun, dict]:
    """Run `stage` over `items` into `dataset`; returns the assembled run and its summary.
    Holds the dataset's lock (engine/lock.py) throughout: a second run on it stops at once."""
    dataset = Path(dataset)
    try:
        dataset.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise_if_disk_full(e, dataset)
        raise
    with dataset_lock(dataset, stage.name, WORK_DIR):
        try:
            return _run_locked(stage, items, dataset, engine, progress)
        except OSError as e:     # the driver's own writes (tables, run file) on a full disk
            raise_if_disk_full(e, dataset)
            raise


def _run_locked(stage: Stage, items: Sequence[Any], dataset: Path, engine: EngineSpec | None,
                progress: Callable[[dict], None] | None) -> tuple[StageRun, dict]:
    t0 = time.perf_counter()
    spec = engine or EngineSpec()
    stamp = stage_stamp(stage)
    journal = Journal(dataset, stage.name, stamp, stage.tables)
    journal.sweep()
    writer.sweep_tmp(dataset)        # tables of a killed run
    for sub in stage.file_dirs:      # what a killed run was writing is never complete: remove it
        writer.sweep_tmp(dataset / sub)
    for scratch in (dataset / WORK_DIR / "tmp").glob(f"{stage.name}-*"):
        shutil.rmtree(scratch, ignore_errors=True)
    keys = [stage.key(it) for it in items]
    dup = [k for k, n in Counter(keys).items() if n > 1]
    if dup:
        raise ValueError(f"{stage.name}: {len(dup)} items share a key (first: {dup[0]}); keys must be unique")
    done = [(item, key) for item, key in zip(items, keys) if journal.is_done(key, item_digest(item))]
    damaged = damaged_items(stage, journal, dataset, [key for _, key in done])
    done_keys = {key for _, key in done} - set(damaged)
    todo, skipped = [], 0
    for item, key in zip(items, keys):
        if key in done_keys:
            skipped += 1
            if progress:
                progress({**journal.meta(key), "resumed": True})
        else:
            todo.append(item)

    def on_done(item: Any, meta: dict) -> None:
        if progress:
            progress(meta)

    def on_crash(item: Any, exc: BaseException) -> dict:   # the worker died (OOM kill, a segfault)
        out = stage.error_output(item, f"worker crashed while running {stage.name}: {type(exc).__name__}: {exc}")
        return journal.commit(stage.key(item), out, item_digest(item), retry=True)

    if spec.kind == "ray":
        from .ray_engine import run_ray
        run_ray(stage, todo, str(dataset), stamp, spec, on_done, on_crash)
    else:
        from .local import run_local
        run_local(stage, todo, str(dataset), stamp, spec.workers, on_done, on_crash,
                  committed=lambda item: (journal.meta(stage.key(item))
                                          if journal.is_done(stage.key(item), item_digest(item)) else None))

    metas = {k: journal.meta(k) for k in keys}
    tables = {name: journal.read(keys, name) for name in stage.tables}
    run = StageRun(stage.name, dataset, keys, metas, tables, skipped)
    for name in stage.published:
        writer.write_parquet(tables[name], dataset / f"{name}.parquet")
    final = stage.finalize(run)
    for name, table in final.tables.items():
        writer.write_parquet(table, dataset / f"{name}.parquet")
        run.tables[name] = table
    for rel, data in final.files.items():
        writer.write_bytes(dataset / rel, data)
    run.wall_s = round(time.perf_counter() - t0, 3)
    summary = summary_of(stage, run, final)
    summary["repaired"] = dict(sorted(damaged.items()))
    writer.write_json(dataset / f"{stage.name}_run.json", {**stage.run_info(), "stage": stage.name,
                                                            "config": stage.config(), "summary": summary})
    return run, summary


VERIFY_THREADS = 8


def damaged_items(stage: Stage, journal: Journal, dataset: Path, keys: list[str]) -> dict[str, str]:
    """Finished items whose files are gone, resized or fail the stage's check_file: key -> why.
    They are redone, so a rerun repairs what a crash, a full disk or a stray process broke."""
    from concurrent.futures import ThreadPoolExecutor

    def check(key: str) -> tuple[str, str | None]:
        problems = []
        for rel, size in journal.files_of(key).items():
            path = dataset / rel
            try:
                actual = path.stat().st_size
            except OSError:
                problems.append(f"{rel} is missing")
                continue
            if size is not None and actual != size:
                problems.append(f"{rel} has {actual} bytes, {size} when written")
                continue
            why = stage.check_file(path)
            if why:
                problems.append(f"{rel}: {why}")
        return key, "; ".join(problems) or None

    if not keys:
        return {}
    with ThreadPoolExecutor(max_workers=min(VERIFY_THREADS, len(keys))) as pool:   # decoders release the GIL
        return {key: why for key, why in pool.map(check, keys) if why}


def summary_of(stage: Stage, run: StageRun, final: Final) -> dict:
    """The summary every command prints: the same keys for every stage, then the stage's own."""
    statuses = Counter(m.get("status", "ok") for m in run.metas.values())
    extra = dict(final.summary)
    unavailable: dict[str, str] = dict(extra.pop("unavailable", None) or {})   # what finalize could not use
    errors = []
    for key in sorted(run.metas):
        m = run.metas[key]
        unavailable.update(m.get("unavailable") or {})
        if m.get("status", "ok") != "ok" and len(errors) < MAX_ERRORS_LISTED:
            errors.append({"key": key, "status": m.get("status"), "error": m.get("error"),
                           **({"path": m["path"]} if m.get("path") else {})})
    return {"stage": stage.name, "dataset": str(run.dataset), "n_items": len(run.keys),
            "n_ok": statuses.get("ok", 0), "n_error": statuses.get("error", 0),
            "n_skipped_done": run.n_skipped_done, "statuses": dict(sorted(statuses.items())),
            "unavailable": dict(sorted(unavailable.items())), "errors": errors, "wall_s": run.wall_s,
            "tables": {name: run.tables[name].num_rows for name in sorted({*stage.published, *final.tables})},
            **stage.summarize(run), **extra}
