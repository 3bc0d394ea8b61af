"""Time of write_report (report.html + report_pages/) on a synthetic dataset of N clips.

    python benchmarks/bench_report.py                         # 100,000 clips, 200 a page, 5 runs
    python benchmarks/bench_report.py --clips 1e4 1e5 --page-size 200 --repeats 5 --json out.json

The dataset (s2vforge/report/synthetic.py) has the real clips.parquet / videos.parquet schemas
of the default recipe, keep/rejects decided by the real filters, 8% too-short scenes, one input
in 50 an error or duplicate, and an empty placeholder file for every clip and thumbnail (the
report lists both folders and links the files, it never reads them). Generation is not timed.
Each run rewrites the same folder (as a rerun of `s2vforge report` does); the median is reported,
with the process CPU seconds beside the wall seconds (less sensitive to a shared machine).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from s2vforge.report.html import write_report
from s2vforge.report.synthetic import synthetic_dataset


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.html"))


def bench(n: int, page_size: int, repeats: int, root: Path) -> dict:
    ds = root / f"ds_{n}"
    t0 = time.perf_counter()
    synthetic_dataset(ds, n, seed=0)
    gen_s = time.perf_counter() - t0
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        write_report(ds, page_size=page_size)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    pages = sorted((ds / "report_pages").glob("page-*.html"))
    return {"clips": n, "page_size": page_size, "repeats": repeats, "generate_s": round(gen_s, 2),
            "median_s": round(statistics.median(wall), 3), "min_s": round(min(wall), 3),
            "median_cpu_s": round(statistics.median(cpu), 3), "pages": len(pages),
            "report_html_kb": round((ds / "report.html").stat().st_size / 1024, 1),
            "pages_mb": round(_size(ds / "report_pages") / 2**20, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", type=float, default=[1e5])
    ap.add_argument("--page-size", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        for n in args.clips:
            r = bench(int(n), args.page_size, args.repeats, Path(tmp))
            print(json.dumps(r), flush=True)
            results.append(r)
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "results": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
