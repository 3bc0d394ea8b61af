"""Inlier distribution of verify_geometric on same vs different composites (justifies
pairs.verify.geometric.min_inliers) and seconds per verification. Not a test: run it by hand.

    python tests/pairs_verify/measure_geometric.py [N_PER_OBJECT] [--hard]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from verify_media import backgrounds, composite, objects  # noqa: E402

from s2vforge.recipes import load_recipe  # noqa: E402
from s2vforge.stages.pairs.verify import verify_geometric  # noqa: E402

GEO = load_recipe(None)["pairs"]["verify"]["geometric"]


def main(per_object: int = 8, hard: bool = False) -> None:
    rng = np.random.default_rng(1234)
    objs, bgs = objects(), list(backgrounds().values())
    names = list(objs)
    cv2.setNumThreads(1)    # one verification per core, as the pool runs them
    same, diff, secs, cpu = [], [], [], []
    for i, name in enumerate(names):
        for k in range(per_object):
            bg = bgs[(i + k) % len(bgs)]
            tgt, p = composite(objs[name], bg, rng, hard=hard)
            t0, c0 = time.perf_counter(), time.process_time()
            v = verify_geometric(objs[name], tgt, **GEO)
            secs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            same.append((v.score or 0, name, p))
            other = names[(i + 1 + k % (len(names) - 1)) % len(names)]
            t0, c0 = time.perf_counter(), time.process_time()
            v = verify_geometric(objs[other], tgt, **GEO)
            secs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            diff.append((v.score or 0, f"{other}->{name}", p))
    s = np.array([x[0] for x in same])
    d = np.array([x[0] for x in diff])
    print(f"same  n={len(s)} min={s.min():.0f} p5={np.percentile(s, 5):.0f} median={np.median(s):.0f} max={s.max():.0f}")
    print(f"diff  n={len(d)} min={d.min():.0f} p95={np.percentile(d, 95):.0f} median={np.median(d):.0f} max={d.max():.0f}")
    print("lowest same:", sorted(same, key=lambda x: x[0])[:5])
    print("highest diff:", sorted(diff, key=lambda x: -x[0])[:5])
    for thr in (6, 8, 10, 12, 15, 20):
        tp, fp = int((s >= thr).sum()), int((d >= thr).sum())
        print(f"min_inliers={thr}: recall={tp / len(s):.3f} false_accept={fp / len(d):.3f}")
    secs, cpu = np.array(secs), np.array(cpu)
    print(f"wall s/verification: mean={secs.mean():.3f} median={np.median(secs):.3f} max={secs.max():.3f}")
    print(f"cpu  s/verification: mean={cpu.mean():.3f} median={np.median(cpu):.3f} max={cpu.max():.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8, hard="--hard" in sys.argv)
