"""Export throughput: `s2vforge export` of N clips against the time to copy their bytes.

Usage:
  python benchmarks/bench_export.py [--clips 10000] [--workers 2] [--repeats 3] [--json OUT]

The dataset is synthetic in its tables but real in its files: K distinct real clips (moving
shots of packaged photos, 480x270, 2 s, H.264) are replicated to N clip files (one per clip
row, distinct names and slightly different bytes so no two files are equal), each with one
kept subject (an RGBA crop), a caption and scores, written under benchmarks/_work/export/.
Measured, page cache warm (every file read once before timing), median of --repeats:

  copy            copying the clip and crop files to a new folder (shutil.copyfile each)
  samples         export --format samples --no-dedup   (hard links + reference PNGs + tables)
  samples+dedup   export --format samples               (+ the clip embedding for near-duplicates)
  webdataset      export --format webdataset --no-dedup (+ every byte into tar shards)

Each export is the real CLI in a fresh process on a fresh --out folder. Reported: seconds,
ratio to copy, clips/s.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work" / "export"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "grace_hopper", "motorcycle_left", "camera", "retina")


def build_dataset(n: int, root: Path) -> Path:
    import numpy as np

    from s2vforge.corpus.synth import load_photo, moving_shot, write_video
    from s2vforge.schema import CAPTION_SCHEMA, SUBJECT_SCHEMA, VIDEO_SCHEMA, TableSpec, clip_schema
    ds = root / f"dataset_{n}"
    if (ds / "clips.parquet").exists():
        return ds
    shutil.rmtree(ds, ignore_errors=True)
    (ds / "clips").mkdir(parents=True)
    (ds / "subjects").mkdir()
    base = []
    for k, photo in enumerate(PHOTOS):
        p = root / f"base_{k}.mp4"
        if not p.exists():
            write_video(p, moving_shot(load_photo(photo), 2.0, 25.0, (480, 270), "pan" if k % 2 else "zoom"), 25.0)
        base.append(p.read_bytes())
    from PIL import Image
    crop = np.zeros((96, 64, 4), np.uint8)
    crop[..., :3] = 180
    crop[16:80, 8:56, 3] = 255
    videos, clips, caps, subs = [], [], [], []
    for i in range(n):
        vid = f"v{i:015d}"
        cid = f"{vid}-0000000-0000050"
        data = bytearray(base[i % len(base)])
        data += i.to_bytes(8, "little")          # distinct bytes (the trailing bytes are ignored by decoders)
        (ds / "clips" / f"{cid}.mp4").write_bytes(bytes(data))
        sid = f"{cid}-f00025-object-{i:08x}"
        Image.fromarray(crop, "RGBA").save(ds / "subjects" / f"{sid}.png")
        videos.append({"video_id": vid, "path": f"/in/{vid}.mp4", "status": "ok", "fps": 25.0, "width": 480,
                       "height": 270, "group_id": vid})
        clips.append({"clip_id": cid, "video_id": vid, "group_id": vid, "start_frame": 0, "end_frame": 50,
                      "start_s": 0.0, "end_s": 2.0, "duration_s": 2.0, "crop": [0, 0, 480, 270], "keep": True,
                      "path": f"clips/{cid}.mp4", "score_motion": 1.0 + (i % 7)})
        caps.append({"clip_id": cid, "video_id": vid, "short": f"Shot {i}.", "long": f"Shot {i} of a photo.",
                     "captioner": "facts"})
        subs.append({"subject_id": sid, "clip_id": cid, "video_id": vid, "group_id": vid, "frame_idx": 25,
                     "phrase": "object", "category": "object", "bbox": [100, 50, 164, 146],
                     "crop_path": f"subjects/{sid}.png", "det_score": 0.9, "keep": True, "checks": []})
    for name, spec, rows in (("videos", TableSpec(VIDEO_SCHEMA, "video_id"), videos),
                             ("clips", TableSpec(clip_schema(["score_motion"]), "clip_id"), clips),
                             ("captions", TableSpec(CAPTION_SCHEMA, "clip_id"), caps),
                             ("subjects", TableSpec(SUBJECT_SCHEMA, "subject_id"), subs)):
        pq.write_table(spec.table(rows), ds / f"{name}.parquet")
    return ds


def warm(ds: Path) -> int:
    total = 0
    for p in list((ds / "clips").iterdir()) + list((ds / "subjects").iterdir()):
        total += len(p.read_bytes())
    return total


def time_copy(ds: Path, dest: Path) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    t0 = time.perf_counter()
    for sub in ("clips", "subjects"):
        (dest / sub).mkdir(parents=True)
        for p in (ds / sub).iterdir():
            shutil.copyfile(p, dest / sub / p.name)
    return time.perf_counter() - t0


def time_export(ds: Path, dest: Path, workers: int, *args: str) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    exe = str(Path(sys.executable).with_name("s2vforge"))
    t0 = time.perf_counter()
    r = subprocess.run([exe, "export", str(ds), "--out", str(dest), "--workers", str(workers), "--quiet", *args],
                       capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"export failed ({r.returncode}): {r.stderr[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    ds = build_dataset(a.clips, WORK)
    nbytes = warm(ds)
    runs = {"copy": lambda: time_copy(ds, WORK / "copy"),
            "samples": lambda: time_export(ds, WORK / "out", a.workers, "--no-dedup"),
            "samples+dedup": lambda: time_export(ds, WORK / "out", a.workers),
            "webdataset": lambda: time_export(ds, WORK / "out", a.workers, "--no-dedup", "--format", "webdataset")}
    res = {}
    for name, fn in runs.items():
        ts = [fn() for _ in range(a.repeats)]
        res[name] = {"median_s": round(statistics.median(ts), 3), "runs_s": [round(t, 3) for t in ts]}
        print(name, res[name], flush=True)
    base = res["copy"]["median_s"]
    for name, r in res.items():
        r["ratio_to_copy"] = round(r["median_s"] / base, 2)
        r["clips_per_s"] = round(a.clips / r["median_s"], 1)
    out = {"clips": a.clips, "bytes": nbytes, "workers": a.workers, "repeats": a.repeats, "results": res,
           "command": " ".join(["python", "benchmarks/bench_export.py"] + sys.argv[1:])}
    print(json.dumps(out, indent=2))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
