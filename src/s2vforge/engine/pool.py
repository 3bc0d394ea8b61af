"""Run one function over many items, in-process or on a spawn-based process pool.

The only scheduling the local engine needs: results arrive as they finish; a worker that dies
(OOM kill, a segfault in native code) is reported through `on_crash` so the caller can record
an error row and go on.
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Sequence


def run_pool(fn: Callable[..., Any], items: Sequence[Any], args: tuple, workers: int,
             on_done: Callable[[Any, Any], None], on_crash: Callable[[Any, BaseException], Any]) -> None:
    """Call fn(item, *args) for every item; on_done(item, result) as each finishes, or
    on_done(item, on_crash(item, exc)) when the worker died."""
    if workers <= 1:
        for item in items:
            on_done(item, fn(item, *args))
        return
    if not items:
        return
    ctx = mp.get_context("spawn")   # workers load ONNX/TFLite models with threads: never fork a threaded parent
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending = {pool.submit(fn, item, *args): item for item in items}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                item = pending.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:
                    result = on_crash(item, exc)
                on_done(item, result)
