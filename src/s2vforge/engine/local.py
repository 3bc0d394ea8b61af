"""The local engine: a stage's items in this process (workers=1) or on a spawn process pool.

Each pool process sets the stage up once (setup() loads its models once per worker) in the
pool initializer; results arrive as they finish. A worker that dies (OOM kill, a segfault in
native code) breaks the pool: the items that got no result and are not already committed run
again on a fresh pool of the same size; if that one breaks too, each remaining item runs alone,
so a crash costs only the item that caused it. A stage that cannot set up (SetupError) stops
the run. Ctrl-C stops the workers at once.
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

from .stage import Stage
from .faults import RunStopped
from .worker import SetupError, StageHost

_HOST: StageHost | None = None      # this pool process's set-up stage (one per process, any stage)
_SETUP_ERROR: str | None = None     # why it could not set up, raised for every item it is given
PR_SET_PDEATHSIG = 1                # linux/prctl.h


def _die_with_parent(parent_pid: int) -> None:
    """A pool worker must not outlive the command: on Linux the kernel kills it when its parent
    dies, even by SIGKILL; Ctrl-C goes to the parent alone, which stops the pool itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:      # the parent died before prctl took effect
        os._exit(1)


def _init_worker(stage: Stage, dataset: str, stamp: str, parent_pid: int) -> None:
    global _HOST, _SETUP_ERROR
    _die_with_parent(parent_pid)
    try:
        _HOST = StageHost(stage, dataset, stamp).setup()
    except SetupError as e:    # raised per item instead: an initializer error would only break the pool
        _SETUP_ERROR = str(e)


def _run_in_worker(item: Any) -> dict:
    if _SETUP_ERROR is not None:
        raise SetupError(_SETUP_ERROR)
    assert _HOST is not None, "pool worker used before its initializer ran"
    return _HOST.run(item)


def run_local(stage: Stage, items: Sequence[Any], dataset: str, stamp: str, workers: int,
              on_done: Callable[[Any, dict], None], on_crash: Callable[[Any, BaseException], dict],
              committed: Callable[[Any], dict | None] = lambda item: None) -> None:
    """Run every item; `committed(item)` gives the meta of an item already committed by a worker
    whose result was lost with a broken pool (it is not run again)."""
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

    def unfinished(left: list) -> list:
        rest = []
        for item in left:
            meta = committed(item)
            if meta is None:
                rest.append(item)
            else:
                on_done(item, meta)
        return rest

    left = unfinished(_pool_pass(stage, list(items), dataset, stamp, workers, on_done, on_crash))
    if left:   # one crash must not serialise the rest: a fresh pool of the same size
        left = unfinished(_pool_pass(stage, left, dataset, stamp, workers, on_done, on_crash))
    for item in left:   # broke again: each alone, so only the item that kills its worker is lost
        for it in unfinished(_pool_pass(stage, [item], dataset, stamp, 1, on_done, on_crash)):
            on_done(it, on_crash(it, BrokenProcessPool("worker process died while running this item")))


def _pool_pass(stage: Stage, items: list, dataset: str, stamp: str, workers: int,
               on_done: Callable[[Any, dict], None], on_crash: Callable[[Any, BaseException], dict]) -> list:
    """Run items on a pool; returns those that got no result because a worker died."""
    ctx = mp.get_context("spawn")   # workers load ONNX/TFLite models with threads: never fork a threaded parent
    left: list = []
    pool = ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx, initializer=_init_worker,
                               initargs=(stage, str(dataset), stamp, os.getpid()))
    try:
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
                except RunStopped:     # no item is to blame (setup failed, disk full): stop the run
                    raise
                except Exception as exc:   # the item could not even be sent or returned
                    result = on_crash(item, exc)
                on_done(item, result)
    except BaseException:      # Ctrl-C, a setup failure: stop now, do not drain the queue
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    return left


def _stop(pool: ProcessPoolExecutor, grace_s: float = 5.0) -> None:
    """Terminate every worker and wait until they are gone (killed after `grace_s`)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(grace_s)
        if proc.is_alive():
            proc.kill()
            proc.join(grace_s)
    pool.shutdown(wait=False, cancel_futures=True)
