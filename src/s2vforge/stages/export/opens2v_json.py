"""OpenS2V-5M layout: our samples as the JSON records OpenS2V-Nexus' tooling and dataloader read.

The published layout and every key are described, with the files they were read from, in
docs/opens2v-format.md. In short (OpenS2V-Nexus data_process/step5-2_get_subject_image.py writes
the per-clip record, step6-2_get_cross-frame.py the cross-frame pairs, demo_dataloader.py reads
them; the OpenS2V-5M card names the files):

    EXPORT/opens2v/
      Jsons/mask_and_bbox/<part>.json            {clip key: record}, keys sorted, indent 4
      Jsons/cross_video_pairs/cluster_videos.json {cluster: ["<part>/<key>", ...]} (clusters of >= 2 clips)
      Jsons/cross_video_pairs/<cluster>.json      [pair record, ...], indent 2
      Videos/<part>/<key>.mp4                     hard link of EXPORT/clips/<clip_id>.mp4

A record describes the exported clip file itself: `cut` = `face_cut` = [0, n_frames], `crop` =
the whole frame ([x0, x1, y0, y1] order, as published), `ann_frame_idx` a frame of that file, so
the published loader (video_base_path = Videos/<part>, metadata.path = "<key>.mp4") decodes
exactly the frames our samples train on. One annotated frame per clip, as published (step6-2
reads mask_annotation[ann_frame_idx] for every mask_map id, so no other frame can be added): the
frames are chosen together so that the most cross-pair edges keep both ends, then the most kept
subjects, then the earliest (choose_frames); subjects of other frames are counted, not written.

Round trip: a clip imported by import_opens2v keeps its published key, part, pre_define and
fore/background aesthetic scores in DATASET/opens2v_keys.parquet, and this writer reuses them,
so export -> import -> export gives the same bytes.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..recipe_keys import need, take

FORMAT_DIR = "opens2v"
KEYS_TABLE = "opens2v_keys.parquet"          # written by import_opens2v: clip_id -> published key
RECORDS_DIR = "Jsons/mask_and_bbox"           # OpenS2V-5M: Jsons/mask_and_bbox/total_partN.json
PAIRS_DIR = "Jsons/cross_video_pairs"         # OpenS2V-5M: Jsons/cross_video_pairs/cluster_videos.json + <cluster>.json
CLUSTERS_FILE = "cluster_videos.json"
VIDEOS_DIR = "Videos"                         # OpenS2V-5M: Videos/total_partN/
RECORD_INDENT = 4                             # step5-0/6-0 merge_json: json.dump(merged, f, indent=4)
PAIR_INDENT = 2                               # step6-2: json.dump(temp_match_data, f, indent=2)
CLUSTER_INDENT = 4                            # step6-1: json.dump(clustered_data, f, indent=4)
PAIR_KINDS = ("cross_clip", "cross_video")
BOX_FORMAT = "xyxy"
VIDEO_MODES = ("link", "copy")
SCORE_FIELDS = ("tech", "motion", "aesthetic")
CFG_KEYS = ("part", "metadata_scores", "videos")
CATEGORIES = ("face", "person", "animal", "object")

# The published shape, key by key (docs/opens2v-format.md). A type tuple lists what a value may
# be; None means we write null where we do not measure the value.
NUM = (int, float)
METADATA_SHAPE = {
    "cut": [int], "crop": [int], "tech": NUM + (type(None),), "motion": NUM + (type(None),),
    "fps": NUM, "num_frames": int, "resolution": {"height": int, "width": int}, "cap": [str], "path": str,
    "aesthetic": NUM + (type(None),), "face_cut": [int], "face_cap_qwen": (str, type(None)),
}
WORD_TAGS_SHAPE = {"background": [str], "subject": [str], "object": [str], "pre_define": [str]}
ANNOTATION_ITEM_SHAPE = {"class_name": str, "bbox": [float], "gme_score": NUM + (type(None),),
                         "aes_score": NUM + (type(None),)}
MASK_SHAPE = {"size": [int], "counts": str, "score": ([float], type(None))}
PAIR_SHAPE = {"cur_id": str, "aft_id": str, "cur_class_name": str, "aft_class_name": str,
              "text_similarity": NUM + (type(None),), "image_similarity": NUM + (type(None),),
              "cur_frame_idx": int, "aft_frame_idx": int}


# ------------------------------------------------------------------ keys and clusters

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def cluster_of_key(key: str) -> str:
    """The cluster (source video) of a clip key, by the published loader's rule: the text before
    "_segment", else before "_part" (step6-1_get_cluster.py, demo_dataloader.py)."""
    cluster = key.split("_segment")[0]
    return key.split("_part")[0] if cluster == key else cluster


def native_key(clip_id: str, group_id: str | None) -> str:
    """The key of a clip we made: "<group>_segment_<clip_id>", so cluster_of_key gives its group
    (the long source video: cross_video pairs stay inside it). Characters that are not safe in a
    file name become "-", and a "_segment" inside the group would cut it short, so it is spelt
    "-segment"."""
    group = _UNSAFE.sub("-", str(group_id or clip_id)).replace("_segment", "-segment") or "clip"
    return f"{group}_segment_{_UNSAFE.sub('-', clip_id)}"


def file_name(name: str) -> str:
    """`name` as one file name: the loader opens <cluster>.json and <key>.mp4 as they are, so only a
    path separator (or an empty / dot name) is replaced."""
    safe = name.replace("/", "-").replace(os.sep, "-").replace("\0", "-")
    return safe if safe not in ("", ".", "..") else f"_{safe}"


def pair_id_of(part: str, key: str) -> str:
    """cur_id / aft_id of a pair record and the entries of cluster_videos.json: "<part>/<key>"
    (demo_dataloader.py: main_data_id = <part folder> + "/" + key)."""
    return f"{part}/{key}"


# ------------------------------------------------------------------ deterministic JSON

def _clean(v):
    """A JSON value with NaN/inf as null, numpy scalars as Python numbers."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float) or hasattr(v, "item"):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


def dumps(obj, indent: int) -> str:
    """json.dumps as the published files are written (ASCII, insertion order, repr floats)."""
    return json.dumps(_clean(obj), indent=indent, ensure_ascii=True, allow_nan=False)


def write_keyed_records(path: Path, items, indent: int = RECORD_INDENT) -> int:
    """Write {key: record} for `items` (key, record) already in key order, one record at a time:
    the same bytes as json.dump(dict(items), indent=indent), without holding the whole dict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    pad = " " * indent
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for key, record in items:
            f.write("{\n" if n == 0 else ",\n")
            body = dumps(record, indent).replace("\n", "\n" + pad)
            f.write(f"{pad}{json.dumps(key)}: {body}")
            n += 1
        f.write("\n}" if n else "{}")
    return n


# ------------------------------------------------------------------ shape check

def shape_problems(value, shape, where: str = "") -> list[str]:
    """Where `value` differs from a published shape (dict: exactly these keys; [t]: a list of t;
    tuple: one of; type: isinstance, bool never a number)."""
    out: list[str] = []
    if isinstance(shape, tuple):
        if any(not shape_problems(value, s, where) for s in shape):
            return []
        return [f"{where}: {type(value).__name__} is none of {shape}"]
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        if set(value) != set(shape):
            return [f"{where}: keys {sorted(value)} != published {sorted(shape)}"]
        for k, s in shape.items():
            out += shape_problems(value[k], s, f"{where}.{k}")
        return out
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        for i, v in enumerate(value):
            out += shape_problems(v, shape[0], f"{where}[{i}]")
        return out
    if isinstance(value, bool) and shape is not bool:
        return [f"{where}: bool where {shape.__name__} was expected"]
    if shape is float and isinstance(value, int):
        return [f"{where}: int where float was expected"]
    return [] if isinstance(value, shape) else [f"{where}: {type(value).__name__} is not {shape.__name__}"]


def record_problems(record: dict) -> list[str]:
    """Differences of one clip record from the published per-clip shape (none = same keys and
    types at every level)."""
    if not isinstance(record, dict) or set(record) != {"metadata", "word_tags", "annotation"}:
        return [f"record: keys {sorted(record) if isinstance(record, dict) else record!r} != "
                "['annotation', 'metadata', 'word_tags']"]
    out = shape_problems(record["metadata"], METADATA_SHAPE, "metadata")
    out += shape_problems(record["word_tags"], WORD_TAGS_SHAPE, "word_tags")
    ann = record["annotation"]
    if not isinstance(ann, dict) or set(ann) != {"ann_frame_data", "mask_map", "mask_annotation"}:
        return out + ["annotation: keys differ from ['ann_frame_data', 'mask_annotation', 'mask_map']"]
    frame_shape = {"ann_frame_idx": int, "annotations": [ANNOTATION_ITEM_SHAPE], "box_format": str,
                   "img_width": int, "img_height": int, "foreground_ase_score": NUM + (type(None),),
                   "background_ase_score": NUM + (type(None),)}
    out += shape_problems(ann["ann_frame_data"], frame_shape, "annotation.ann_frame_data")
    ids = [str(i) for i in range(1, len(ann["ann_frame_data"].get("annotations") or []) + 1)]
    if list(ann["mask_map"]) != ids:
        out.append(f"annotation.mask_map: ids {list(ann['mask_map'])} != {ids}")
    for k, v in ann["mask_map"].items():
        out += shape_problems(v, {"class_name": str}, f"annotation.mask_map.{k}")
    frame = str(ann["ann_frame_data"].get("ann_frame_idx"))
    if list(ann["mask_annotation"]) != [frame]:
        out.append(f"annotation.mask_annotation: frames {list(ann['mask_annotation'])} != [{frame!r}]")
    for k, v in (ann["mask_annotation"].get(frame) or {}).items():
        out += shape_problems(v, MASK_SHAPE, f"annotation.mask_annotation.{frame}.{k}")
    return out


# ------------------------------------------------------------------ reading the dataset

def _read(path: Path, columns: list[str] | None = None, filters=None) -> list[dict]:
    if not path.exists():
        return []
    have = set(pq.read_schema(path).names)
    cols = None if columns is None else [c for c in columns if c in have]
    return pq.read_table(path, columns=cols, filters=filters).to_pylist()


def _imported_keys(dataset: Path) -> dict[str, dict]:
    rows = _read(dataset / KEYS_TABLE, filters=[("kind", "=", "clip"), ("status", "=", "ok")])
    return {r["clip_id"]: r for r in rows if r.get("clip_id") and r.get("key")}


def _quality(row: dict) -> dict:
    try:
        q = json.loads(row["quality"]) if row.get("quality") else {}
    except ValueError:
        q = {}
    return q if isinstance(q, dict) else {}


def _num(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def _first_score(columns: list[str], *rows: dict):
    """The first of `columns` with a value, looked up in each row in turn."""
    for col in columns:
        for row in rows:
            v = _num(row.get(col)) if row else None
            if v is not None:
                return float(v)
    return None


# ------------------------------------------------------------------ one record

def _frame_in_export(subject: dict, sample: dict) -> int | None:
    """The subject's frame in the exported clip file: the dataset frame as is, or by its time in
    a re-cut clip (export.clip); None past the clip's end."""
    n = int(sample.get("n_frames") or 0)
    if sample.get("recut"):
        t = subject.get("time_s")
        fps = float(sample.get("fps") or 0)
        if t is None or fps <= 0:
            return None
        idx = int(round(float(t) * fps))
    else:
        idx = subject.get("frame_idx")
        if idx is None:
            return None
        idx = int(idx)
    return idx if 0 <= idx < n else None


def frames_of(subjects: list[dict], sample: dict, skipped: Counter) -> dict[int, list[tuple[dict, dict]]]:
    """The clip's kept, complete subjects by their frame in the exported clip file, each with its
    mask as {"size", "counts"}; what cannot be written is counted in `skipped`."""
    w, h = int(sample["width"]), int(sample["height"])
    by_frame: dict[int, list[tuple[dict, dict]]] = defaultdict(list)
    for s in subjects:
        if s.get("category") not in CATEGORIES or not s.get("bbox") or not s.get("mask_rle") or not s.get("phrase"):
            skipped["subject_incomplete"] += 1
            continue
        try:
            rle = json.loads(s["mask_rle"])
            size = [int(v) for v in rle["size"]]
            counts = rle["counts"]
        except (ValueError, KeyError, TypeError):
            skipped["subject_bad_mask"] += 1
            continue
        if size != [h, w] or not isinstance(counts, str):
            skipped["subject_mask_size_differs_from_clip"] += 1
            continue
        f = _frame_in_export(s, sample)
        if f is None:
            skipped["subject_outside_exported_clip"] += 1
            continue
        by_frame[f].append((s, {"size": size, "counts": counts}))
    return dict(by_frame)


MAX_FRAME_ROUNDS = 20       # coordinate ascent rounds (it stops as soon as no clip changes)


def choose_frames(candidates: dict[str, dict[int, list]], edges: list[tuple[str, int, str, int]]) -> dict[str, int]:
    """The one annotated frame per clip (OpenS2V-5M records hold one): the choice that keeps the
    most cross-pair edges (clip, frame) - (clip, frame) with both ends on their clip's frame, then
    the most subjects, then the earliest frame, by coordinate ascent over the clips in id order
    (each change raises (edges kept, subjects, -frames), so it ends; deterministic)."""
    incident: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for ca, fa, cb, fb in edges:
        if ca in candidates and cb in candidates and ca != cb:
            incident[ca].append((fa, cb, fb))
            incident[cb].append((fb, ca, fa))
    pair_frames = {c: Counter(f for f, _, _ in incident[c]) for c in candidates}
    choice = {c: min(fr, key=lambda f: (-pair_frames[c][f], -len(fr[f]), f)) for c, fr in candidates.items()}
    for _ in range(MAX_FRAME_ROUNDS):
        changed = False
        for c in sorted(candidates):
            if not incident[c]:
                continue
            fr = candidates[c]

            def rank(f, c=c, fr=fr):
                kept = sum(1 for mine, other, theirs in incident[c] if mine == f and choice[other] == theirs)
                return (-kept, -len(fr[f]), f)
            best = min(fr, key=rank)
            if best != choice[c]:
                choice[c], changed = best, True
        if not changed:
            break
    return choice


def _mask_score(q: dict):
    v = q.get("mask_score")
    if isinstance(v, list):
        v = [float(x) for x in v if isinstance(x, (int, float)) and not isinstance(x, bool)]
        return v or None
    return [float(v)] if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def clip_record(sample: dict, clip: dict, caption: dict, frame: int, objects: list, imported: dict | None,
                key: str, scores: dict[str, list[str]]) -> tuple[dict, list]:
    """(record, [(subject_id, frame, phrase)]) of one kept sample annotated on `frame` with
    `objects` ([(subject row, mask)], see frames_of)."""
    n, w, h = int(sample["n_frames"]), int(sample["width"]), int(sample["height"])
    objects = sorted(objects, key=lambda it: (list(it[0]["bbox"]), it[0]["phrase"], it[0]["subject_id"]))
    cap = clip.get("caption")
    # the caption as written (samples hold it on one line for trainers; the record keeps its text)
    long = caption.get("long") or sample.get("caption_long") or caption.get("short") or sample.get("caption_short")

    def tags(name: str) -> list[str]:
        v = sample.get(name)
        if v is None:
            v = caption.get(name)
        return [str(t) for t in (v or [])]

    from ..subjects.phrases import FIXED_CATEGORIES
    pre_define = list(imported["pre_define"]) if imported and imported.get("pre_define") is not None \
        else list(FIXED_CATEGORIES)
    metadata = {
        "cut": [0, n], "crop": [0, w, 0, h],
        "tech": _first_score(scores["tech"], sample, clip),
        "motion": _first_score(scores["motion"], sample, clip),
        "fps": float(sample["fps"]), "num_frames": n, "resolution": {"height": h, "width": w},
        "cap": [cap] if cap else [], "path": f"{file_name(key)}.mp4",
        "aesthetic": _first_score(scores["aesthetic"], sample, clip),
        "face_cut": [0, n], "face_cap_qwen": long,
    }
    word_tags = {"background": tags("background_tags"), "subject": tags("subject_tags"),
                 "object": tags("object_tags"), "pre_define": [str(t) for t in pre_define]}
    annotations, mask_map, masks, placed = [], {}, {}, []
    for i, (s, rle) in enumerate(objects, 1):
        q = _quality(s)
        annotations.append({"class_name": s["phrase"], "bbox": [float(v) for v in s["bbox"]],
                            "gme_score": _num(q.get("gme_score")), "aes_score": _num(q.get("aesthetic"))})
        mask_map[str(i)] = {"class_name": s["phrase"]}
        masks[str(i)] = {"size": rle["size"], "counts": rle["counts"], "score": _mask_score(q)}
        placed.append((s["subject_id"], frame, s["phrase"]))
    fg = _num(imported.get("foreground_aes_score")) if imported else None
    bg = _num(imported.get("background_aes_score")) if imported else None
    annotation = {
        "ann_frame_data": {"ann_frame_idx": frame, "annotations": annotations, "box_format": BOX_FORMAT,
                           "img_width": w, "img_height": h, "foreground_ase_score": fg, "background_ase_score": bg},
        "mask_map": mask_map,
        "mask_annotation": {str(frame): masks},
    }
    return {"metadata": metadata, "word_tags": word_tags, "annotation": annotation}, placed


# ------------------------------------------------------------------ pairs

def _text_similarity(verdicts) -> float | None:
    """The published text similarity an imported pair carries in its verdicts."""
    for v in verdicts or []:
        if isinstance(v, str) and v.startswith("opens2v:text_similarity="):
            try:
                f = float(v.split("=", 1)[1])
            except ValueError:
                return None
            return f if math.isfinite(f) else None
    return None


def pair_records(pairs: list[dict], placed: dict[str, tuple[str, str, int, str]], skipped: Counter) -> list[dict]:
    """One published pair record per (target, reference) of the kept cross pairs whose two subjects
    are both in the export; the pair's similarity (identity cosine to its first reference) goes
    to its first reference."""
    out = []
    for p in pairs:
        t = placed.get(p.get("target_subject_id"))
        for i, ref in enumerate(p.get("reference_subject_ids") or []):
            r = placed.get(ref)
            if t is None or r is None:
                skipped["pair_subject_not_exported"] += 1
                continue
            out.append({"cur_id": pair_id_of(t[0], t[1]), "aft_id": pair_id_of(r[0], r[1]),
                        "cur_class_name": t[3], "aft_class_name": r[3],
                        "text_similarity": _text_similarity(p.get("verdicts")),
                        "image_similarity": _num(p.get("similarity")) if i == 0 else None,
                        "cur_frame_idx": t[2], "aft_frame_idx": r[2]})
    return sorted(out, key=_pair_sort_key)


def _pair_sort_key(r: dict):
    def num(v):
        return (v is None, v if v is not None else 0.0)
    return (r["cur_id"], r["aft_id"], r["cur_class_name"], r["aft_class_name"], r["cur_frame_idx"],
            r["aft_frame_idx"], num(r["image_similarity"]), num(r["text_similarity"]))


# ------------------------------------------------------------------ the writer

def _place_video(src: Path, dest: Path, mode: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if mode == "link":
        try:
            os.link(src, dest)
            return
        except OSError:
            pass                      # another file system: a copy, same bytes
    shutil.copyfile(src, dest)


def _settings(cfg: dict) -> dict:
    o = take(need(cfg, "opens2v", "export"), CFG_KEYS, "export.opens2v")
    if o["videos"] not in VIDEO_MODES:
        raise ValueError(f"export.opens2v.videos must be one of {VIDEO_MODES}, got {o['videos']!r}")
    scores = o["metadata_scores"] or {}
    missing = [f for f in SCORE_FIELDS if f not in scores]
    if missing:
        raise ValueError(f"export.opens2v.metadata_scores needs {list(SCORE_FIELDS)}, missing {missing}")
    o["metadata_scores"] = {f: [str(c) for c in (scores[f] or [])] for f in SCORE_FIELDS}
    if not str(o["part"]) or "/" in str(o["part"]):
        raise ValueError(f"export.opens2v.part must be a folder name, got {o['part']!r}")
    return o


def write_opens2v(export_dir: Path, samples: pa.Table, cfg: dict, dataset: Path) -> dict:
    """Write EXPORT/opens2v/ in the OpenS2V-5M layout (module doc) for the kept samples.

    `cfg` is the recipe's export section (its `opens2v` block); `dataset` the dataset the samples
    came from (subjects.parquet, pairs.parquet, clips.parquet, captions.parquet, and
    opens2v_keys.parquet of an imported dataset). Replaces EXPORT/opens2v as a whole; returns
    counts, the files written and their bytes."""
    from ...engine.writer import replace_dir
    export_dir, dataset = Path(export_dir), Path(dataset)
    o = _settings(cfg)
    kept = [s for s in samples.to_pylist() if s.get("keep")]
    clip_ids = {s["clip_id"] for s in kept}
    clips = {r["clip_id"]: r for r in _read(dataset / "clips.parquet") if r["clip_id"] in clip_ids}
    captions = {r["clip_id"]: r for r in _read(dataset / "captions.parquet",
                                               ["clip_id", "short", "long", "subject_tags", "object_tags",
                                                "background_tags"]) if r["clip_id"] in clip_ids}
    subj_cols = ["subject_id", "clip_id", "frame_idx", "time_s", "phrase", "category", "bbox", "mask_rle",
                 "quality", "keep"]
    subjects: dict[str, list[dict]] = defaultdict(list)
    for r in _read(dataset / "subjects.parquet", subj_cols, filters=[("keep", "=", True)]):
        if r["clip_id"] in clip_ids:
            subjects[r["clip_id"]].append(r)
    pairs = [p for p in _read(dataset / "pairs.parquet") if p.get("keep") and p.get("kind") in PAIR_KINDS]
    imported = _imported_keys(dataset)

    skipped: Counter = Counter()
    entries: dict[str, tuple[str, dict]] = {}            # key -> (part, sample)
    for s in sorted(kept, key=lambda s: s["sample_id"]):
        imp = imported.get(s["clip_id"])
        key = imp["key"] if imp else native_key(s["clip_id"], s.get("group_id") or s.get("video_id"))
        part = (imp.get("part") if imp else None) or str(o["part"])
        if not s.get("clip_path") or not (export_dir / s["clip_path"]).is_file():
            skipped["clip_file_missing"] += 1
            continue
        if not s.get("n_frames") or not s.get("width") or not s.get("height") or not s.get("fps"):
            skipped["clip_size_unknown"] += 1
            continue
        if key in entries:
            skipped["duplicate_key"] += 1
            continue
        entries[key] = (part, s)

    candidates: dict[str, dict[int, list]] = {}
    where: dict[str, tuple[str, int]] = {}                # subject_id -> (clip_id, frame in the export)
    for key in sorted(entries):
        s = entries[key][1]
        fr = frames_of(subjects.get(s["clip_id"], []), s, skipped)
        if fr:
            candidates[s["clip_id"]] = fr
            where.update({row["subject_id"]: (s["clip_id"], f) for f, items in fr.items() for row, _ in items})
        else:
            skipped["no_subject_to_annotate"] += 1
    edges = [(*where[p["target_subject_id"]], *where[r]) for p in pairs for r in p.get("reference_subject_ids") or []
             if p["target_subject_id"] in where and r in where]
    frames = choose_frames(candidates, edges)

    records: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    placed: dict[str, tuple[str, str, int, str]] = {}
    n_subjects = 0
    for key in sorted(entries):
        part, s = entries[key]
        if s["clip_id"] not in frames:
            continue
        frame = frames[s["clip_id"]]
        skipped["subject_on_other_frame"] += sum(len(v) for f, v in candidates[s["clip_id"]].items() if f != frame)
        rec, objs = clip_record(s, clips.get(s["clip_id"], {}), captions.get(s["clip_id"], {}), frame,
                                candidates[s["clip_id"]][frame], imported.get(s["clip_id"]), key, o["metadata_scores"])
        records[part].append((key, rec))
        n_subjects += len(objs)
        for sid, frame, phrase in objs:
            placed[sid] = (part, key, frame, phrase)
    pair_recs = pair_records(pairs, placed, skipped)

    members: dict[str, list[str]] = defaultdict(list)
    for part, items in records.items():
        for key, _ in items:
            members[cluster_of_key(key)].append(pair_id_of(part, key))
    clusters = {c: sorted(m) for c, m in sorted(members.items()) if len(m) > 1}   # step6-1: clusters of > 1
    by_cluster: dict[str, list[dict]] = {c: [] for c in clusters}
    for r in pair_recs:
        by_cluster.setdefault(cluster_of_key(r["cur_id"].split("/", 1)[1]), []).append(r)

    def build(tmp: Path) -> None:
        for part in sorted(records):
            write_keyed_records(tmp / RECORDS_DIR / f"{part}.json", records[part])
            for key, _ in records[part]:
                _place_video(export_dir / entries[key][1]["clip_path"], tmp / VIDEOS_DIR / part / f"{file_name(key)}.mp4",
                             o["videos"])
        pdir = tmp / PAIRS_DIR
        pdir.mkdir(parents=True, exist_ok=True)
        (pdir / CLUSTERS_FILE).write_text(dumps(clusters, CLUSTER_INDENT), encoding="ascii")
        for c in sorted(by_cluster):
            (pdir / f"{file_name(c)}.json").write_text(dumps(by_cluster[c], PAIR_INDENT), encoding="ascii")

    out_dir = export_dir / FORMAT_DIR
    replace_dir(build, out_dir)
    files = sorted(str(p.relative_to(export_dir)) for p in out_dir.rglob("*") if p.is_file())
    json_bytes = sum((export_dir / f).stat().st_size for f in files if f.endswith(".json"))
    return {"format": "opens2v", "dir": FORMAT_DIR,
            "parts": {p: len(v) for p, v in sorted(records.items())},
            "n_records": sum(len(v) for v in records.values()), "n_subjects": n_subjects,
            "n_pair_records": len(pair_recs), "n_clusters": len(clusters),
            "skipped": dict(sorted(skipped.items())), "json_bytes": json_bytes,
            "files": [f for f in files if f.endswith(".json")],
            "n_videos": sum(1 for f in files if f.endswith(".mp4"))}
