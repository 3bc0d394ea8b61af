"""Pair quality of the pairs stage on the identity corpus (s2vforge.corpus.identity), against truth.

For each seed: build the corpus (with face_recognition's sdist photos of Obama and Biden unless
--no-face-photos), run the real `run_pairs(dataset, recipe)` with the default (embedded) recipe
and score every emitted pair per category (face, person, object+animal):

* precision = emitted cross pairs (cross_clip / cross_video) whose first reference has the
  target's identity / emitted cross pairs;
* recall (primary) = targets with >= 1 true partner eligible under the priors (living: another
  clip of the same group; objects: another video) *cut from another source picture* (another
  photo, or another frame of a video source: truth.json `source_id`) that got a correct cross
  pair / such targets. A re-paste of the same picture is a copy, which the near-duplicate upper
  bound exists to drop (Phantom-Data's copy-paste case), so it is not counted as a miss here;
* recall_all = the same over targets with any eligible partner, copies included (secondary);
* retrieval only (before verification): the top-1 bank neighbour among prior-eligible
  candidates, with and without the lower/upper bounds, from the stage's own bank vectors
  (DATASET/index/<category>, person vectors with their face-row part): its precision, and the
  recall (all partners) it would give;
* accepted_on: how the emitted cross pairs were accepted (geometric, face, embedding,
  accepted_on_similarity ...), so the share decided by similarity alone is visible;
* similarity distributions: cosine of same-identity vs different-identity eligible pairs.

Medians over the seeds. The face_recognition sdist is fetched with
`pip download face_recognition==1.3.0 --no-deps --no-binary :all:` (a package registry) and
cached under benchmarks/_work/.

    python benchmarks/bench_pairs_quality.py --seeds 0 1 2 --json benchmarks/_work/pairs_quality.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work"
SDIST_DIR = WORK / "face_recognition_sdist"
PHOTOS_DIR = WORK / "face_recognition_photos"
LOWER_SWEEP = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.88, 0.9, 0.92)   # retrieval-only: top-1 at other lower bounds
REPORT_CATS = {"face": ("face",), "person": ("person",), "object+animal": ("object", "animal"),
               "object": ("object",), "animal": ("animal",)}


def face_photos() -> Path:
    """face_recognition 1.3.0's tests/test_images (obama*.jpg, biden.jpg), cached."""
    from s2vforge.corpus.identity import FACE_PHOTO_FILES
    if all((PHOTOS_DIR / f).is_file() for f in FACE_PHOTO_FILES):
        return PHOTOS_DIR
    SDIST_DIR.mkdir(parents=True, exist_ok=True)
    tars = sorted(SDIST_DIR.glob("face_recognition-1.3.0.tar.gz"))
    if not tars:
        subprocess.run([sys.executable, "-m", "pip", "download", "face_recognition==1.3.0", "--no-deps",
                        "--no-binary", ":all:", "-d", str(SDIST_DIR)], check=True)
        tars = sorted(SDIST_DIR.glob("face_recognition-1.3.0.tar.gz"))
    PHOTOS_DIR.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tars[0]) as tf:
        for m in tf.getmembers():
            name = m.name.rsplit("/", 1)[-1]
            if "/tests/test_images/" in m.name and name in FACE_PHOTO_FILES and m.isfile():
                (PHOTOS_DIR / name).write_bytes(tf.extractfile(m).read())
    return PHOTOS_DIR


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _bank_vectors(dataset: Path, subj: dict) -> dict[str, np.ndarray]:
    """The vectors the stage put in its banks, for the truth's subjects (bank-folder entries skipped)."""
    from s2vforge.stages.pairs.bank import IdentityBank
    from s2vforge.stages.pairs.bankreg import INDEX_DIR
    vec: dict[str, np.ndarray] = {}
    for d in sorted((dataset / INDEX_DIR).iterdir()) if (dataset / INDEX_DIR).is_dir() else []:
        bank = IdentityBank.open(d)
        ids = [i for i in (bank.ids() if callable(bank.ids) else bank.ids) if i in subj]
        if ids:
            vec.update(zip(ids, np.asarray(bank.vectors_of(ids), np.float32)))
    return vec


def retrieval_only(dataset: Path, truth: dict, cfg: dict) -> dict:
    """Top-1 prior-eligible neighbour per target from the stage's bank vectors, before verification."""
    subj = truth["subjects"]
    vec = _bank_vectors(dataset, subj)
    out: dict = {}
    dists: dict = {}
    for cat in ("face", "person", "animal", "object"):
        ids = sorted(s for s in vec if subj[s]["category"] == cat)
        if not ids:
            continue
        M = np.stack([vec[s] / max(np.linalg.norm(vec[s]), 1e-12) for s in ids])
        S = M @ M.T
        b = cfg["bounds"].get(cat) or {}
        lo, hi = float(b.get("lower", 0.0)), float(b.get("upper", 1.0))
        same, diff = [], []
        sweep = {x: [0, 0, 0] for x in LOWER_SWEEP}
        res = {"bounded": [0, 0, 0], "unbounded": [0, 0, 0]}   # correct top-1, any top-1, targets with partners
        for i, s in enumerate(ids):
            t = subj[s]
            elig = []
            for j, u in enumerate(ids):
                if j == i:
                    continue
                uu = subj[u]
                ok = (uu["video_id"] != t["video_id"]) if t["kind"] == "object" else (
                    uu["group_id"] == t["group_id"] and uu["clip_id"] != t["clip_id"])
                if ok:
                    elig.append(j)
                    (same if uu["identity"] == t["identity"] else diff).append(float(S[i, j]))
            has_partner = any(subj[ids[j]]["identity"] == t["identity"] for j in elig)
            modes = [("unbounded", lambda x: True, res["unbounded"]), ("bounded", lambda x: lo <= x <= hi, res["bounded"])]
            modes += [(x, (lambda x: lambda v: x <= v <= hi)(x), sweep[x]) for x in LOWER_SWEEP]
            for mode, keep, acc in modes:
                cand = [j for j in elig if keep(S[i, j])]
                acc[2] += has_partner
                if cand:
                    j = max(cand, key=lambda j: (S[i, j], ids[j]))
                    acc[1] += 1
                    acc[0] += subj[ids[j]]["identity"] == t["identity"]
        out[cat] = {m: {"precision": _ratio(v[0], v[1]), "recall": _ratio(v[0], v[2]), "n_top1": v[1]}
                    for m, v in res.items()}
        out[cat]["lower_sweep"] = {str(x): {"precision": _ratio(v[0], v[1]), "recall": _ratio(v[0], v[2])}
                                   for x, v in sweep.items()}
        same_a, diff_a = np.asarray(same or [np.nan]), np.asarray(diff or [np.nan])
        dists[cat] = {"same_identity": _summary(same_a), "different_identity": _summary(diff_a),
                      "bounds": [lo, hi]}
    return {"top1": out, "similarity": dists}


def _summary(a: np.ndarray) -> dict:
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"n": 0}
    q = np.percentile(a, [0, 5, 50, 95, 100])
    return {"n": int(a.size), "min": round(float(q[0]), 3), "p5": round(float(q[1]), 3), "median": round(float(q[2]), 3),
            "p95": round(float(q[3]), 3), "max": round(float(q[4]), 3)}


def _accepted_on(verdicts: list[str]) -> str:
    """The identity check that accepted a pair, from its verdict strings."""
    checks = [v.split(":")[0] for v in verdicts or [] if ":ok" in v]
    for c in ("accepted_on_similarity", "geometric", "face_agreement", "appearance_agreement", "embedding_agreement"):
        if c in checks:
            return c
    return "other"


def score_pairs(dataset: Path, truth: dict) -> dict:
    """Precision / recall of pairs.parquet per report category, plus the failures by identity."""
    import pyarrow.parquet as pq
    from s2vforge.corpus.identity import eligible_partners
    subj = truth["subjects"]
    rows = pq.read_table(dataset / "pairs.parquet").to_pylist()
    by_target = {r["target_subject_id"]: r for r in rows}
    out, failures = {}, []
    for name, cats in REPORT_CATS.items():
        emitted = correct = n_targets = found = n_distinct = found_distinct = 0
        accepted_on: dict[str, int] = {}
        for sid, t in subj.items():
            if t["category"] not in cats:
                continue
            r = by_target.get(sid)
            cross = r is not None and r["kind"] in ("cross_clip", "cross_video") and r["reference_subject_ids"]
            ok = False
            if cross:
                ref = r["reference_subject_ids"][0]
                emitted += 1
                ok = ref in subj and subj[ref]["identity"] == t["identity"]
                correct += ok
                how = _accepted_on(r["verdicts"])
                accepted_on[how] = accepted_on.get(how, 0) + 1
                if not ok and name in ("face", "person", "object+animal"):
                    failures.append({"kind": "false_pair", "category": t["category"], "target": t["identity"],
                                     "reference": subj.get(ref, {}).get("identity", ref), "similarity": r["similarity"],
                                     "verdicts": r["verdicts"]})
            partners = eligible_partners(truth, sid)
            if eligible_partners(truth, sid, different_source=True):
                n_distinct += 1                  # a partner from another source picture: not a copy
                found_distinct += ok
            if partners:
                n_targets += 1
                found += ok
                if not ok and name in ("face", "person", "object+animal"):
                    failures.append({"kind": "missed", "category": t["category"], "target": t["identity"],
                                     "photo": t["photo"], "pair_kind": None if r is None else r["kind"],
                                     "rejected": [] if r is None else r["rejected"][:6]})
        out[name] = {"precision": _ratio(correct, emitted), "recall": _ratio(found_distinct, n_distinct),
                     "recall_all": _ratio(found, n_targets), "n_targets_other_source": n_distinct,
                     "n_cross_pairs": emitted, "n_correct": correct, "n_targets_with_partner": n_targets,
                     "accepted_on": dict(sorted(accepted_on.items()))}
    kinds: dict = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return {"categories": out, "kinds": kinds, "failures": failures}


def run_seed(seed: int, scale: str, photos: Path | None, workers: int, work: Path, reuse: bool = False,
             rerun: bool = False) -> dict:
    import shutil
    from s2vforge.corpus.identity import TRUTH_NAME, build_identity_dataset
    from s2vforge.stages.pairs.pipeline import pairs_config, run_pairs
    ds = work / f"identity_{scale}_s{seed}{'_fp' if photos else ''}"
    recipe: dict = {}
    t0 = time.perf_counter()
    if reuse and (ds / "pairs_run.json").is_file():     # rescore an earlier run
        built = {"n_subjects": len(json.loads((ds / TRUTH_NAME).read_text())["subjects"]),
                 "n_clips": len(json.loads((ds / TRUTH_NAME).read_text())["clips"])}
        t1 = time.perf_counter()
        summary = json.loads((ds / "pairs_run.json").read_text())["summary"]
    elif rerun and (ds / TRUTH_NAME).is_file():         # the stage again on the built corpus (embeddings resume)
        truth0 = json.loads((ds / TRUTH_NAME).read_text())
        built = {"n_subjects": len(truth0["subjects"]), "n_clips": len(truth0["clips"])}
        t1 = time.perf_counter()
        summary = run_pairs(ds, recipe, workers=workers)
    else:
        if ds.exists():
            shutil.rmtree(ds)
        built = build_identity_dataset(ds, seed=seed, face_photos=photos, scale=scale)
        t1 = time.perf_counter()
        summary = run_pairs(ds, recipe, workers=workers)
    t2 = time.perf_counter()
    truth = json.loads((ds / TRUTH_NAME).read_text())
    cfg = pairs_config(recipe)
    res = score_pairs(ds, truth)
    res["retrieval"] = retrieval_only(ds, truth, cfg)
    res.update(seed=seed, n_subjects=built["n_subjects"], n_clips=built["n_clips"], build_s=round(t1 - t0, 1),
               pairs_s=round(t2 - t1, 1), embedders=summary.get("embedders"), clusters=summary.get("clusters"))
    return res


def _median(vals):
    vals = [v for v in vals if v is not None]
    return round(statistics.median(vals), 4) if vals else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seed", type=int, default=None, help="one seed (overrides --seeds)")
    ap.add_argument("--scale", default="small", choices=("tiny", "small", "medium"))
    ap.add_argument("--no-face-photos", action="store_true", help="only media installed in the venv")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=WORK / "pairs_quality")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="rescore earlier runs found under --work (no rebuild)")
    ap.add_argument("--rerun", action="store_true",
                    help="run the stage again on corpora built earlier under --work (embeddings resume: tuning)")
    args = ap.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else args.seeds
    photos = None if args.no_face_photos else face_photos()
    args.work.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for s in seeds:
        r = run_seed(s, args.scale, photos, args.workers, args.work, args.reuse, args.rerun)
        per_seed.append(r)
        line = {k: (v["precision"], v["recall"], v["recall_all"]) for k, v in r["categories"].items()}
        print(f"seed {s}: {line}  ({r['build_s']} s build, {r['pairs_s']} s pairs)", flush=True)
    med = {}
    for name in REPORT_CATS:
        med[name] = {m: _median([r["categories"][name][m] for r in per_seed])
                     for m in ("precision", "recall", "recall_all")}
        for m in ("precision", "recall", "recall_all"):
            med[name][m + "_per_seed"] = [r["categories"][name][m] for r in per_seed]
        med[name]["n_targets_other_source"] = [r["categories"][name]["n_targets_other_source"] for r in per_seed]
        med[name]["n_targets_with_partner"] = [r["categories"][name]["n_targets_with_partner"] for r in per_seed]
        med[name]["accepted_on"] = [r["categories"][name]["accepted_on"] for r in per_seed]
        med[name]["n_cross_pairs"] = [r["categories"][name]["n_cross_pairs"] for r in per_seed]
    ret = {}
    for cat in ("face", "person", "animal", "object"):
        ret[cat] = {mode: {m: _median([r["retrieval"]["top1"].get(cat, {}).get(mode, {}).get(m) for r in per_seed])
                           for m in ("precision", "recall")} for mode in ("unbounded", "bounded")}
        ret[cat]["lower_sweep"] = {str(x): {m: _median([r["retrieval"]["top1"].get(cat, {}).get("lower_sweep", {})
                                                         .get(str(x), {}).get(m) for r in per_seed])
                                            for m in ("precision", "recall")} for x in LOWER_SWEEP}
    result = {"command": "python benchmarks/bench_pairs_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "scale": args.scale, "seeds": seeds, "face_photos": photos is not None, "median": med,
              "retrieval_median": ret, "per_seed": per_seed}
    print(json.dumps({"median": med, "retrieval_median": ret}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
