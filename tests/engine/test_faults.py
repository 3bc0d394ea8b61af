"""Faults that are not an item's fault: a second run on one dataset, damaged clip files, SIGTERM,
SIGKILL and a full disk. Each must leave the journal whole and a rerun must finish the work
with the tables an uninterrupted run gives."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from s2vforge.cli import run_curate
from s2vforge.engine import writer
from s2vforge.engine.lock import dataset_lock

from proctools import alive as _alive, descendants as _children, wait_for_commit as _wait_for_commit

TABLES = ("videos", "clips")


def _tables(ds: Path) -> dict:
    return {t: pq.read_table(ds / f"{t}.parquet").to_pylist() for t in TABLES}


def _clip_bytes(ds: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted((ds / "clips").glob("*.mp4"))}


@pytest.fixture(scope="module")
def clean(small_corpus, fast_recipe, tmp_path_factory) -> dict:
    """An uninterrupted run: the truth every faulted run must end up equal to."""
    ds = tmp_path_factory.mktemp("clean") / "ds"
    assert run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), 1, False, quiet=True) == 0
    return {"ds": ds, "tables": _tables(ds), "clips": _clip_bytes(ds)}


def _curate_cmd(corpus: Path, ds: Path, recipe: Path, workers: int = 2) -> list[str]:
    return [sys.executable, "-m", "s2vforge.cli", "curate", str(corpus), "--out", str(ds), "--recipe", str(recipe),
            "--workers", str(workers), "--quiet"]


# ---------------------------------------------------------------- one run per dataset

def test_second_run_on_a_held_dataset_refuses_and_names_the_holder(small_corpus, fast_recipe, tmp_path, capsys):
    ds = tmp_path / "ds"
    with dataset_lock(ds, "curate"):
        code = run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), 1, True, quiet=True)
    assert code == 2
    out = json.loads(capsys.readouterr().out)
    assert f"pid {os.getpid()}" in out["error"] and "in use by s2vforge curate" in out["error"]
    assert not (ds / "videos.parquet").exists() and not (ds / "clips").exists()
    # the lock is gone with its holder: the same command now runs
    assert run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), 1, False, quiet=True) == 0


def test_two_concurrent_runs_one_refuses_the_other_is_intact(small_corpus, fast_recipe, clean, tmp_path):
    ds = tmp_path / "ds"
    first = subprocess.Popen(_curate_cmd(small_corpus["dir"], ds, fast_recipe, 1), stderr=subprocess.PIPE, text=True)
    _wait_for_commit(ds, first)
    second = subprocess.run(_curate_cmd(small_corpus["dir"], ds, fast_recipe, 1), capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid}" in second.stderr and "in use by" in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert _tables(ds) == clean["tables"] and _clip_bytes(ds) == clean["clips"]


# ---------------------------------------------------------------- damaged files are redone

def test_rerun_repairs_missing_truncated_and_corrupt_clips(small_corpus, fast_recipe, clean, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(clean["ds"], ds)
    names = sorted(clean["clips"])
    assert len(names) >= 3
    (ds / "clips" / names[0]).unlink()                                          # deleted
    p1 = ds / "clips" / names[1]
    p1.write_bytes(p1.read_bytes()[: p1.stat().st_size // 2])                   # truncated
    p2 = ds / "clips" / names[2]
    p2.write_bytes(bytes(len(p2.read_bytes())))                                 # same size, all zeros
    code = run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), 1, True, quiet=True)
    assert code == 0
    summary = json.loads((ds / "curate_run.json").read_text())["summary"]
    why = " | ".join(summary["repaired"].values())
    assert f"clips/{names[0]} is missing" in why
    assert f"clips/{names[1]} has" in why and "when written" in why
    assert f"clips/{names[2]}: does not decode" in why
    assert _tables(ds) == clean["tables"] and _clip_bytes(ds) == clean["clips"]
    # and a rerun of a whole dataset redoes nothing
    assert run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), 1, False, quiet=True) == 0
    assert json.loads((ds / "curate_run.json").read_text())["summary"]["repaired"] == {}


# ---------------------------------------------------------------- signals: no surviving worker

@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_signal_leaves_no_worker_and_rerun_finishes(small_corpus, fast_recipe, clean, tmp_path, sig, code):
    ds = tmp_path / "ds"
    proc = subprocess.Popen(_curate_cmd(small_corpus["dir"], ds, fast_recipe, 2), stderr=subprocess.PIPE, text=True)
    _wait_for_commit(ds, proc)
    workers = _children(proc.pid)
    assert workers, "the pool has no worker processes"
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == code, proc.stderr.read()
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "worker processes outlived the command"
    if sig != signal.SIGKILL:
        assert "run the same command again" in proc.stderr.read()
    assert run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), 2, False, quiet=True) == 0
    assert _tables(ds) == clean["tables"] and _clip_bytes(ds) == clean["clips"]


# ---------------------------------------------------------------- a full disk stops the run

def test_disk_full_stops_with_one_line_and_rerun_completes(small_corpus, fast_recipe, clean, tmp_path, monkeypatch,
                                                           capsys):
    """ENOSPC while moving clips into place (in-process, so the failure is injected exactly)."""
    ds = tmp_path / "ds"
    real_move, calls = writer.move_file, []

    def move_file(src, path):
        calls.append(path)
        if len(calls) > 2:      # what a copy onto a full disk raises: a write error without a file name
            def write(tmp):
                raise OSError(errno.ENOSPC, "No space left on device")
            writer.atomic_write(path, write)
        real_move(src, path)

    monkeypatch.setattr(writer, "move_file", move_file)
    code = run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), 1, False, quiet=True)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "no space left on device writing" in err and str(calls[-1]) in err.replace("\n", "") and "free there" in err
    monkeypatch.setattr(writer, "move_file", real_move)
    assert run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), 1, False, quiet=True) == 0
    assert _tables(ds) == clean["tables"] and _clip_bytes(ds) == clean["clips"]


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


@pytest.mark.parametrize("full", ["clips", "dataset"])
def test_real_full_filesystem(small_corpus, fast_recipe, clean, tmp_path, full):
    """A real small filesystem (tmpfs) under the clips folder, or under the whole dataset."""
    ds = tmp_path / "ds"
    mnt = ds / "clips" if full == "clips" else ds
    if not _mount_tmpfs(mnt, "700k"):
        pytest.xfail("mounting a tmpfs needs root; test_disk_full_stops_with_one_line_and_rerun_completes covers it")
    try:
        r = subprocess.run(_curate_cmd(small_corpus["dir"], ds, fast_recipe, 2), capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "no space left on device writing " + str(ds) in lines[0], r.stderr
        assert "free there" in lines[0] and "Traceback" not in r.stderr
        if full == "clips":      # the journal lives outside the full folder: it must be whole
            for m in (ds / ".work" / "curate").glob("*.json"):
                json.loads(m.read_text())
        saved = tmp_path / "saved"
        shutil.copytree(ds, saved, symlinks=True)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    # "free space": the same dataset on a disk with room (what the tmpfs held is copied back)
    shutil.rmtree(ds, ignore_errors=True)
    shutil.copytree(saved, ds)
    r = subprocess.run(_curate_cmd(small_corpus["dir"], ds, fast_recipe, 2), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert _tables(ds) == clean["tables"] and _clip_bytes(ds) == clean["clips"]
