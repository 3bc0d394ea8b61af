"""The local engine: a stage's items in this process (workers=1) or on a spawn process pool.

Each pool process builds the stage's host once (setup() loads its models once per worker) in
the pool initializer; results arrive as they finish. A worker that dies (OOM kill, a segfault
in native code) breaks the pool: its unfinished items are reported through `on_crash`, one
by one after a retry on a fresh pool, so a crash costs only the item that caused it.
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

from .stage import Stage
from .worker import StageHost

_HOST: StageHost | None = None      # this pool process's set-up stage (one per process, any stage)


def _init_worker(stage: Stage, dataset: str, stamp: str) -> None:
    global _HOST
    _HOST = StageHost(stage, dataset, stamp).setup()


def _run_in_worker(item: Any) -> dict:
    assert _HOST is not None, "pool worker used before its initializer ran"
    return _HOST.run(item)


def run_local(stage: Stage, items: Sequence[Any], dataset: str, stamp: str, workers: int,
              on_done: Callable[[Any, dict], None], on_crash: Callable[[Any, BaseException], dict]) -> None:
    if not items:
        return
    if workers <= 1:
        host = StageHost(stage, dataset, stamp).setup()
        try:
            for item in items:
                on_done(item, host.run(item))
        finally:
            host.teardown()
        return
    left = _pool_pass(stage, list(items), dataset, stamp, workers, on_done, on_crash)
    for item in left:   # the pool broke under these: each alone in a fresh one-process pool
        rest = _pool_pass(stage, [item], dataset, stamp, 1, on_done, on_crash)
        for it in rest:
            on_done(it, on_crash(it, BrokenProcessPool("worker process died while running this item")))


def _pool_pass(stage: Stage, items: list, dataset: str, stamp: str, workers: int,
               on_done: Callable[[Any, dict], None], on_crash: Callable[[Any, BaseException], dict]) -> list:
    """Run items on a pool; returns those that got no result because a worker died."""
    ctx = mp.get_context("spawn")   # workers load ONNX/TFLite models with threads: never fork a threaded parent
    left: list = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(stage, str(dataset), stamp)) as pool:
        pending = {pool.submit(_run_in_worker, item): item for item in items}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                item = pending.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    left.append(item)
                    continue
                except Exception as exc:   # the item could not even be sent or returned
                    result = on_crash(item, exc)
                on_done(item, result)
    return left
