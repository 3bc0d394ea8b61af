"""Faults of the machine, not of an item: they stop the run with one line instead of error rows.

A full disk is not a bad video: turning ENOSPC into an `error` row (or a `write_failed` clip)
would record a lie that a rerun trusts. So the writer, the stages and the engines raise
`DiskFull` (a `RunStopped`), the driver writes no tables, the journal keeps only what was
committed whole, and the command prints where it ran out and how much is free; the same
command after freeing space finishes the run.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class RunStopped(RuntimeError):
    """The run cannot go on and no item is to blame (a stage that cannot set up, a full disk)."""


class DiskFull(RunStopped):
    """No space (or quota) left where the run writes."""

    def __init__(self, path: str, free_bytes: int | None = None) -> None:
        self.path, self.free_bytes = str(path), free_bytes
        free = "unknown" if free_bytes is None else human_bytes(free_bytes)
        super().__init__(f"no space left on device writing {self.path} ({free} free there): "
                         "free some space and run the same command again to finish")

    def __reduce__(self):     # crosses process boundaries (pool, Ray) intact
        return (DiskFull, (self.path, self.free_bytes))


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def free_bytes_at(path: str | os.PathLike) -> int | None:
    """Free bytes on the filesystem holding `path` (or its nearest existing parent)."""
    p = Path(path).absolute()
    for cand in (p, *p.parents):
        if cand.exists():
            try:
                return shutil.disk_usage(cand).free
            except OSError:
                return None
    return None


def disk_full_in(exc: BaseException | None) -> OSError | None:
    """The ENOSPC/EDQUOT error in an exception or its causes (PyAV's errors are OSErrors too)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def raise_if_disk_full(exc: BaseException, path: str | os.PathLike | None = None) -> None:
    """Re-raise a disk-full error as DiskFull naming the file (the error's own, else `path`)."""
    if isinstance(exc, DiskFull):
        raise exc
    full = disk_full_in(exc)
    if full is None:
        return
    where = full.filename or path or "."
    raise DiskFull(os.fsdecode(where), free_bytes_at(os.fsdecode(where))) from exc
