"""Run one function over many items, in-process, on a spawn-based process pool, or on Ray.

The only scheduling the engines need: results arrive as they finish; a worker that dies
(OOM kill, a segfault in native code) is reported through `on_crash` so the caller can record
an error row and go on. Which engine runs is chosen by `engine` (None/"local" or an
engine.spec.EngineSpec); `stage` names the recipe's `resources:` entry the Ray engine uses.

Items that are dicts whose "path" is a remote fsspec URI are given to `fn` with "path"
replaced by a worker-local copy (media.fetch.local_copy) for the duration of the call; the
original item (with its URI) is what on_done/on_crash see.
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Sequence

def _is_ray(engine) -> bool:
    if engine is None or engine == "local":
        return False
    if engine == "ray":
        return True
    return getattr(engine, "kind", "local") == "ray"


def run_pool(fn: Callable[..., Any], items: Sequence[Any], args: tuple, workers: int,
             on_done: Callable[[Any, Any], None], on_crash: Callable[[Any, BaseException], Any], *,
             engine=None, stage: str = "") -> None:
    """Call fn(item, *args) for every item; on_done(item, result) as each finishes, or
    on_done(item, on_crash(item, exc)) when the worker died (after the engine's retries)."""
    if _has_remote_paths(items):
        fn, args = call_with_local_inputs, (fn, *args)
    if _is_ray(engine):
        from .ray_engine import run_ray
        from .spec import EngineSpec
        spec = engine if isinstance(engine, EngineSpec) else EngineSpec(kind="ray", workers=workers)
        run_ray(fn, list(items), args, spec, on_done=on_done, on_crash=on_crash, stage=stage or "default")
        return
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


def _remote_path(item) -> str | None:
    from ..media.fetch import is_remote
    cand = item.get("path") if isinstance(item, dict) else None
    return cand if is_remote(cand) else None


def _has_remote_paths(items: Sequence[Any]) -> bool:
    return any(_remote_path(it) for it in items)


def call_with_local_inputs(item, fn: Callable[..., Any], *args):
    """fn(item, *args) with a remote item["path"] streamed to a local temporary file first;
    item["uri"] keeps the URI so the stage can record where the bytes came from."""
    uri = _remote_path(item)
    if uri is None:
        return fn(item, *args)
    from ..media.fetch import local_copy
    with local_copy(uri) as local:
        return fn({**item, "path": local, "uri": uri}, *args)
