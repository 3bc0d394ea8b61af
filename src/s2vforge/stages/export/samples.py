"""Training samples: one row per kept clip joining its caption, scores and subject references.

Which references a sample gets is a rule of the recipe (`export.refs`), never join order:

1. The clip's subject *tracks* (one identity in one clip): the rows of pairs.parquet when the
   pair stage ran (its target is the track's best instance); otherwise each kept
   (category, phrase) of subjects.parquet, best instance by detector score and sharpness.
2. Per track, by `export.refs.mode`:
   - `self`: the track's best in-clip crop (kind `self`);
   - `cross`: the reference of its kept cross pair (kind `cross_clip` / `cross_video`, with the
     pair's identity similarity); tracks without one give no reference;
   - `both`: the cross reference when there is one, else the self crop.
3. A track whose phrase is one of the caption's background tags, or whose mask overlaps an
   earlier reference of the same frame (mask IoU > `refs.duplicate_mask_iou`), is not a subject
   (the defects of OpenS2V-Nexus's loader that returned both as subjects).
4. Order: `refs.categories` (face, person, animal, object), then detector score, then id; at
   most `refs.max_refs`. Fewer than `refs.min_refs` drops the sample (`too_few_refs`).

build_samples works over a dataset directly (paths are dataset-relative, rgb/mask paths null);
the export stage fills those in for the files it writes.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ...schema import sample_schema
from ..recipe_keys import need
from ..subjects.rle import rle_iou

CROSS_KINDS = ("cross_clip", "cross_video")
REF_MODES = ("self", "cross", "both")


def _read(dataset: Path, name: str) -> list[dict]:
    p = Path(dataset) / f"{name}.parquet"
    return pq.read_table(p).to_pylist() if p.exists() else []


def one_line(text: str | None) -> str | None:
    """A caption on one line: every whitespace run (newlines, tabs, U+2028, U+0085, ...) becomes
    one space (finetrainers pairs prompts.txt with videos.txt by str.splitlines, which breaks on
    each of those; the CSV/TXT readers of the others want one caption per row or file)."""
    if text is None:
        return None
    s = " ".join(str(text).split())
    return s or None


def check_refs_config(cfg: dict) -> dict:
    refs = need(cfg, "refs", "export")
    mode = need(refs, "mode", "export.refs")
    if mode not in REF_MODES:
        raise ValueError(f"export.refs.mode must be one of {', '.join(REF_MODES)}, got {mode!r} (--refs)")
    for k in ("max_refs", "min_refs"):
        if int(need(refs, k, "export.refs")) < 0:
            raise ValueError(f"export.refs.{k} must be >= 0")
    return refs


def _quality(row: dict) -> float:
    from ..pairs.tracks import quality_score
    return quality_score(row)


def _tracks(clip_id: str, subjects: list[dict], pair_rows: list[dict]) -> list[dict]:
    """[{target: subject row, pair: pairs row or None}] for one clip."""
    by_id = {s["subject_id"]: s for s in subjects}
    if pair_rows:
        out = []
        for p in pair_rows:
            t = by_id.get(p["target_subject_id"])
            if t is not None:
                out.append({"target": t, "pair": p})
        return out
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for s in subjects:
        groups[(s.get("category"), s.get("phrase"))].append(s)
    return [{"target": max(rows, key=lambda r: (_quality(r), r["subject_id"])), "pair": None}
            for _, rows in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))]


def _reference(row: dict, kind: str, target_id: str, frame_sizes: dict, pair: dict | None = None) -> dict:
    rle = row.get("mask_rle")
    size = None
    if rle:
        try:
            h, w = json.loads(rle)["size"]
            size = [int(w), int(h)]
        except (ValueError, KeyError, TypeError):
            size = None
    return {"subject_id": row["subject_id"], "target_subject_id": target_id, "kind": kind,
            "source_clip_id": row.get("clip_id"), "source_video_id": row.get("video_id"),
            "category": row.get("category"), "phrase": row.get("phrase"),
            "frame_idx": row.get("frame_idx"), "bbox": row.get("bbox"),
            "frame_size": size or frame_sizes.get(row.get("clip_id")), "mask_rle": rle,
            "rgba_path": row.get("crop_path"), "rgb_path": None, "mask_path": None,
            "similarity": (pair or {}).get("similarity") if kind != "self" else None,
            "pair_id": (pair or {}).get("pair_id"), "det_score": row.get("det_score"), "synthetic": False}


def _same_mask(a: dict, b: dict, bound: float) -> bool:
    if a["source_clip_id"] != b["source_clip_id"] or a["frame_idx"] != b["frame_idx"]:
        return False
    if not a.get("mask_rle") or not b.get("mask_rle"):
        return False
    try:
        return rle_iou(json.loads(a["mask_rle"]), json.loads(b["mask_rle"])) > bound
    except ValueError:
        return False


def choose_references(tracks: list[dict], all_subjects: dict[str, dict], refs_cfg: dict,
                      background_tags: list[str], frame_sizes: dict) -> tuple[list[dict], list[str]]:
    """(references in order, notes on tracks left out) for one clip, by the module's rule."""
    mode = refs_cfg["mode"]
    order = {c: i for i, c in enumerate(need(refs_cfg, "categories", "export.refs"))}
    background = {t.strip().lower() for t in background_tags or []}
    notes: list[str] = []
    chosen: list[tuple[tuple, dict]] = []
    for tr in tracks:
        t, pair = tr["target"], tr["pair"]
        if t.get("category") not in order:
            continue
        if (t.get("phrase") or "").strip().lower() in background:
            notes.append(f"background_phrase:{t['subject_id']}")
            continue
        cross = None
        if pair and pair.get("keep") and pair.get("kind") in CROSS_KINDS and pair.get("reference_subject_ids"):
            src = all_subjects.get(pair["reference_subject_ids"][0])
            if src is not None and src.get("crop_path"):
                cross = _reference(src, pair["kind"], t["subject_id"], frame_sizes, pair)
        own = _reference(t, "self", t["subject_id"], frame_sizes) if t.get("crop_path") else None
        ref = {"self": own, "cross": cross, "both": cross or own}[mode]
        if ref is None:
            continue
        key = (order[t["category"]], -float(t.get("det_score") or 0.0), t["subject_id"])
        chosen.append((key, ref))
    chosen.sort(key=lambda kv: kv[0])
    bound = float(need(refs_cfg, "duplicate_mask_iou", "export.refs"))
    out: list[dict] = []
    for _, ref in chosen:
        if any(_same_mask(ref, prev, bound) for prev in out):
            notes.append(f"duplicate_mask:{ref['target_subject_id']}")
            continue
        out.append(ref)
    return out[: int(refs_cfg["max_refs"])], notes


def build_samples(dataset: Path, cfg: dict) -> pa.Table:
    """samples.parquet rows over a dataset's tables (no files touched): every kept clip, with
    keep/drop_reasons by the export rules; split and duplicate columns left null (the export
    stage assigns them)."""
    rows, score_cols = sample_rows(Path(dataset), cfg)
    schema = sample_schema(score_cols)
    from ...schema import table_from_rows
    return table_from_rows(sorted(rows, key=lambda r: r["sample_id"]), schema)


def sample_rows(dataset: Path, cfg: dict) -> tuple[list[dict], list[str]]:
    refs_cfg = check_refs_config(cfg)
    cap_cfg = need(cfg, "caption", "export")
    text_field = need(cap_cfg, "text", "export.caption")
    if text_field not in ("long", "short"):
        raise ValueError(f"export.caption.text must be long or short, got {text_field!r}")
    require_caption = bool(need(cap_cfg, "require", "export.caption"))
    clips_path = dataset / "clips.parquet"
    if not clips_path.exists():
        raise FileNotFoundError(f"{clips_path} not found: run `s2vforge curate ... --out {dataset}` first")
    clips = [c for c in pq.read_table(clips_path).to_pylist() if c.get("keep") and c.get("path")]
    score_cols = sorted(k for k in (pq.read_schema(clips_path).names) if k.startswith("score_"))
    videos = {v["video_id"]: v for v in _read(dataset, "videos")}
    captions = {c["clip_id"]: c for c in _read(dataset, "captions")}
    subjects = [s for s in _read(dataset, "subjects") if s.get("keep") and s.get("category") != "none"]
    all_subjects = {s["subject_id"]: s for s in subjects}
    subjects_by_clip: dict[str, list[dict]] = defaultdict(list)
    for s in subjects:
        subjects_by_clip[s["clip_id"]].append(s)
    pairs_by_clip: dict[str, list[dict]] = defaultdict(list)
    for p in _read(dataset, "pairs"):
        pairs_by_clip[p["target_clip_id"]].append(p)
    frame_sizes = {}
    for c in clips:
        crop = c.get("crop")
        if crop:
            frame_sizes[c["clip_id"]] = [int(crop[2] - crop[0]), int(crop[3] - crop[1])]
    out = []
    for c in clips:
        cid = c["clip_id"]
        cap = captions.get(cid) or {}
        v = videos.get(c.get("video_id")) or {}
        drop: list[str] = []
        long_text = one_line(cap.get("long")) or one_line(c.get("caption"))
        short_text = one_line(cap.get("short"))
        text = (long_text or short_text) if text_field == "long" else (short_text or long_text)
        if text is None and require_caption:
            drop.append("no_caption" if not cap.get("error") else f"no_caption: {cap['error']}")
        refs, _notes = choose_references(_tracks(cid, subjects_by_clip.get(cid, []), pairs_by_clip.get(cid, [])),
                                         all_subjects, refs_cfg, cap.get("background_tags") or [], frame_sizes)
        if len(refs) < int(refs_cfg["min_refs"]):
            drop.append(f"too_few_refs: {len(refs)} < {int(refs_cfg['min_refs'])} ({refs_cfg['mode']})")
        size = frame_sizes.get(cid) or [v.get("width"), v.get("height")]
        fps = v.get("fps")
        row = {"sample_id": cid, "clip_id": cid, "video_id": c.get("video_id"), "group_id": c.get("group_id"),
               "keep": not drop, "drop_reasons": drop, "split": None, "split_group": None,
               "duplicate_of": None, "duplicate_cluster": None, "duplicate_similarity": None,
               "clip_path": c["path"], "source_clip_path": str((dataset / c["path"]).resolve()),
               "source_video_path": v.get("path"), "fps": fps,
               "n_frames": int(c["end_frame"] - c["start_frame"]) if c.get("end_frame") is not None else None,
               "width": size[0], "height": size[1], "duration_s": c.get("duration_s"),
               "start_s": c.get("start_s"), "end_s": c.get("end_s"), "start_frame": c.get("start_frame"),
               "end_frame": c.get("end_frame"), "crop": c.get("crop"), "recut": None,
               "caption": text, "caption_short": short_text, "caption_long": long_text,
               "caption_structured": cap.get("structured"), "subject_tags": cap.get("subject_tags") or [],
               "object_tags": cap.get("object_tags") or [], "background_tags": cap.get("background_tags") or [],
               "captioner": cap.get("captioner") or ("manifest" if c.get("caption") else None),
               "ref_mode": refs_cfg["mode"], "references": refs, "n_refs": len(refs)}
        row.update({k: c.get(k) for k in score_cols})
        out.append(row)
    return out, score_cols
