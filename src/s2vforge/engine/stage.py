"""The stage contract: what every stage of s2vforge is, whatever engine runs it.

A stage is a class with:

- `name` (also its journal folder `.work/<name>/` and its `resources:` entry in the recipe),
- `tables`: the tables its items produce, name -> `schema.TableSpec` (schema + sort key), and
  `published`: those written as DATASET/<name>.parquet (the others stay in the journal),
- `resources`: what one worker needs (cpus, gpus, memory; actors for model stages),
- `config()`: the part of the recipe (plus backend names and versions) that decides its
  output; its hash stamps the journal, so a changed config recomputes and an unchanged one
  does no work,
- `key(item)`: the item's stable id (its journal entry),
- `setup()`: load models once per worker (never in __init__: the stage object is shipped to
  workers before setup),
- `process(item, ctx) -> Output`: rows per table and file payloads, never writing a file,
- `error_output(item, message) -> Output`: the rows that record an item that failed,
- `teardown()`,
- `check_file(path)`: why a file a finished item wrote is unusable (None when fine); a rerun
  redoes an item whose file is missing, resized or fails this check,
- `finalize(run) -> Final`: optional whole-dataset step over the assembled tables (pairs
  builds its bank and pairs table here); returns more tables, files and a summary.

The driver (engine/driver.py) lists work, skips what the journal says is done, hands the rest
to an engine (engine/local.py, engine/ray_engine.py), commits every Output through the one
writer, assembles the tables and calls finalize. Engines schedule and hold no stage logic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from ..schema import TableSpec


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs. actors: 0 = stateless tasks; N or "auto" (= --workers)
    = a pool of long-lived workers that each run setup() once. gpus may be a fraction."""
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None     # bytes, for the scheduler
    actors: int | str = 0
    batch_size: int = 1
    max_retries: int = 2


@dataclass
class Output:
    """What process() returns for one item. files: dataset-relative path -> bytes, or a Path to a
    finished scratch file (under ctx.scratch) that the writer moves into place."""
    rows: dict[str, list[dict]] = field(default_factory=dict)
    files: dict[str, bytes | Path] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)       # JSON: status ok|error, error, unavailable, timings...;
                                                   # retry: True = not done, the next run tries it again


@dataclass
class Context:
    """Where an item runs: the dataset it reads, and a scratch folder for files under construction."""
    dataset: Path
    scratch: Path


@dataclass
class Final:
    """What finalize() adds: whole tables, files and JSON documents (dataset-relative names)."""
    tables: dict[str, pa.Table] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


@dataclass
class StageRun:
    """The assembled result the driver hands to finalize() and returns to the caller."""
    stage: str
    dataset: Path
    keys: list[str]
    metas: dict[str, dict]
    tables: dict[str, pa.Table]
    n_skipped_done: int
    wall_s: float = 0.0


class Stage:
    name: ClassVar[str] = ""
    tables: ClassVar[dict[str, TableSpec]] = {}
    published: ClassVar[tuple[str, ...]] = ()     # which of `tables` become DATASET/<name>.parquet
    file_dirs: ClassVar[tuple[str, ...]] = ()     # dataset folders its files go to (swept of a killed run's .tmp)
    resources: ClassVar[Resources] = Resources()

    def config(self) -> dict:
        raise NotImplementedError

    def key(self, item: Any) -> str:
        raise NotImplementedError

    def setup(self) -> None:
        """Load models once per worker."""

    def process(self, item: Any, ctx: Context) -> Output:
        raise NotImplementedError

    def error_output(self, item: Any, message: str) -> Output:
        raise NotImplementedError

    def teardown(self) -> None:
        """Release what setup() loaded."""

    def check_file(self, path: Path) -> str | None:
        """Why a file this stage wrote can no longer be used (None = fine). The driver has already
        checked that it exists with the size it was committed with; stages add a format check."""
        return None

    def finalize(self, run: StageRun) -> Final:
        return Final()

    def run_info(self) -> dict:
        """More to record in DATASET/<name>_run.json beside config and summary (e.g. the recipe)."""
        return {}

    def summarize(self, run: StageRun) -> dict:
        """Stage-specific counts for the summary (the driver adds the common fields)."""
        return {}
