"""Engine overhead: `s2vforge curate` on the demo corpus with --engine local vs --engine ray.

Usage:
  python benchmarks/bench_engines.py [--workers 2] [--repeats 3] [--recipe NAME|FILE] [--warm] [--json OUT]

Each run is the real CLI in a fresh process writing a fresh dataset, timed from process start
to exit (what a user waits for):
  local      --engine local --workers N       (spawn process pool)
  ray_cold   --engine ray --workers N         (the CLI starts a local Ray of N CPUs, then stops it)
  ray_warm   --engine ray --address HOST:PORT (with --warm: joins a `ray start --head --num-cpus N`
                                               started, untimed, before the run, as on a standing cluster)
Reported: median wall seconds of `--repeats` runs, ratio to local, clips and clips/s per CPU core,
and the columns of videos.parquet/clips.parquet that differ from the first local run.
The corpus is built once under benchmarks/_work/demo_corpus.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work"


def demo_corpus() -> Path:
    d = WORK / "demo_corpus"
    if not (d / "ground_truth.json").exists():
        from s2vforge.corpus.synth import build_demo_corpus
        build_demo_corpus(d)
    return d


def ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


HEAD_ADDRESS = "127.0.0.1:6391"


def start_head(workers: int) -> subprocess.Popen:
    """`ray start --head --block` on a private port; returns once the cluster answers."""
    # RAY_AUTH_MODE=disabled: Ray 2.60's token auth would need a token file shared with the CLI run
    os.environ["RAY_AUTH_MODE"] = "disabled"
    head = subprocess.Popen([ray_bin(), "start", "--head", "--block", "--port=6391", f"--num-cpus={workers}",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(120):
        if subprocess.run([ray_bin(), "status", f"--address={HEAD_ADDRESS}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            return head
        time.sleep(1)
    head.terminate()
    raise RuntimeError("ray start --head did not come up in 120 s")


def curate_once(corpus: Path, out: Path, workers: int, recipe: str | None, engine: str, address: str | None) -> float:
    cmd = [sys.executable, "-m", "s2vforge.cli", "curate", str(corpus), "--out", str(out), "--workers", str(workers),
           "--engine", engine, "--quiet"]
    if recipe:
        cmd += ["--recipe", recipe]
    if address:
        cmd += ["--address", address]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall


def differing_columns(a: Path, b: Path) -> list[str]:
    """Columns of videos/clips.parquet that differ between two datasets (score_brisque differs
    even between two local runs: the brisque package is not bit-reproducible)."""
    out = []
    for t in ("videos.parquet", "clips.parquet"):
        ta, tb = pq.read_table(a / t), pq.read_table(b / t)
        if ta.num_rows != tb.num_rows or ta.column_names != tb.column_names:
            out.append(f"{t}:shape")
            continue
        out += [f"{t}:{c}" for c in ta.column_names if not ta.column(c).equals(tb.column(c))]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--recipe", default=None)
    ap.add_argument("--warm", action="store_true", help="also time --address auto against a running Ray")
    ap.add_argument("--json", default=None, help="write the results here as JSON")
    args = ap.parse_args()
    corpus = demo_corpus()
    modes = [("local", "local", None), ("ray_cold", "ray", None)]
    if args.warm:
        modes.append(("ray_warm", "ray", HEAD_ADDRESS))
    walls: dict[str, list[float]] = {m: [] for m, _, _ in modes}
    diffs: dict[str, set] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench_engines_"))
    ref = None
    try:
        for rep in range(args.repeats):            # interleaved, so load drift hits every engine alike
            for mode, engine, address in modes:
                out = tmp / f"{mode}-{rep}"
                head = start_head(args.workers) if address else None   # a standing cluster, started untimed
                try:
                    walls[mode].append(curate_once(corpus, out, args.workers, args.recipe, engine, address))
                finally:
                    if head is not None:    # only the head this script started (never `ray stop`: other Rays may run here)
                        head.terminate()
                        head.wait(timeout=60)
                if ref is None:
                    ref = out
                else:
                    diffs.setdefault(mode, set()).update(differing_columns(ref, out))
                    if out != ref:
                        shutil.rmtree(out)
                print(f"{mode:9s} run {rep + 1}: {walls[mode][-1]:.2f} s", file=sys.stderr)
        clips = pq.read_table(ref / "clips.parquet")
        n_clips, n_videos = clips.num_rows, pq.read_table(ref / "videos.parquet").num_rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {m: statistics.median(w) for m, w in walls.items()}
    result = {
        "corpus": str(corpus), "n_videos": n_videos, "n_clips": n_clips, "workers": args.workers,
        "recipe": args.recipe or "openhumanvid (default)", "repeats": args.repeats, "cpu_count": os.cpu_count(),
        "wall_s": {m: [round(x, 2) for x in w] for m, w in walls.items()},
        "median_s": {m: round(v, 2) for m, v in med.items()},
        "ratio_to_local": {m: round(v / med["local"], 3) for m, v in med.items()},
        "clips_per_s_per_core": {m: round(n_clips / v / args.workers, 4) for m, v in med.items()},
        "columns_differing_from_first_local_run": {m: sorted(d) for m, d in diffs.items()},
        "command": " ".join([Path(sys.executable).name, "benchmarks/bench_engines.py"] + sys.argv[1:]),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
