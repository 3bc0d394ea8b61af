"""The worker side of the driver: one stage, set up once, running items and committing them.

A `StageHost` is what every engine runs inside a worker (the local process, a pool process,
a Ray task or a Ray actor): `setup()` once, then `run(item)` per item, which calls the stage's
`process` (its exceptions become the stage's error rows), commits the Output through the
journal (the one writer) where the item ran, and returns the item's small JSON meta.

Items that are dicts whose "path" is a remote fsspec URI are processed with "path" replaced
by a worker-local copy (media.fetch.local_copy); "uri" keeps the URI.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from .faults import RunStopped, raise_if_disk_full
from .journal import WORK_DIR, Journal, item_digest
from .stage import Context, Stage


class SetupError(RunStopped):
    """A stage could not set up in a worker (a model that does not load, a bad endpoint): the
    run cannot go on, and no item is to blame."""


class StageHost:
    def __init__(self, stage: Stage, dataset: str | Path, stamp: str) -> None:
        self.stage, self.dataset, self.stamp = stage, Path(dataset), stamp
        self.journal = Journal(self.dataset, stage.name, stamp, stage.tables)
        self._ready = False

    def setup(self) -> "StageHost":
        if not self._ready:
            try:
                self.stage.setup()
            except Exception as e:
                raise SetupError(f"{self.stage.name}: setup failed: {type(e).__name__}: {e}") from None
            self._ready = True
        return self

    def teardown(self) -> None:
        if self._ready:
            self.stage.teardown()
            self._ready = False

    def run(self, item: Any) -> dict:
        self.setup()
        key = self.stage.key(item)
        scratch_root = self.dataset / WORK_DIR / "tmp"
        try:
            scratch_root.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f"{self.stage.name}-", dir=scratch_root))
        except OSError as e:
            raise_if_disk_full(e, scratch_root)
            raise
        digest = item_digest(item)
        try:
            try:
                out = _with_local_inputs(item, lambda it: self.stage.process(it, Context(self.dataset, scratch)))
            except RunStopped:
                raise
            except Exception as e:   # a stage bug must not take the run down: the rows say what happened (and a rerun retries)
                raise_if_disk_full(e, scratch)     # ...but a full disk is no item's fault: stop the run
                out = self.stage.error_output(item, f"internal error in {self.stage.name}: {type(e).__name__}: {e}")
                return self.journal.commit(key, out, digest, retry=True)
            # DiskFull from here stops the run (the item stays pending); meta "retry": a result the
            # stage wants tried again next run (an endpoint that did not answer)
            return self.journal.commit(key, out, digest, retry=bool(out.meta.get("retry")))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _remote_path(item) -> str | None:
    from ..media.fetch import is_remote
    cand = item.get("path") if isinstance(item, dict) else None
    return cand if isinstance(cand, str) and is_remote(cand) else None


def _with_local_inputs(item, fn):
    uri = _remote_path(item)
    if uri is None:
        return fn(item)
    from ..media.fetch import local_copy
    with local_copy(uri) as local:
        return fn({**item, "path": local, "uri": uri})
