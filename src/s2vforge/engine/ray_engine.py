"""The Ray engine: a stage's items through Ray Data, results streamed back as they finish.

It holds no stage logic and imports no stage. Items become rows of a Ray Dataset ({"i": index,
"payload": the item, serialised in memory}); one `map_batches` runs them through a
`worker.StageHost` (the stage set up, then process + commit per item):

- CPU stages (`actors: 0` in the recipe's resources): stateless Ray tasks, `num_cpus` each,
  the stage set up per task;
- model stages (`actors: N`): a pool of N long-lived actors (`_StageActor`), each with
  `num_cpus`/`num_gpus` (fractions allowed) and `batch_size` items per call; each actor runs
  the stage's setup() once in its constructor.

The host commits each item's Output in the worker (the one writer, as with the local pool),
so the driver only calls on_done(item, meta) per finished row. A stage exception becomes the
stage's error rows inside the host; a worker process that dies is retried by Ray (task
`max_retries`, actor `max_restarts`/`max_task_retries`); blocks that still fail are skipped
(`max_errored_blocks = -1`) and their items run once more one per block, so a crash costs only
the item that caused it; an item that still gets no result goes to on_crash as WorkerCrashed.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from contextlib import contextmanager
from typing import Any, Callable, Sequence

import numpy as np

from .spec import EngineError, EngineSpec

RAY_MISSING = "the Ray engine needs Ray: pip install 's2vforge[ray]'"
MAX_BLOCKS = 4096        # first pass: one item per block up to this many blocks


class WorkerCrashed(RuntimeError):
    """The worker running an item died (and kept dying on retry)."""


class StageError(RuntimeError):
    """An exception escaped the stage function in a Ray worker (message carries its repr)."""


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise EngineError(f"{RAY_MISSING} ({e})") from None
    return ray


def ensure_ray(spec: EngineSpec):
    """Connect to (or start) Ray once per process: address None starts a local Ray of
    spec.workers CPUs with the same interpreter (so workers import this s2vforge)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    with _keep_sigterm_handler():
        _init(ray, spec, quiet)
    return ray


@contextmanager
def _keep_sigterm_handler():
    """ray.init replaces SIGTERM's handler with its own sys.exit(15); the command's (clikit:
    stop the run like Ctrl-C, exit 143) must stay."""
    try:
        old = signal.getsignal(signal.SIGTERM)
    except ValueError:
        old = None
    try:
        yield
    finally:
        if old is not None:
            try:
                signal.signal(signal.SIGTERM, old)
            except ValueError:      # not the main thread
                pass


def _init(ray, spec: EngineSpec, quiet: dict) -> None:
    if spec.address:
        try:
            ray.init(address=spec.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise EngineError(f"cannot connect to Ray at {spec.address!r}: {e} (start one with `ray start --head`)") from None
    else:
        # address="local": a fresh Ray for this run even if a cluster already runs on this machine
        ray.init(address="local", num_cpus=spec.workers, include_dashboard=False, **quiet)


def _dumps(obj) -> bytes:
    from ray import cloudpickle   # in-memory transport between driver and workers only, never on disk
    return cloudpickle.dumps(obj)


def _loads(data: bytes):
    from ray import cloudpickle
    return cloudpickle.loads(data)


def _apply(host, batch: dict, stopped: BaseException | None = None) -> dict:
    """Run the host on each item of a batch; anything escaping it becomes an 'error' result.
    A RunStopped (the stage could not set up, the disk is full) is returned as itself and
    answers every later item of the batch: the driver stops the run on it."""
    from .faults import RunStopped
    out_i, out_ok, out_res = [], [], []
    for i, payload in zip(batch["i"], batch["payload"]):
        if stopped is not None:
            out_i.append(int(i))
            out_ok.append(False)
            out_res.append(_dumps(stopped))
            continue
        item = _loads(payload)
        try:
            res, ok = host.run(item), True
        except RunStopped as e:
            stopped = e
            res, ok = e, False
        except Exception as e:   # same contract as the local pool: on_crash decides the row
            res, ok = f"{type(e).__name__}: {e}", False
        out_i.append(int(i))
        out_ok.append(ok)
        out_res.append(_dumps(res))
    return {"i": np.asarray(out_i, dtype=np.int64), "ok": np.asarray(out_ok, dtype=bool),
            "result": np.asarray(out_res, dtype=object)}


def _host(stage_blob: bytes, dataset: str, stamp: str):
    from .worker import StageHost
    return StageHost(_loads(stage_blob), dataset, stamp).setup()


def _apply_task(batch: dict, stage_blob: bytes, dataset: str, stamp: str) -> dict:
    from .worker import SetupError
    try:
        host = _host(stage_blob, dataset, stamp)
    except SetupError as e:
        return _apply(None, batch, e)
    try:
        return _apply(host, batch)
    finally:
        host.teardown()


class _StageActor:
    """One long-lived worker of a model stage: the stage's setup() runs once, here."""

    def __init__(self, stage_blob: bytes, dataset: str, stamp: str) -> None:
        from .worker import SetupError
        self.host, self.setup_error = None, None
        try:
            self.host = _host(stage_blob, dataset, stamp)
        except SetupError as e:     # a dead actor would only be restarted: say why instead
            self.setup_error = e

    def __call__(self, batch: dict) -> dict:
        return _apply(self.host, batch, self.setup_error)


def _dataset(ray, items_idx: Sequence[int], items: Sequence[Any], n_blocks: int):
    rows = [{"i": int(i), "payload": _dumps(items[i])} for i in items_idx]
    return ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), n_blocks)))


def _mapped(ds, args: tuple, res: dict):
    import warnings
    with warnings.catch_warnings():   # Ray 2.60 flags retry options passed as ray_remote_args; they are still honoured
        warnings.simplefilter("ignore")
        return _map_batches(ds, args, res)


def _map_batches(ds, args: tuple, res: dict):
    common = dict(batch_size=res["batch_size"], batch_format="numpy", num_cpus=float(res["num_cpus"]),
                  zero_copy_batch=False)
    if float(res.get("num_gpus") or 0) > 0:
        common["num_gpus"] = float(res["num_gpus"])
    if res.get("memory"):
        common["memory"] = float(res["memory"])
    if res["actors"] > 0:
        return ds.map_batches(_StageActor, fn_constructor_args=args, concurrency=res["actors"],
                              max_restarts=-1, max_task_retries=res["max_retries"], **common)
    return ds.map_batches(_apply_task, fn_args=args, max_retries=res["max_retries"],
                          retry_exceptions=False, **common)


class _QuietData:
    """Ray Data's progress bars and plan logs off for the run (ours stay on), restored after."""

    def __enter__(self):
        from ray.data import DataContext
        self.ctx = DataContext.get_current()
        self.saved = {k: getattr(self.ctx, k) for k in ("enable_progress_bars", "print_on_execution_start",
                                                         "max_errored_blocks", "verbose_stats_logs")}
        self.ctx.enable_progress_bars = False
        self.ctx.print_on_execution_start = False
        self.ctx.verbose_stats_logs = False
        self.ctx.max_errored_blocks = -1          # a dead item must not end the run (see module doc)
        self.logger = logging.getLogger("ray.data")
        self.level = self.logger.level
        self.logger.setLevel(logging.CRITICAL)   # skipped blocks are reported through on_crash instead
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            setattr(self.ctx, k, v)
        self.logger.setLevel(self.level)
        return False


def run_ray(stage, items: Sequence[Any], dataset: str, stamp: str, spec: EngineSpec,
            on_done: Callable[[Any, Any], None], on_crash: Callable[[Any, BaseException], Any]) -> dict:
    """Run every item through the stage on Ray (see module doc); returns run stats."""
    stats = {"stage": stage.name, "n_items": len(items), "n_crashed": 0, "n_second_pass": 0, "ray_s": 0.0}
    if not items:
        return stats
    from .faults import RunStopped
    ray = ensure_ray(spec)
    res = spec.stage_resources(stage.name, stage.resources)
    args = (_dumps(stage), str(dataset), stamp)
    t0 = time.perf_counter()
    seen: set[int] = set()

    def drain(ds) -> None:
        for row in ds.iter_rows():
            i = int(row["i"])
            if i in seen:
                continue
            seen.add(i)
            result = _loads(row["result"])
            if not row["ok"] and isinstance(result, RunStopped):
                raise result
            if not row["ok"]:
                result = on_crash(items[i], StageError(result))
            on_done(items[i], result)

    with _QuietData():
        drain(_mapped(_dataset(ray, range(len(items)), items, MAX_BLOCKS), args, res))
        missing = [i for i in range(len(items)) if i not in seen]
        if missing:   # isolate: every left-over item alone in its own task (no actor to share a death with)
            stats["n_second_pass"] = len(missing)
            drain(_mapped(_dataset(ray, missing, items, len(missing)), args, {**res, "batch_size": 1, "actors": 0}))
    for i in range(len(items)):
        if i not in seen:
            stats["n_crashed"] += 1
            on_done(items[i], on_crash(items[i], WorkerCrashed(
                f"Ray worker died {res['max_retries'] + 1} times on this item (pid {os.getpid()} driver)")))
    stats["ray_s"] = round(time.perf_counter() - t0, 3)
    return stats
