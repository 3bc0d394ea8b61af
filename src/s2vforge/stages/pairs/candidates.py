"""Stages 4-6 of `pair` for one target track: bounded retrieval under the priors, verification of
the best candidates, and the choice of the most context-diverse verified reference.

Retrieval (Phantom-Data): `query_bounded(top_k, lower, upper, exclude=priors)` per target; the
lower bound drops unrelated subjects, the upper bound near-duplicates (a copy of the same photo
would teach copy-paste). Priors: living subjects pair with another clip of the same group_id,
objects with another video (OpenS2V-Nexus); bank images pair with anything.

Verification, per category (every verdict is recorded in the row):

* face: dlib descriptor agreement (face_recognition's 0.6 rule, verify.verify_face_agreement);
* person: the same agreement on the face part of the person vector (the co-located face row's
  vector, tracks.attach_face_rows); when a side has no face, appearance-part agreement
  (`accept_similarity.person`);
* animal: embedding agreement (`accept_similarity.animal`) under the same-group prior, as for
  people: animals are non-rigid, so a homography between two poses is the wrong test;
* object: RootSIFT + RANSAC inliers (verify.verify_geometric); when geometry is unknown (too
  few keypoints: thin, flat or textureless objects) or fails, a candidate whose identity cosine
  reaches `accept_similarity.object` is accepted anyway with the verdict
  `accepted_on_similarity:ok:...` (filter on it to keep only geometrically verified pairs);
* optionally the OCR text/logo prior and an OpenAI-compatible VLM (identity + context).

Accepted = one identity check ok and no check failed (a geometric fail is overridden by
accepted_on_similarity); "could not decide" (ok None) is recorded and tolerated.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...schema import LIVING_CATEGORIES as LIVING, PERSON_CATEGORIES
from ..recipe_keys import need
from .bankreg import BankEntry
from .clipembed import cached_embedder, clip_frames_at, read_rgba
from .tracks import Instance, Track

IDENTITY_CHECKS = ("geometric", "face_agreement", "appearance_agreement", "embedding_agreement",
                   "accepted_on_similarity")


def pair_id_for(target_subject_id: str) -> str:
    return "p-" + hashlib.blake2b(target_subject_id.encode(), digest_size=6).hexdigest()



@dataclass
class Candidate:
    ref_id: str
    sim: float
    source: str                 # subject | bank
    clip_id: str | None
    video_id: str | None
    kind: str
    inst: Instance | None = None
    entry: BankEntry | None = None
    verdicts: list[str] = field(default_factory=list)
    diversity: float | None = None


def prior_verdict(target: Instance, cand: Candidate, cfg: dict) -> str | None:
    """None when the candidate may pair with the target, else the verdict that says why not."""
    pri = need(cfg, "priors", "pairs")
    if cand.source == "bank":
        return None
    c = cand.inst
    if c.clip_id == target.clip_id:
        return "same_clip"
    if target.category in LIVING:
        if need(pri, "living", "pairs.priors") == "same_group" and c.group_id != target.group_id:
            return "prior_different_group"
    elif need(pri, "objects", "pairs.priors") == "cross_video" and c.video_id == target.video_id:
        return "prior_same_video"
    return None


def pair_kind(target: Instance, cand: Candidate) -> str:
    if cand.source == "bank":
        return "cross_video"
    if target.category in LIVING:
        return "cross_clip" if cand.inst.video_id == target.video_id or cand.inst.group_id == target.group_id \
            else "cross_video"
    return "cross_video"


class CropCache:
    """Crops and frames loaded once per run for verification."""

    def __init__(self, dataset: Path) -> None:
        self.dataset = dataset
        self.cache: dict[str, np.ndarray | None] = {}

    def crop(self, inst: Instance | None = None, entry: BankEntry | None = None):
        key = inst.subject_id if inst else entry.entry_id
        if key not in self.cache:
            if inst is not None:
                self.cache[key] = read_rgba(self.dataset / inst.crop_path) if inst.crop_path else None
            else:
                img = read_rgba(Path(entry.path))
                if img is not None and entry.box:
                    x0, y0, x1, y1 = entry.box
                    img = img[y0:y1, x0:x1]
                self.cache[key] = img
        return self.cache[key]


def verdict_text(v) -> str:
    """A verdict as recorded in the tables (verify emits no timings, so reruns are identical)."""
    return str(v)


def accepted(verdicts) -> bool:
    """One identity check must pass (ok True) and none may fail, except a geometric fail that a
    strong similarity overrides (accepted_on_similarity); the text prior and the VLM must not say
    no (their ok None, "could not decide", is recorded and tolerated: an endpoint outage must not
    empty the dataset)."""
    if not any(v.check in IDENTITY_CHECKS and v.ok is True for v in verdicts):
        return False
    overridden = {"geometric"} if any(v.check == "accepted_on_similarity" and v.ok for v in verdicts) else set()
    return not any(v.ok is False and v.check not in overridden for v in verdicts)


def _agreement(check: str, sim: float | None, threshold: float | None):
    from .verify import Verdict
    if sim is None:
        return Verdict(check, None, None, "no vector")
    if threshold is None:
        return Verdict(check, None, float(sim), f"cos={sim:.3f},no threshold")
    return Verdict(check, sim >= threshold, float(sim), f"cos={sim:.3f}{'>=' if sim >= threshold else '<'}{threshold:g}")


def verify_candidate(target: Instance, cand: Candidate, images: CropCache, cfg: dict, vlm,
                     state: dict | None = None) -> list:
    """Every verdict on one candidate: the category's identity checks, the text prior, the VLM."""
    from . import verify as V
    from .embed import person_parts
    out = []
    ref_vec = cand.inst.vector if cand.inst is not None else cand.entry.vector
    tgt_crop = images.crop(inst=target)
    ref_crop = images.crop(inst=cand.inst) if cand.inst is not None else images.crop(entry=cand.entry)
    vcfg = need(cfg, "verify", "pairs")
    strong = need(cfg, "accept_similarity", "pairs")
    cat = target.category
    if cat == "face":
        out.append(V.verify_face_agreement(ref_vec, target.vector, **need(vcfg, "face", "pairs.verify")))
    elif cat == "person":
        emb = cached_embedder(state if state is not None else {"embedders": {}}, "person", cfg)
        pr, pt = person_parts(emb, ref_vec), person_parts(emb, target.vector)
        face_v = V.verify_face_agreement(pr["face"], pt["face"], **need(vcfg, "face", "pairs.verify"))
        out.append(face_v)
        if face_v.ok is None:       # one side shows no face: appearance decides
            app = None if (pr["appearance"] is None or pt["appearance"] is None) else float(pr["appearance"] @ pt["appearance"])
            out.append(_agreement("appearance_agreement", app,
                                  need(strong, "person", "pairs.accept_similarity")))
    elif cat == "animal":
        out.append(_agreement("embedding_agreement", cand.sim, need(strong, "animal", "pairs.accept_similarity")))
    else:
        if tgt_crop is None or ref_crop is None:
            geo = V.Verdict("geometric", False, None, "crop_unreadable")
        else:
            geo = V.verify_geometric(ref_crop, tgt_crop, **need(vcfg, "geometric", "pairs.verify"))
        out.append(geo)
        thr = need(strong, cat, "pairs.accept_similarity")
        if geo.ok is not True and thr is not None and cand.sim >= float(thr):
            out.append(V.Verdict("accepted_on_similarity", True, float(cand.sim), f"cos={cand.sim:.3f}>={float(thr):g}"))
    if cat not in PERSON_CATEGORIES and need(cfg["priors"], "text_match", "pairs.priors") and tgt_crop is not None \
            and ref_crop is not None:
        out.append(V.verify_text_match(ref_crop, tgt_crop, **need(vcfg, "text", "pairs.verify")))
    if vlm is not None and ref_crop is not None and accepted(out):
        frame = tgt_crop
        try:
            frames = clip_frames_at(images.dataset / "clips" / f"{target.clip_id}.mp4", {int(target.frame_idx or 0)})
            frame = frames.get(int(target.frame_idx or 0), tgt_crop)
        except Exception:
            pass
        out.extend(vlm.verify(ref_crop, frame, target.phrase or target.category))
    return out


def pair_track(track: Track, banks: dict, by_id: dict[str, Instance], entries: dict[str, BankEntry],
               images: CropCache, cfg: dict, vlm, state: dict | None = None) -> tuple[dict, list[tuple[str, str, float]]]:
    """The pairs row of one track and the verified identity edges (target id, reference id)."""
    from .diversity import context_diversity
    t = track.target
    cat = track.category
    b = need(need(cfg, "bounds", "pairs"), cat, "pairs.bounds")
    lower, upper = float(need(b, "lower", f"pairs.bounds.{cat}")), float(need(b, "upper", f"pairs.bounds.{cat}"))
    rejected: list[str] = []
    edges: list[tuple[str, str, float]] = []
    chosen: list[Candidate] = []
    if t.vector is not None and cat in banks:
        bank = banks[cat]
        k = int(cfg["top_k"])

        def candidate(rid: str) -> Candidate | None:
            if rid in entries:
                return Candidate(rid, 0.0, "bank", None, None, "cross_video", entry=entries[rid])
            if rid in by_id:
                i = by_id[rid]
                return Candidate(rid, 0.0, "subject", i.clip_id, i.video_id, "", inst=i)
            return None          # an entry of an earlier run no longer in the tables (or a removed bank folder)

        def exclude(rid: str):
            c = candidate(rid)
            if c is None:
                return "stale"
            return (prior_verdict(t, c, cfg) or False)
        hits = bank.query_bounded(t.vector[None, :].astype(np.float32), k, lower=lower, upper=upper,
                                  exclude=exclude, return_rejected=True)[0]
        cands: list[Candidate] = []
        seen_tracks: set[int] = set()
        for rid, sim, bverdict in hits:
            sim = float(sim)
            c = candidate(rid)
            if bverdict != "kept":
                # same-clip instances are the target's own track or its neighbours, not candidates: not listed
                if c is not None and c.inst is not None and c.inst.clip_id == t.clip_id:
                    continue
                if "stale" not in str(bverdict):
                    rejected.append(f"{rid}:{bverdict}:{sim:.3f}")
                continue
            c.sim = sim
            if c.inst is not None:
                if c.inst.track in seen_tracks:
                    continue     # one candidate per other track: its best-matching instance
                seen_tracks.add(c.inst.track)
            c.kind = pair_kind(t, c)
            cands.append(c)
        cands.sort(key=lambda c: (-c.sim, c.ref_id))
        for i, c in enumerate(cands):
            if i >= int(cfg["max_candidates"]):
                rejected.append(f"{c.ref_id}:not_verified:beyond_max_candidates")
                continue
            verdicts = verify_candidate(t, c, images, cfg, vlm, state)
            if accepted(verdicts):
                c.verdicts = [f"bounds:ok:{c.sim:.3f}", f"prior:{c.kind}"] + [verdict_text(v) for v in verdicts]
                ctx = c.inst.context if c.inst is not None else c.entry.context
                c.diversity = None if (ctx is None or t.context is None) else float(context_diversity(t.context, ctx))
                chosen.append(c)
                edges.append((t.subject_id, c.ref_id, c.sim))
            else:
                rejected.append(f"{c.ref_id}:" + ";".join(verdict_text(v) for v in verdicts))
    base = {"pair_id": pair_id_for(t.subject_id), "target_clip_id": t.clip_id, "target_subject_id": t.subject_id,
            "target_video_id": t.video_id, "group_id": t.group_id, "category": cat, "phrase": t.phrase,
            "rejected": sorted(rejected), "track_subject_ids": sorted(m.subject_id for m in track.members)}
    if chosen:
        # prefer the most diverse context among verified references (OpenSubject / Phantom-Data), then similarity
        chosen.sort(key=lambda c: (-(c.diversity if c.diversity is not None else -1.0), -c.sim, c.ref_id))
        refs = chosen[:max(1, int(cfg["max_references"]))]
        for c in chosen[len(refs):]:
            base["rejected"].append(f"{c.ref_id}:not_chosen:less_diverse")
        base["rejected"].sort()
        first = refs[0]
        row = {**base, "kind": first.kind, "reference_subject_ids": [c.ref_id for c in refs],
               "reference_clip_ids": [c.clip_id for c in refs if c.clip_id],
               "reference_source": first.source, "similarity": round(first.sim, 6),
               "diversity": None if first.diversity is None else round(first.diversity, 6),
               "verdicts": [v for c in refs for v in c.verdicts], "keep": True}
        return row, edges
    others = [m for m in track.members[1:] if m.frame_idx != t.frame_idx] or track.members[1:]
    if others:
        ref = others[0]
        sim = float(ref.vector @ t.vector) if (ref.vector is not None and t.vector is not None) else None
        div = float(context_diversity(t.context, ref.context)) if (
            ref.context is not None and t.context is not None) else None
        row = {**base, "kind": "in_pair", "reference_subject_ids": [ref.subject_id],
               "reference_clip_ids": [ref.clip_id], "reference_source": "subject",
               "similarity": None if sim is None else round(sim, 6), "diversity": None if div is None else round(div, 6),
               "verdicts": ["fallback:no_verified_cross_reference"], "keep": True}
        return row, edges
    why = "none:embedding_failed" if t.vector is None else "none:no_verified_cross_reference_single_instance"
    row = {**base, "kind": "none", "reference_subject_ids": [], "reference_clip_ids": [], "reference_source": None,
           "similarity": None, "diversity": None, "verdicts": [why], "keep": False}
    return row, edges

