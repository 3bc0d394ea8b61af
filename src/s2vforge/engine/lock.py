"""One run per dataset at a time.

Two runs writing one dataset would overwrite each other's clips and sweep each other's
temporary files. `dataset_lock` takes an exclusive `flock` on DATASET/.work/lock for the whole
run; the kernel drops it when the process ends however it ends, so a killed run never leaves
a stale lock. The file holds who has it (pid, host, stage, since when) for the message the
second run prints.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from .faults import RunStopped

LOCK_NAME = "lock"


class DatasetBusy(RunStopped):
    """Another run holds the dataset."""


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        h = {}
    if not h:
        return "another s2vforge run"
    return (f"s2vforge {h.get('stage', '?')} (pid {h.get('pid', '?')} on {h.get('host', '?')}, "
            f"since {h.get('since', '?')})")


@contextmanager
def dataset_lock(dataset: Path, stage: str, work_dir: str = ".work"):
    """Hold DATASET's run lock; raise DatasetBusy naming the holder when another run has it."""
    d = Path(dataset) / work_dir
    d.mkdir(parents=True, exist_ok=True)
    path = d / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetBusy(f"{dataset} is in use by {_holder(path)}: wait for that run to finish or stop it, "
                              "then run this command again (two runs on one dataset would overwrite each "
                              "other's files)") from None
        info = {"stage": stage, "pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
