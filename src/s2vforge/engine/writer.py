"""The one atomic writer: every file a run leaves behind appears complete or not at all.

Everything is written to a temporary name beside its destination (same directory, so the final
`os.replace` is atomic on POSIX) and renamed when complete. Temporary names start with "." and
end in ".tmp", so `sweep_tmp` can remove what a killed run left behind.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from .faults import raise_if_disk_full


def tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) and rename tmp to path; nothing is left at either name when write fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        raise_if_disk_full(e, path)    # a full disk stops the run, naming the file
        raise


def write_bytes(path: Path, data: bytes) -> None:
    def put(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    atomic_write(path, put)


def write_json(path: Path, obj, *, indent: int | None = 2) -> None:
    write_bytes(path, json.dumps(obj, indent=indent, sort_keys=True, default=str).encode())


def write_parquet(table: pa.Table, path: Path) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def move_file(src: Path, path: Path) -> None:
    """Move a finished scratch file into place (copy first when it lives on another filesystem)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, path)
    except OSError as e:
        raise_if_disk_full(e, path)
        atomic_write(path, lambda tmp: shutil.copyfile(src, tmp))
        Path(src).unlink(missing_ok=True)


def replace_dir(build: Callable[[Path], None], dest: Path) -> None:
    """Build a folder with build(tmp_dir) and swap it in for `dest` as a whole (no stale files)."""
    dest = Path(dest)
    tmp = tmp_name(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = tmp_name(dest)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def sweep_tmp(directory: Path, recursive: bool = False) -> int:
    """Remove the temporary files a killed run left in `directory`; returns how many."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    n = 0
    for p in (directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp")):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n
