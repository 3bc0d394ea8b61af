"""OpenS2V-Eval MotionAmplitude speed on CPU (frames per second, median of runs).

Usage:
  python benchmarks/bench_eval_cpu.py [VIDEO] [--runs 5] [--json]

VIDEO defaults to the official reference clip tests/bench/data/singleface_3.mp4 (832x480,
69 frames). For each run it times, on the same file:
  decode      PyAV decode + rgb24 conversion of every frame (the floor)
  amplitude   the full metric: decode, BGR2GRAY (sic), Farneback on every consecutive pair,
              width-16 downscale, mean (motion.motion_stats)
and prints frames/s = decoded frames / wall seconds, taking the median over runs, plus the
CPU seconds the process used (a better figure on a shared, busy machine) and the load average. The amplitude
value is printed too, so a speed change can never hide a result change.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT / "tests" / "bench" / "data" / "singleface_3.mp4"


def _time(fn) -> tuple[float, float, object]:
    """Wall seconds, process CPU seconds (all threads), result."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    a = ap.parse_args(argv)

    import cv2

    from s2vforge.bench.opens2v.motion import iter_rgb_frames, motion_stats

    video = Path(a.video)
    if not video.is_file():
        print(f"no such video: {video}", file=sys.stderr)
        return 2
    motion_stats(video)   # warm-up: imports, codec init, page cache

    decode_s, amp_s, amp_cpu_s = [], [], []
    n_frames = 0
    amplitude = None
    for _ in range(a.runs):
        s, _c, n = _time(lambda: sum(1 for _ in iter_rgb_frames(video)))
        decode_s.append(s)
        n_frames = int(n)
        s, c, stats = _time(lambda: motion_stats(video))
        amp_s.append(s)
        amp_cpu_s.append(c)
        amplitude = stats.amplitude

    med_dec, med_amp, med_cpu = statistics.median(decode_s), statistics.median(amp_s), statistics.median(amp_cpu_s)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = {
        "video": str(video), "frames": n_frames, "runs": a.runs,
        "decode_fps": round(n_frames / med_dec, 1),
        "amplitude_fps": round(n_frames / med_amp, 2),
        "amplitude_s_per_video": round(med_amp, 3),
        "amplitude_cpu_s_per_video": round(med_cpu, 3),
        "load_avg_1min": load,
        "amplitude": amplitude,
        "cpu": platform.processor() or platform.machine(), "n_cpus": os.cpu_count(),
        "opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads(),
    }
    if a.json:
        print(json.dumps(report))
    else:
        print(f"{video.name}: {n_frames} frames, median of {a.runs} runs on {report['n_cpus']} CPUs "
              f"(OpenCV {report['opencv']}, {report['opencv_threads']} threads)")
        print(f"  decode only       {report['decode_fps']:8.1f} frames/s")
        print(f"  motion amplitude  {report['amplitude_fps']:8.2f} frames/s  "
              f"({report['amplitude_s_per_video']} s/video wall, {report['amplitude_cpu_s_per_video']} s CPU; "
              f"value {amplitude!r})")
        print(f"  load average (1 min) {load}: wall figures are only meaningful on an idle machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
