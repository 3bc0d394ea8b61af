"""Curation speed: curate wall time against a plain PyAV decode of the same videos.

Usage:
  python benchmarks/bench_curate.py [--corpus demo|720p|both] [--minutes 10] [--workers 2] [--json OUT]

For each corpus it measures, on the same files:
  decode_s   plain single-threaded PyAV decode of every frame (no conversion): the floor
  curate_s   `s2vforge curate --workers N` wall time into a fresh dataset (all embedded scorers)
  ratio      curate_s / decode_s
plus clips/s, source frames/s and the peak resident memory of the whole process tree
(sampled from /proc every 0.5 s). Corpora are built once under benchmarks/_work/.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work"


def plain_decode_seconds(paths: list[Path]) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for p in paths:
        with av.open(str(p)) as c:
            for _ in c.decode(video=0):
                n += 1
    return time.perf_counter() - t0, n


def _tree_rss_kb(root_pid: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st.split("PPid:")[1].split()[0])
        children.setdefault(ppid, []).append(int(d))
        if "VmRSS:" in st:
            rss[int(d)] = int(st.split("VmRSS:")[1].split()[0])
    total, stack = 0, [root_pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def run_curate(corpus: Path, out: Path, workers: int, recipe: str | None) -> tuple[float, int]:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "s2vforge.cli", "curate", str(corpus), "--out", str(out), "--workers", str(workers),
           "--quiet"]
    if recipe:
        cmd += ["--recipe", recipe]
    peak = 0
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            time.sleep(0.5)   # a full /proc scan costs CPU: sample twice a second

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    code = proc.wait()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    if code not in (0, 1):
        raise SystemExit(f"curate failed with exit code {code}")
    return wall, peak


def measure(name: str, corpus: Path, workers: int, recipe: str | None, repeats: int) -> dict:
    videos = sorted(p for p in corpus.iterdir() if p.suffix == ".mp4")
    decodes = [plain_decode_seconds(videos) for _ in range(repeats)]
    decode_s = statistics.median(d[0] for d in decodes)
    n_frames = decodes[0][1]
    runs = [run_curate(corpus, WORK / f"ds_{name}", workers, recipe) for _ in range(repeats)]
    curate_s = statistics.median(r[0] for r in runs)
    peak_mb = max(r[1] for r in runs) / 1024
    ds = WORK / f"ds_{name}"
    clips = pq.read_table(ds / "clips.parquet").to_pylist()
    run = json.loads((ds / "curate_run.json").read_text())
    timings: dict[str, float] = {}
    for m in (ds / ".work" / "curate").glob("*.json"):
        for k, v in json.loads(m.read_text()).get("timings", {}).items():
            timings[k] = timings.get(k, 0.0) + v
    res = {"corpus": name, "videos": len(videos), "source_frames": n_frames,
           "source_seconds": round(sum(c["duration_s"] for c in clips), 1), "clips": len(clips),
           "kept": sum(1 for c in clips if c["keep"]), "workers": workers, "repeats": repeats,
           "decode_s": round(decode_s, 2), "curate_s": round(curate_s, 2), "ratio": round(curate_s / decode_s, 2),
           "clips_per_s": round(len(clips) / curate_s, 2), "frames_per_s": round(n_frames / curate_s, 1),
           "decode_frames_per_s": round(n_frames / decode_s, 1), "peak_rss_mb": round(peak_mb),
           "cpu_seconds_by_phase": {k: round(v, 1) for k, v in sorted(timings.items())},
           "unavailable": sorted((run.get("summary") or {}).get("unavailable", {}))}
    print(json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=["demo", "720p", "both"], default="both")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--recipe", default=None)
    ap.add_argument("--json", dest="json_out", default=None)
    a = ap.parse_args()
    from s2vforge.corpus.synth import build_demo_corpus, build_synthetic_720p
    WORK.mkdir(parents=True, exist_ok=True)
    results = []
    if a.corpus in ("demo", "both"):
        demo = WORK / "demo_corpus"
        if not demo.exists():
            build_demo_corpus(demo)
        results.append(measure("demo", demo, a.workers, a.recipe, a.repeats))
    if a.corpus in ("720p", "both"):
        syn = WORK / f"synthetic_720p_{a.minutes:g}min"
        if not syn.exists():
            build_synthetic_720p(syn, minutes=a.minutes)
        results.append(measure("720p", syn, a.workers, a.recipe, a.repeats))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
