"""Speed and recall of the identity bank (s2vforge.stages.pairs.bank.IdentityBank) on synthetic identities.

    python benchmarks/bench_bank.py                                   # 1e4 and 1e6, dim 128, all kinds
    python benchmarks/bench_bank.py --sizes 1e4 1e5 --dim 128 512 --queries 1000 --json out.json
    python benchmarks/bench_bank.py --kinds flat ivf --threads 2

Data (tests/pairs_bank/synth.py): identities are Gaussian clusters on the unit sphere (Zipf-like
cluster sizes, mean 20 appearances, two appearances of one identity at cosine ~0.65, like
face/instance embeddings), not uniform noise. Queries are *fresh* appearances of bank
identities, held out from the bank and from the nprobe/efSearch tuning (which uses bank members).

Everything goes through the public IdentityBank API, so id bookkeeping is included:
- build_s (wall) / build_cpu_s (process CPU, less sensitive to a shared box): create + add all n vectors in one call (for ivf/hnsw: train + add + tune, the path a
  bank takes when it crosses exact_max); add_vps = n / build_s
- append_vps: adding min(n/10, 1e4) further vectors to the built bank (no retrain)
- qps: 1000 queries at k=10 in one batch (median of --repeats; flat at >= 1e6: one run); lat_ms: one query at a time, median
- recall@10: approximate top-10 ids vs the flat (exact) bank's, on the held-out queries
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from pairs_bank.synth import clustered_vectors, fresh_queries  # noqa: E402

from s2vforge.recipes import load_recipe  # noqa: E402
from s2vforge.stages.pairs.bank import IdentityBank, recall_at_k, set_faiss_threads  # noqa: E402

BANK = load_recipe(None)["pairs"]["bank"]      # the default recipe's bank options (tuning targets)


def _ids(n: int, prefix: str = "s") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def bench_kind(kind: str, x, q, extra, repeats: int, hnsw_m: int) -> tuple[dict, list[list[str]]]:
    n, dim = x.shape
    ids = _ids(n)
    builds = []
    for rep in range(repeats if n <= 100_000 else 1):
        bank = IdentityBank.create(Path(tempfile.mkdtemp()) / kind, dim, embedder="synthetic",
                                   **{**BANK, "index": kind, "exact_max": 0 if kind != "flat" else n, "hnsw_m": hnsw_m})
        t, c = time.perf_counter(), time.process_time()
        bank.add(ids, x)
        builds.append((time.perf_counter() - t, time.process_time() - c))
        if rep < (repeats if n <= 100_000 else 1) - 1:
            del bank
            gc.collect()
    build_s = statistics.median(b[0] for b in builds)
    build_cpu_s = statistics.median(b[1] for b in builds)
    qtimes = []
    for _ in range(1 if (kind == "flat" and n >= 1_000_000) else repeats):
        t = time.perf_counter()
        _, got = bank.search(q, 10)
        qtimes.append(time.perf_counter() - t)
    lat = []
    for i in range(min(100, len(q))):
        t = time.perf_counter()
        bank.search(q[i:i + 1], 10)
        lat.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as td:
        bank.path = Path(td) / kind
        t = time.perf_counter()
        bank.save()
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        IdentityBank.open(bank.path)
        open_s = time.perf_counter() - t
        disk_mb = sum(p.stat().st_size for p in bank.path.iterdir()) / 2**20
    t = time.perf_counter()
    bank.add(_ids(len(extra), "x"), extra)
    append_s = time.perf_counter() - t
    m = bank.manifest
    row = {"kind": kind, "index_kind": m["index_kind"], "n": n, "dim": dim,
           "build_s": round(build_s, 3), "build_cpu_s": round(build_cpu_s, 3), "add_vps": round(n / build_s),
           "append_vps": round(len(extra) / append_s), "qps": round(len(q) / statistics.median(qtimes)),
           "lat_ms": round(1000 * statistics.median(lat), 3), "loadavg_1m": round(os.getloadavg()[0], 1), "save_s": round(save_s, 2),
           "open_s": round(open_s, 2), "disk_mb": round(disk_mb, 1), "search": m.get("search", {})}
    del bank
    gc.collect()
    return row, got


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e6])
    ap.add_argument("--dim", nargs="+", type=int, default=[128])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw"], choices=["flat", "ivf", "hnsw"])
    ap.add_argument("--repeats", type=int, default=3, help="median over repeats (builds repeat only up to 1e5)")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="FAISS threads (default: all cores)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    set_faiss_threads(args.threads)
    import faiss

    env = {"nproc": os.cpu_count(), "faiss_threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__,
           "cpu": platform.processor() or platform.machine(), "python": platform.python_version()}
    print(json.dumps(env))
    rows = []
    for dim in args.dim:
        for size in args.sizes:
            n = int(size)
            x, labels, centres = clustered_vectors(n, dim, seed=0)
            q = fresh_queries(centres, labels, args.queries, seed=1)
            extra = fresh_queries(centres, labels, max(1, min(n // 10, 10_000)), seed=2)
            truth = None
            for kind in (["flat"] + [k for k in args.kinds if k != "flat"]):
                row, got = bench_kind(kind, x, q, extra, args.repeats, args.hnsw_m)
                if kind == "flat":
                    truth = got
                ids_to_rows = lambda res: np.array([[int(i[1:]) for i in r] + [-1] * (10 - len(r)) for r in res])  # noqa: E731
                row["recall_at_10"] = round(recall_at_k(ids_to_rows(got), ids_to_rows(truth)), 4)
                if kind in args.kinds:
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            del x, q, extra
            gc.collect()
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
