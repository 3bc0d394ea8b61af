"""Process-tree helpers for the tests that check no worker outlives a command (Linux /proc)."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path


def descendants(pid: int) -> set[int]:
    """Every live descendant of pid (from /proc)."""
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_commit(ds: Path, proc: subprocess.Popen, stage: str = "curate", timeout: float = 240) -> None:
    """Until one item of `stage` is committed (a journal marker with a stamp), the run still going."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        for m in (ds / ".work" / stage).glob("*.json"):
            try:
                if json.loads(m.read_text()).get("stamp"):
                    return
            except (OSError, ValueError):
                pass
        time.sleep(0.05)
    raise AssertionError(f"no {stage} item committed in {timeout:.0f} s")
