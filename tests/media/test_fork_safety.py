"""A forked child (a DataLoader worker) converts frames after the parent did: it must not hang
on the parent's swscale context (media/decode.py gives the child its own)."""
from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import os, sys, time
import av, numpy as np
from s2vforge.media import decode
f = av.VideoFrame.from_ndarray(np.zeros((270, 480, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
decode.frame_to_rgb(f, (320, 180), 0)          # the parent's context exists, with its threads
pid = os.fork()
if pid == 0:
    out = decode.frame_to_rgb(f, (320, 180), 0)
    os._exit(0 if out.shape == (180, 320, 3) else 3)
t0 = time.time()
while time.time() - t0 < 20:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(pid, 9)
sys.exit(9)
"""


def test_a_forked_child_converts_frames():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"child exit {r.returncode} (9 = hung): {r.stderr[-2000:]}"
