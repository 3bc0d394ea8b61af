"""Mask IoU of the subject mask backends on composites with exact ground truth.

    python benchmarks/bench_masks.py                      # GrabCut, selfie, auto on 66 composites
    python benchmarks/bench_masks.py --grid               # + the GrabCut / selfie parameter grid
    python benchmarks/bench_masks.py --seed 1             # other variations (held out from the tuning)
    python benchmarks/bench_masks.py --sam2               # + SAM 2 if its weights are on disk
    python benchmarks/bench_masks.py --json out.json

Composites (tests/subjects_masks/composites.py): five subjects cut from real photos with fixed
outlines (coffee cup on saucer, rocket, cat head, astronaut, Grace Hopper) pasted with a hard
alpha onto seven real scenes they do not come from (garage, two bikes.mp4 street frames,
launch pad, wooden table, grass, bricks), two seeded variations per pair (scale 35/55/80 % of
the frame height, position, sometimes leaving the frame, horizontal flip, subject gain
0.75/1/1.25 with gamma, global gain 0.85/1/1.15), then Gaussian blur sigma 0.6 and JPEG q90.
The pasted alpha is the exact ground truth.

Boxes: `tight` is the mask's own box (a perfect detector); `jitter` moves every side by up
to +-5 % of the box size (seeded), like a good detector's error. People (astronaut, Grace
Hopper) are also scored with the selfie backend; `auto` is what the pipeline runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from subjects_masks.composites import composites, jitter_box, mask_iou  # noqa: E402

from s2vforge.backends.errors import BackendUnavailable  # noqa: E402
from s2vforge.recipes import load_recipe  # noqa: E402
from s2vforge.stages.subjects import masks as M  # noqa: E402

JITTER = 0.05
MASKS = load_recipe(None)["subjects"]["masks"]     # the default recipe's settings (the values tuned here)
GRABCUT, SELFIE = M.grabcut_params(MASKS), M.selfie_params(MASKS)


def summarise(rows: list[dict]) -> dict:
    ious = np.array([r["iou"] for r in rows])
    ms = [r["ms"] for r in rows]
    per_subject = {}
    for name in sorted({r["subject"] for r in rows}):
        per_subject[name] = round(float(np.median([r["iou"] for r in rows if r["subject"] == name])), 3)
    return {"n": len(rows), "median": round(float(np.median(ious)), 3), "mean": round(float(ious.mean()), 3),
            "frac_ge_0.8": round(float((ious >= 0.8).mean()), 3), "min": round(float(ious.min()), 3),
            "p10": round(float(np.quantile(ious, 0.1)), 3), "median_ms": round(statistics.median(ms), 1),
            "per_subject_median": per_subject}


def run(fn, scenes, boxes) -> list[dict]:
    rows = []
    for c, box in zip(scenes, boxes):
        t = time.perf_counter()
        m = fn(c.image, box)
        ms = 1000 * (time.perf_counter() - t)
        rows.append({"name": c.name, "subject": c.subject.name, "iou": mask_iou(m, c.mask), "ms": ms})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-pair", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="composite variations (0: the set the defaults were tuned on)")
    ap.add_argument("--grid", action="store_true", help="also sweep GrabCut and selfie parameters")
    ap.add_argument("--sam2", action="store_true", help="also run SAM 2 (needs local weights)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    scenes = composites(args.per_pair, seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    box_sets = {"tight": [c.box for c in scenes], "jitter": [jitter_box(c.box, JITTER, rng) for c in scenes]}
    people = [i for i, c in enumerate(scenes) if c.subject.category == "person"]

    configs: list[tuple[str, object, list[int]]] = [
        ("grabcut", lambda im, b: M.grabcut_mask(im, b, **GRABCUT), list(range(len(scenes)))),
        ("auto", None, list(range(len(scenes)))),
        ("selfie (people)", lambda im, b: M.selfie_mask(im, b, **SELFIE), people),
        ("grabcut (people)", lambda im, b: M.grabcut_mask(im, b, **GRABCUT), people),
    ]
    if args.sam2:
        configs.append(("sam2", lambda im, b: M.sam2_mask(im, b, MASKS["sam2_model_dir"], MASKS["device"]),
                        list(range(len(scenes)))))
    if args.grid:
        for it, rm, ctx, ws in [(3, .03, .5, 320), (5, .03, .5, 320), (8, .03, .5, 320), (3, 0.0, .5, 320),
                                (3, .06, .5, 320), (3, .03, .25, 320), (3, .03, 1.0, 320), (3, .03, .5, 200),
                                (3, .03, .5, 480), (5, .03, 1.0, 320), (3, .03, 1.0, 480), (3, .03, 2.0, 320)]:
            configs.append((f"grabcut it={it} rect={rm} ctx={ctx} side={ws}",
                            lambda im, b, it=it, rm=rm, ctx=ctx, ws=ws: M.grabcut_mask(
                                im, b, **{**GRABCUT, "iterations": it, "rect_margin": rm, "context_margin": ctx,
                                          "work_long_side": ws}),
                            list(range(len(scenes)))))
        for thr, cm in [(0.3, 0.1), (0.5, 0.1), (0.3, 0.25), (0.5, 0.25), (0.3, 0.4), (0.5, 0.4)]:
            configs.append((f"selfie thr={thr} crop={cm} (people)",
                            lambda im, b, thr=thr, cm=cm: M.selfie_mask(
                                im, b, **{**SELFIE, "threshold": thr, "crop_margin": cm}), people))

    results = {"seed": args.seed, "n_composites": len(scenes), "n_people": len(people), "jitter": JITTER,
               "backends": {}}
    for label, fn, idx in configs:
        for box_mode, boxes in box_sets.items():
            sub = [scenes[i] for i in idx]
            sub_boxes = [boxes[i] for i in idx]
            if fn is None:  # auto: the category decides
                rows = []
                for c, b in zip(sub, sub_boxes):
                    t = time.perf_counter()
                    m = M.segment(c.image, b, c.subject.category, MASKS)
                    rows.append({"name": c.name, "subject": c.subject.name, "iou": mask_iou(m, c.mask),
                                 "ms": 1000 * (time.perf_counter() - t)})
            else:
                try:
                    rows = run(fn, sub, sub_boxes)
                except BackendUnavailable as exc:
                    print(f"{label}: unavailable: {exc}")
                    break
            s = summarise(rows)
            results["backends"].setdefault(label, {})[box_mode] = {**s, "rows": rows}
            print(f"{label:44s} {box_mode:6s} n={s['n']:3d} median={s['median']:.3f} mean={s['mean']:.3f} "
                  f">=0.8: {s['frac_ge_0.8']:.2f} p10={s['p10']:.2f} min={s['min']:.2f} {s['median_ms']:.0f} ms "
                  f"{s['per_subject_median']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
