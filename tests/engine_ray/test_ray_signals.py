"""SIGTERM on `--engine ray` (a local Ray the command started): Ray's own processes and its
workers end with the command, and the same command afterwards finishes the work."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from s2vforge.corpus.synth import load_photo, moving_shot, write_video

from proctools import alive, descendants, wait_for_commit

pytest.importorskip("ray")


def test_sigterm_stops_ray_and_leaves_no_process(recipe, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, photo in enumerate(("astronaut", "coffee", "rocket", "chelsea", "motorcycle_left", "grace_hopper")):
        write_video(corpus / f"{i}.mp4", moving_shot(load_photo(photo), 3.0, 25.0, (320, 180), "pan"), 25.0,
                    preset="ultrafast")
    ds = tmp_path / "ds"
    cmd = [sys.executable, "-m", "s2vforge.cli", "curate", str(corpus), "--out", str(ds), "-r", str(recipe),
           "--engine", "ray", "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    wait_for_commit(ds, proc, timeout=300)
    tree = descendants(proc.pid)
    assert tree, "Ray started no process"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, proc.stderr.read()[-3000:]
    deadline = time.time() + 30
    while time.time() < deadline and any(alive(p) for p in tree):
        time.sleep(0.2)
    assert not [p for p in tree if alive(p)], "processes outlived the command"
    assert "run the same command again" in proc.stderr.read()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert pq.read_table(ds / "videos.parquet").num_rows == 6
