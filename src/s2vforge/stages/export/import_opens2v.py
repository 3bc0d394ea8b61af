"""`s2vforge import-opens2v`: the published OpenS2V-5M JSON files read into our tables.

    s2vforge import-opens2v Jsons/mask_and_bbox/total_part1.json Jsons/cross_video_pairs/*.json \\
        --videos Videos --out DATASET

What a file holds is recognised by its content (docs/opens2v-format.md):

- {clip key: record} (Jsons/mask_and_bbox/total_partN.json, or the metadata-only
  Jsons/total_partN.json): one clip per record -> videos, clips (+ clips/<clip_id>.mp4 cut and
  cropped from the video), captions, subjects (+ subjects/<subject_id>.png RGBA crops);
- [pair record, ...] (Jsons/cross_video_pairs/<cluster>.json, step6-2) or {cluster: [pair
  record, ...]}: one pairs.parquet row per record, resolved after every clip is read;
- {cluster: ["<part>/<key>", ...]} (cluster_videos.json): the clusters follow from the keys, so
  it is counted and skipped.

The files are tens of GB, so they are never loaded whole: `iter_json_entries` walks the top-level
object or array with json.JSONDecoder.raw_decode over a buffer refilled as it goes, and a record
that does not parse (or lacks a required key) becomes an error row (file:offset and the reason)
of DATASET/opens2v_keys.parquet while the run goes on. That table also keeps, per imported clip,
its published key, part, pre_define and fore/background aesthetic scores, which the OpenS2V
writer (opens2v_json.py) reuses so export -> import -> export gives the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Optional

import pyarrow as pa

from ...schema import (CAPTION_SCHEMA, PAIR_SCHEMA, SUBJECT_SCHEMA, VIDEO_SCHEMA, TableSpec, clip_id_for,
                       clip_schema, display_path, video_id_for)
from .opens2v_json import KEYS_TABLE, cluster_of_key

READ_CHUNK = 1 << 22               # characters read at a time (the published files are ASCII: = bytes)
BATCH_ROWS = 20_000                # rows held as Python dicts before they become Arrow (compact) chunks
CAPTIONER = "opens2v"              # captions.parquet captioner of imported captions
BACKEND = "opens2v"                # subjects.parquet backend of imported boxes (GroundingDINO + SAM 2.1 upstream)
EMBEDDER = "opens2v"               # pairs.parquet embedder of imported pairs (GME upstream)
# the published clip-level scores, in columns of their own: their scales are not ours
# (docs/opens2v-format.md); `aesthetic` is the LAION predictor, as our score_aesthetic
SCORE_COLUMNS = {"tech": "score_opens2v_tech", "motion": "score_opens2v_motion", "aesthetic": "score_aesthetic"}

KEYS_SCHEMA = pa.schema([
    ("kind", pa.string()),                  # clip | pair | file
    ("key", pa.string()),                   # the published clip key (a pair's: its cur_id key)
    ("clip_id", pa.string()),
    ("part", pa.string()),                  # total_partN (the JSON file's name, or the "<part>/" of ids)
    ("file", pa.string()),
    ("offset", pa.int64()),                 # character offset of the record in `file`
    ("status", pa.string()),                # ok | error | duplicate
    ("error", pa.string()),
    ("pre_define", pa.list_(pa.string())),
    ("foreground_aes_score", pa.float64()),
    ("background_aes_score", pa.float64()),
    ("cut", pa.list_(pa.int64())),          # as published (source-video frames)
    ("face_cut", pa.list_(pa.int64())),
])


# ============================================================== streaming JSON

@dataclass
class Entry:
    """One top-level entry of a JSON file: a dict item (key = its key) or an array element
    (key = its index); `error` instead of `value` when it could not be read."""
    offset: int
    key: str | int | None
    value: object = None
    error: str | None = None


_STRUCT = re.compile(r'["{}\[\]]')
_IN_STRING = re.compile(r'["\\]')
_SCALAR_END = re.compile(r'[\s,}\]]')
_WS = " \t\r\n"


class _Buffer:
    """A window on a text file: `buf` holds characters from file offset `base` on."""

    def __init__(self, f, chunk: int) -> None:
        self.f, self.chunk = f, max(1, int(chunk))
        self.buf, self.base, self.eof = "", 0, False
        self.dec = json.JSONDecoder()

    def more(self) -> bool:
        if self.eof:
            return False
        data = self.f.read(self.chunk)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def drop(self, pos: int) -> int:
        """Forget what lies before `pos` once it is most of the buffer; the new position."""
        if pos >= self.chunk and pos * 2 >= len(self.buf):
            self.buf = self.buf[pos:]
            self.base += pos
            return 0
        return pos

    def skip_ws(self, pos: int) -> tuple[int, str | None]:
        """(position, character) of the next non-blank character; None at the end of the file."""
        while True:
            n = len(self.buf)
            while pos < n and self.buf[pos] in _WS:
                pos += 1
            if pos < n:
                return pos, self.buf[pos]
            if not self.more():
                return pos, None

    def value(self, pos: int) -> tuple[object, int, str | None]:
        """(value, end, error) of the JSON value starting at `pos`. The C decoder first; when it
        fails (the value runs past the buffer, or is broken) the value's extent is found by
        scanning its brackets and strings, so a broken record is skipped whole."""
        try:
            v, end = self.dec.raw_decode(self.buf, pos)
            if end < len(self.buf) or self.eof:
                return v, end, None
        except json.JSONDecodeError:
            pass
        end = self._scan_end(pos)
        if end is None:
            return None, len(self.buf), "unterminated value (the file ends inside it)"
        try:
            return json.loads(self.buf[pos:end]), end, None
        except json.JSONDecodeError as e:
            return None, end, f"not valid JSON: {e.msg} at offset {self.base + pos + e.pos}"

    def _scan_end(self, pos: int) -> int | None:
        first = self.buf[pos]
        if first not in '{["':
            i = pos
            while True:
                m = _SCALAR_END.search(self.buf, i)
                if m:
                    return m.start()
                i = len(self.buf)
                if not self.more():
                    return len(self.buf)
        depth, in_string, i = 0, False, pos
        while True:
            if in_string:
                m = _IN_STRING.search(self.buf, i)
                if m is not None and m.group() == "\\" and m.end() < len(self.buf):
                    i = m.end() + 1
                    continue
                if m is not None and m.group() == '"':
                    in_string, i = False, m.end()
                    if depth == 0:
                        return i
                    continue
                i = m.start() if m is not None else len(self.buf)
            else:
                m = _STRUCT.search(self.buf, i)
                if m is not None:
                    ch, i = m.group(), m.end()
                    if ch == '"':
                        in_string = True
                    elif ch in "{[":
                        depth += 1
                    else:
                        depth -= 1
                        if depth <= 0:
                            return i
                    continue
                i = len(self.buf)
            if not self.more():
                return None


def iter_json_entries(path: str | os.PathLike, chunk_chars: int | None = None) -> Iterator[Entry]:
    """The top-level entries of a JSON object or array file, one at a time (module doc).

    A broken entry is reported and skipped; a break in the top-level structure itself (or bytes
    that are not UTF-8) ends the file with an error entry."""
    with open(path, encoding="utf-8", newline="") as f:
        b = _Buffer(f, chunk_chars or READ_CHUNK)
        try:
            yield from _entries(b)
        except UnicodeDecodeError as e:
            yield Entry(b.base + len(b.buf), None, error=f"not UTF-8 text: {e.reason}")


def _entries(b: _Buffer) -> Iterator[Entry]:
    pos, ch = b.skip_ws(0)
    if ch is None:
        yield Entry(0, None, error="empty file")
        return
    if ch not in "{[":
        yield Entry(b.base + pos, None, error=f"not a JSON object or array (starts with {ch!r})")
        return
    is_dict, close = ch == "{", "}" if ch == "{" else "]"
    pos += 1
    index = 0
    while True:
        pos, ch = b.skip_ws(pos)
        if ch == close:
            return
        if index:
            if ch != ",":
                where = "the end of the file" if ch is None else repr(ch)
                yield Entry(b.base + pos, None, error=f"expected ',' or {close!r} between entries, found {where}")
                return
            pos, ch = b.skip_ws(pos + 1)
        if ch is None:
            yield Entry(b.base + pos, None, error="the file ends inside the top-level "
                                                   + ("object" if is_dict else "array"))
            return
        key: str | int = index
        if is_dict:
            if ch != '"':
                yield Entry(b.base + pos, None, error=f"expected a key string, found {ch!r}")
                return
            key, end, err = b.value(pos)
            if err:
                yield Entry(b.base + pos, None, error=f"bad key: {err}")
                return
            pos, ch = b.skip_ws(end)
            if ch != ":":
                yield Entry(b.base + pos, key, error=f"expected ':' after key {key!r}")
                return
            pos, ch = b.skip_ws(pos + 1)
            if ch is None:
                yield Entry(b.base + pos, key, error="the file ends before the value")
                return
        start = b.base + pos
        value, end, err = b.value(pos)
        yield Entry(start, key, None if err else value, err)
        if err and end >= len(b.buf) and b.eof:
            return
        index += 1
        pos = b.drop(end)


# ============================================================== record checks

def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def record_problem(rec) -> str | None:
    """Why a clip record cannot be imported (a required key missing or of the wrong type); None
    when it can."""
    if not isinstance(rec, dict) or not isinstance(rec.get("metadata"), dict):
        return "no 'metadata' object"
    m = rec["metadata"]
    path = m.get("path")
    if not isinstance(path, str) or not path.strip():
        return "metadata.path missing"
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        return f"metadata.path {path!r} must be relative, inside --videos"
    cut = m.get("face_cut") if m.get("face_cut") is not None else m.get("cut")
    if not (isinstance(cut, list) and len(cut) == 2 and all(_is_int(v) for v in cut) and 0 <= cut[0] < cut[1]):
        return f"metadata.face_cut/cut must be [start, end) frames, got {cut!r}"
    crop = m.get("crop")
    if not (isinstance(crop, list) and len(crop) == 4 and all(_is_int(v) for v in crop)
            and 0 <= crop[0] < crop[1] and 0 <= crop[2] < crop[3]):
        return f"metadata.crop must be [x0, x1, y0, y1] with x0 < x1, y0 < y1, got {crop!r}"
    if not _is_num(m.get("fps")) or m["fps"] <= 0:
        return f"metadata.fps must be a positive number, got {m.get('fps')!r}"
    for k in ("tech", "motion", "aesthetic"):
        if m.get(k) is not None and not _is_num(m[k]):
            return f"metadata.{k} must be a number, got {m[k]!r}"
    cap = m.get("cap")
    if cap is not None and not (isinstance(cap, list) and all(isinstance(c, str) for c in cap)) \
            and not isinstance(cap, str):
        return "metadata.cap must be a list of strings"
    tags = rec.get("word_tags")
    if tags is not None and not (isinstance(tags, dict) and all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in tags.values())):
        return "word_tags must map names to lists of strings"
    ann = rec.get("annotation")
    if ann is None:
        return None
    if not isinstance(ann, dict):
        return "annotation must be an object"
    fd = ann.get("ann_frame_data")
    if not isinstance(fd, dict) or not _is_int(fd.get("ann_frame_idx")) or not isinstance(fd.get("annotations"), list):
        return "annotation.ann_frame_data needs ann_frame_idx (int) and annotations (list)"
    for i, a in enumerate(fd["annotations"]):
        if not isinstance(a, dict) or not isinstance(a.get("class_name"), str) or not (
                isinstance(a.get("bbox"), list) and len(a["bbox"]) == 4 and all(_is_num(v) for v in a["bbox"])):
            return f"annotation.ann_frame_data.annotations[{i}] needs class_name and a 4-number bbox"
    if not isinstance(ann.get("mask_annotation"), dict) or not isinstance(ann.get("mask_map", {}), dict):
        return "annotation.mask_annotation / mask_map must be objects"
    return None


PAIR_KEYS = ("cur_id", "aft_id", "cur_class_name", "aft_class_name", "cur_frame_idx", "aft_frame_idx")


def pair_problem(rec) -> str | None:
    if not isinstance(rec, dict):
        return "not an object"
    missing = [k for k in PAIR_KEYS if k not in rec]
    if missing:
        return f"pair record lacks {missing}"
    if not all(isinstance(rec[k], str) for k in PAIR_KEYS[:4]) or not all(_is_int(rec[k]) for k in PAIR_KEYS[4:]):
        return "pair ids and class names must be strings, frame indices integers"
    for k in ("text_similarity", "image_similarity"):
        if rec.get(k) is not None and not _is_num(rec[k]):
            return f"{k} must be a number"
    return None


def _strip_part(pair_id: str) -> tuple[str | None, str]:
    """("total_part1", key) of "total_part1/key"; (None, key) of a bare key."""
    part, sep, key = pair_id.partition("/")
    return (part, key) if sep else (None, pair_id)


def part_of_file(path: Path) -> str:
    """The part a records file belongs to: its name (total_part3.json -> total_part3)."""
    return Path(path).name.split(".")[0]


# ============================================================== rows

class _Rows:
    """Rows of one table, turned into Arrow every BATCH_ROWS rows (memory), sorted at the end."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec, self.rows, self.chunks = spec, [], []

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= BATCH_ROWS:
            self.chunks.append(self.spec.table(self.rows))
            self.rows = []

    def table(self) -> pa.Table:
        t = pa.concat_tables(self.chunks + [self.spec.table(self.rows)])
        return t.sort_by(self.spec.sort_by)


@dataclass
class _Subject:
    subject_id: str
    class_name: str
    category: str
    keep: bool


@dataclass
class _Clip:
    """What pair records resolve against."""
    clip_id: str
    video_id: str
    group_id: str
    ann_frame: int | None
    subjects: list[_Subject] = field(default_factory=list)


def _int_box(bbox, w: int, h: int) -> list[int]:
    x0, y0 = max(0, int(math.floor(bbox[0]))), max(0, int(math.floor(bbox[1])))
    x1, y1 = min(w, int(math.ceil(bbox[2]))), min(h, int(math.ceil(bbox[3])))
    return [x0, y0, x1, y1]


def _category(class_name: str, subject_tags: list[str]) -> tuple[str, str | None]:
    """(category, check) of a published class name: our lexicon (stages/subjects/phrases.py);
    a word_tags subject the lexicon calls an object is a person (OpenS2V-Nexus: subjects are
    humans or animals); scene words are not subjects (check background_phrase)."""
    from ..subjects.phrases import _singular, category_of
    words = class_name.lower().split()
    cat = category_of(" ".join(words[:-1] + [_singular(words[-1])]) if words else "")
    if cat in ("background", "excluded"):
        return "object", f"{cat}_phrase"
    if cat == "object" and class_name in subject_tags:
        return "person", None
    return cat, None


def _rle(obj) -> dict | None:
    if not isinstance(obj, dict):
        return None
    try:
        size = [int(v) for v in obj["size"]]
        counts = obj["counts"]
    except (KeyError, TypeError, ValueError):
        return None
    if len(size) != 2 or not isinstance(counts, (str, list)):
        return None
    return {"size": size, "counts": counts}


def _fit_mask(rle: dict, h: int, w: int):
    """The mask as an HxW bool array of the clip frame: the published frame size, or the encoder's
    even size (one row/column less); None when the sizes differ otherwise or the RLE is bad."""
    import numpy as np
    from ..subjects.rle import rle_to_mask
    try:
        m = rle_to_mask(rle)
    except ValueError:
        return None
    mh, mw = m.shape
    if (mh, mw) == (h, w):
        return m
    if 0 <= mh - h <= 1 and 0 <= mw - w <= 1:
        return np.ascontiguousarray(m[:h, :w])
    return None


# ============================================================== the import

class _Import:
    def __init__(self, videos_dir: Path, out: Path, recipe: dict | None, progress) -> None:
        from ...recipes import section
        self.videos_dir, self.out, self.progress = Path(videos_dir), Path(out), progress
        self.write_cfg = section(recipe, "write")
        self.videos = _Rows(TableSpec(VIDEO_SCHEMA, "video_id"))
        self.clips = _Rows(TableSpec(clip_schema(list(SCORE_COLUMNS.values())), "clip_id"))
        self.captions = _Rows(TableSpec(CAPTION_SCHEMA, "clip_id"))
        self.subjects = _Rows(TableSpec(SUBJECT_SCHEMA, "subject_id"))
        self.pairs = _Rows(TableSpec(PAIR_SCHEMA, "pair_id"))
        self.keys = _Rows(TableSpec(KEYS_SCHEMA, "key"))
        self.video_rows: dict[str, dict] = {}        # video_id -> row (counts filled at the end)
        self.video_of_path: dict[str, tuple[str, Path | None, object]] = {}
        self.by_key: dict[str, _Clip] = {}
        self.key_source: dict[str, str] = {}
        self.clip_key: dict[str, str] = {}
        self.pair_recs: list[tuple[str, int, str | None, dict]] = []
        self.pair_ids: set[str] = set()
        self.counts: Counter = Counter()
        self.errors: list[dict] = []
        self.scratch = self.out / ".work" / "opens2v"

    # -------------------------------------------------------- bookkeeping

    def _key_row(self, kind: str, file: str, offset: int, status: str, error: str | None = None, **kw) -> None:
        row = {"kind": kind, "file": file, "offset": offset, "status": status, "error": error, **kw}
        self.keys.add(row)
        self.counts[f"{kind}_{status}"] += 1
        if status == "error":
            self.errors.append({"file": file, "offset": offset, "key": kw.get("key"), "error": error})
        if self.progress is not None:
            self.progress({"key": kw.get("key") or f"{Path(file).name}:{offset}", "status": status})

    # -------------------------------------------------------- files

    def read_file(self, path: Path, chunk: int | None) -> None:
        file, part = str(path), part_of_file(path)
        for e in iter_json_entries(path, chunk):
            if e.error is not None:
                self._key_row("file" if e.key is None else "clip", file, e.offset, "error", e.error,
                              key=e.key if isinstance(e.key, str) else None, part=part)
                continue
            v = e.value
            if isinstance(v, dict) and "metadata" in v:
                if not isinstance(e.key, str):
                    self._key_row("clip", file, e.offset, "error", "a clip record outside a {key: record} object",
                                  part=part)
                    continue
                self.clip_record(file, e.offset, part, e.key, v)
            elif isinstance(v, dict) and "cur_id" in v:
                self.pair_recs.append((file, e.offset, part, v))
            elif isinstance(v, list) and all(isinstance(x, dict) for x in v) and v:
                for x in v:
                    self.pair_recs.append((file, e.offset, part, x))
            elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                self.counts["cluster_lists_skipped"] += 1
            elif isinstance(v, list) and not v:
                self.counts["empty_lists"] += 1
            else:
                key = e.key if isinstance(e.key, str) else None
                self._key_row("clip" if key else "file", file, e.offset, "error",
                              "not a clip record (no 'metadata'), pair record (no 'cur_id') or list of them",
                              key=key, part=part)

    # -------------------------------------------------------- videos

    def _video(self, rel: str, part: str) -> tuple[str, Path | None, object]:
        """(video_id, file or None, probe info or an error text) of a record's metadata.path,
        looked up as --videos/<part>/<path>, then --videos/<path>."""
        from ...media.probe import ProbeError, probe
        cache_key = f"{part}\0{rel}"
        if cache_key in self.video_of_path:
            return self.video_of_path[cache_key]
        found = next((p for p in (self.videos_dir / part / rel, self.videos_dir / rel) if p.is_file()), None)
        if found is None:
            vid = "v" + hashlib.blake2b(b"opens2v:" + rel.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()
            info: object = f"video not found: {rel!r} is in neither {self.videos_dir / part} nor {self.videos_dir}"
            shown = rel
        else:
            vid = video_id_for(found)
            shown = display_path(found)
            try:
                info = probe(found)
            except ProbeError as e:
                info = str(e)
        self.video_of_path[cache_key] = (vid, found, info)
        if vid not in self.video_rows:
            row = {"video_id": vid, "path": shown, "path_raw": os.fsencode(found) if found else rel.encode(),
                   "status": "error" if isinstance(info, str) else "ok", "error": info if isinstance(info, str) else None,
                   "group_id": None, "caption": None, "n_scenes": None}
            if not isinstance(info, str):
                row.update(duration_s=info.duration_s, fps=info.fps, vfr=None, n_frames=info.n_frames_header or None,
                           width=info.width, height=info.height, rotation=info.rotation, codec=info.codec,
                           has_audio=info.has_audio, size_bytes=info.size_bytes)
            self.video_rows[vid] = row
        return self.video_of_path[cache_key]

    # -------------------------------------------------------- one clip record

    def clip_record(self, file: str, offset: int, part: str, key: str, rec: dict) -> None:
        if key in self.key_source:
            self._key_row("clip", file, offset, "duplicate", f"key already imported from {self.key_source[key]}",
                          key=key, part=part)
            return
        if "/" in key or not key.strip():
            self._key_row("clip", file, offset, "error", f"key {key!r} is not a file name", key=key, part=part)
            return
        problem = record_problem(rec)
        if problem:
            self._key_row("clip", file, offset, "error", problem, key=key, part=part)
            return
        m = rec["metadata"]
        a, b = (m["face_cut"] if m.get("face_cut") is not None else m["cut"])
        sx, ex, sy, ey = m["crop"]
        vid, src, info = self._video(m["path"].replace("\\", "/"), part)
        clip_id = clip_id_for(vid, a, b)
        if clip_id in self.clip_key:
            self._key_row("clip", file, offset, "error",
                          f"same video and frames as key {self.clip_key[clip_id]!r} (clip {clip_id})", key=key, part=part)
            return
        self.key_source[key] = f"{file}:{offset}"
        self.clip_key[clip_id] = key
        group = cluster_of_key(key)
        video = self.video_rows[vid]
        if video.get("group_id") is None:
            video["group_id"] = group
        fps = info.fps if not isinstance(info, str) else float(m["fps"])
        reasons: list[dict] = []
        crop = [sx, sy, ex, ey]
        if isinstance(info, str):
            reasons.append({"code": "video_missing" if src is None else "video_unreadable", "column": None,
                            "bound": None, "text": f"{'video_missing' if src is None else 'video_unreadable'}: {info}"})
        else:
            crop = [min(sx, info.width), min(sy, info.height), min(ex, info.width), min(ey, info.height)]
            if crop[2] <= crop[0] or crop[3] <= crop[1]:
                reasons.append({"code": "crop_outside_frame", "column": None, "bound": None,
                                "text": f"crop_outside_frame: {m['crop']} in a {info.width}x{info.height} video"})
        path = None
        if not reasons:
            path, why = self._write_clip(src, info, clip_id, a, b, crop, fps)
            if why:
                reasons.append({"code": "write_failed", "column": None, "bound": None, "text": f"write_failed: {why}"})
        cap = m.get("cap")
        cap_text = (cap if isinstance(cap, str) else (cap[0] if cap else None))
        clip = {"clip_id": clip_id, "video_id": vid, "scene_index": None, "start_s": round(a / fps, 6),
                "end_s": round(b / fps, 6), "duration_s": round((b - a) / fps, 6), "start_frame": a, "end_frame": b,
                "crop": crop, "path": path, "keep": not reasons, "rejects": reasons,
                "reject_reasons": [r["text"] for r in reasons], "caption": cap_text, "group_id": group,
                "sample_aspect": None if isinstance(info, str) else f"{info.sample_aspect.numerator}:"
                                                                   f"{info.sample_aspect.denominator}",
                "pixels_resampled": None if path is None else False}
        for field_name, col in SCORE_COLUMNS.items():
            clip[col] = float(m[field_name]) if m.get(field_name) is not None else None
        self.clips.add(clip)
        self._caption(clip, rec)
        entry = _Clip(clip_id, vid, group, None)
        self.by_key[key] = entry
        ann = rec.get("annotation")
        fd = (ann or {}).get("ann_frame_data") or {}
        if ann is not None:
            entry.ann_frame = int(fd["ann_frame_idx"])
            self._subjects(clip, rec, entry, a, fps)
        else:
            self.subjects.add(self._none_row(clip, "no_annotation"))
        pre = (rec.get("word_tags") or {}).get("pre_define")

        def num(k):
            return float(fd[k]) if _is_num(fd.get(k)) else None
        self._key_row("clip", file, offset, "ok", key=key, clip_id=clip_id, part=part,
                      pre_define=list(pre) if isinstance(pre, list) else None,
                      foreground_aes_score=num("foreground_ase_score"), background_aes_score=num("background_ase_score"),
                      cut=m.get("cut") if isinstance(m.get("cut"), list) else None,
                      face_cut=m.get("face_cut") if isinstance(m.get("face_cut"), list) else None)
        self.counts["clips_kept" if clip["keep"] else "clips_dropped"] += 1

    def _write_clip(self, src: Path, info, clip_id: str, a: int, b: int, crop: list[int], fps: float):
        """(clips/<clip_id>.mp4, None) once the clip file is in place: the video itself when the
        record covers it whole (no re-encode), else cut and cropped by the clip writer
        (recipe `write`); (None, why) when that fails."""
        from ...engine.writer import atomic_write, move_file
        from ...media.clipwriter import ClipSpec, write_clips
        rel = f"clips/{clip_id}.mp4"
        dest = self.out / rel
        if dest.is_file():
            return rel, None
        whole = (a == 0 and info.n_frames_header == b and crop == [0, 0, info.width, info.height]
                 and info.rotation == 0 and info.sample_aspect == 1)
        if whole:
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dest)
            except OSError:
                atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))
            return rel, None
        wcfg = self.write_cfg
        self.scratch.mkdir(parents=True, exist_ok=True)
        tmp = self.scratch / f"{clip_id}.mp4"
        spec = ClipSpec(clip_id, a / fps, b / fps, tuple(crop), tmp, a, b)
        try:    # never downscaled (write.max_long_side): the published boxes and masks are in these pixels
            written = write_clips(src, [spec], info.rotation, info.fps, crf=int(wcfg["crf"]), preset=str(wcfg["preset"]),
                                  max_long_side=None, x264_asm=str(wcfg["x264_asm"]),
                                  sample_aspect=info.sample_aspect, square_pixels=wcfg["sample_aspect"] == "square")
        except Exception as e:      # noqa: BLE001 - a bad video is a row, not a crash
            tmp.unlink(missing_ok=True)
            return None, f"{type(e).__name__}: {e}"
        n = written.get(clip_id, 0)
        if n != b - a:
            tmp.unlink(missing_ok=True)
            return None, f"wrote {n} of the {b - a} frames [{a}, {b}) (the video is shorter?)"
        move_file(tmp, dest)
        return rel, None

    def _caption(self, clip: dict, rec: dict) -> None:
        from ..caption.prompts import first_sentence
        m, tags = rec["metadata"], rec.get("word_tags") or {}
        long = next((m[k] for k in ("face_cap_qwen", "face_cap_glm", "face_cap_Aria")
                     if isinstance(m.get(k), str) and m[k]), None)
        row = {"clip_id": clip["clip_id"], "video_id": clip["video_id"], "short": first_sentence(long), "long": long,
               "structured": None, "subject_tags": list(tags.get("subject") or []),
               "object_tags": list(tags.get("object") or []), "background_tags": list(tags.get("background") or []),
               "face_caption": None, "captioner": CAPTIONER, "model": None, "prompt_id": None, "score": None,
               "verdicts": [], "error": None if long else "the record has no face_cap_qwen caption"}
        self.captions.add(row)

    def _none_row(self, clip: dict, check: str) -> dict:
        return {"subject_id": f"{clip['clip_id']}-none", "clip_id": clip["clip_id"], "video_id": clip["video_id"],
                "group_id": clip["group_id"], "frame_idx": None, "time_s": None, "phrase": None, "category": "none",
                "bbox": None, "mask_rle": None, "crop_path": None, "det_score": None, "backend": BACKEND,
                "quality": None, "checks": [check], "keep": False, "caption_verdicts": [], "caption_phrases": [],
                "face_segment": None}

    def _subjects(self, clip: dict, rec: dict, entry: _Clip, a: int, fps: float) -> None:
        """One subjects row per published annotation (object id i+1 = annotations[i]), with its
        RGBA crop cut from the clip file where the clip was written."""
        from ...engine.writer import write_bytes
        from ..subjects.pipeline import png_bytes, subject_id_for
        import numpy as np
        ann = rec["annotation"]
        fd = ann["ann_frame_data"]
        tags = rec.get("word_tags") or {}
        phrases = sorted({t for v in tags.values() if isinstance(v, list) for t in v})
        src_frame = int(fd["ann_frame_idx"])
        frame_idx = src_frame - a
        n = int(clip["end_frame"] - clip["start_frame"])
        w, h = clip["crop"][2] - clip["crop"][0], clip["crop"][3] - clip["crop"][1]
        rgb = None
        frame_check = None
        if not 0 <= frame_idx < n:
            frame_check = f"ann_frame_outside_clip: frame {src_frame} not in [{a}, {a + n})"
        elif clip["path"]:
            rgb = _frame(self.out / clip["path"], frame_idx)
            if rgb is None:
                frame_check = "clip_unreadable: the annotated frame could not be decoded"
            else:
                h, w = rgb.shape[:2]
        masks = ann["mask_annotation"].get(str(src_frame)) or {}
        mask_map = ann.get("mask_map") or {}
        seen: Counter = Counter()
        if not fd["annotations"]:
            self.subjects.add(self._none_row(clip, "no_subjects_annotated"))
        for i, a_item in enumerate(fd["annotations"]):
            oid = str(i + 1)
            class_name = a_item["class_name"]
            if isinstance(mask_map.get(oid), dict) and isinstance(mask_map[oid].get("class_name"), str):
                class_name = mask_map[oid]["class_name"]
            cat, check = _category(class_name, list(tags.get("subject") or []))
            checks = [c for c in (check, frame_check) if c]
            if not clip["keep"]:
                checks.append("clip_not_kept")
            box = _int_box(a_item["bbox"], w, h)
            if box[2] <= box[0] or box[3] <= box[1]:
                checks.append("empty_box")
            published = masks.get(oid)
            rle = _rle(published)
            mask_rle, crop_path, mask = None, None, None
            if rle is None:
                checks.append("mask_missing" if published is None else "bad_mask")
            elif rgb is not None:
                mask = _fit_mask(rle, h, w)
                if mask is None:
                    checks.append(f"mask_size_differs: {rle['size']} vs clip frame {[h, w]}")
                else:
                    from ..subjects.rle import mask_to_rle
                    mask_rle = json.dumps(mask_to_rle(mask), sort_keys=True) if list(mask.shape) != rle["size"] \
                        or not isinstance(rle["counts"], str) else json.dumps(rle, sort_keys=True)
            else:
                mask_rle = json.dumps(rle, sort_keys=True) if isinstance(rle["counts"], str) else None
            sid = subject_id_for(clip["clip_id"], frame_idx, cat, box, class_name)
            seen[sid] += 1
            if seen[sid] > 1:
                sid = f"{sid}-{seen[sid] - 1}"
                checks.append("duplicate_box")
            keep = not checks
            if keep and mask is not None:
                x0, y0, x1, y1 = box
                sub = mask[y0:y1, x0:x1]
                if not sub.any():
                    keep = False
                    checks.append("empty_mask")
                else:
                    rgba = np.dstack([rgb[y0:y1, x0:x1], (sub * 255).astype(np.uint8)])
                    crop_path = f"subjects/{sid}.png"
                    write_bytes(self.out / crop_path, png_bytes(rgba))
            if keep and crop_path is None:
                keep = False
                checks.append("no_crop")
            q = {"aesthetic": a_item.get("aes_score") if _is_num(a_item.get("aes_score")) else None,
                 "gme_score": a_item.get("gme_score") if _is_num(a_item.get("gme_score")) else None,
                 "mask_score": _mask_score(published)}
            self.subjects.add({
                "subject_id": sid, "clip_id": clip["clip_id"], "video_id": clip["video_id"],
                "group_id": clip["group_id"], "frame_idx": frame_idx, "time_s": round(frame_idx / fps, 6),
                "phrase": class_name, "category": cat, "bbox": box, "mask_rle": mask_rle, "crop_path": crop_path,
                "det_score": None, "backend": BACKEND, "quality": json.dumps(q, sort_keys=True), "checks": checks,
                "keep": keep, "caption_verdicts": [], "caption_phrases": phrases, "face_segment": None})
            entry.subjects.append(_Subject(sid, class_name, cat, keep))
            self.counts["subjects_kept" if keep else "subjects_dropped"] += 1

    # -------------------------------------------------------- pairs

    def resolve_pairs(self) -> None:
        for file, offset, part, rec in self.pair_recs:
            if isinstance(rec, dict) and isinstance(rec.get("cur_id"), str):
                part = _strip_part(rec["cur_id"])[0] or part
            problem = pair_problem(rec)
            if problem:
                self._key_row("pair", file, offset, "error", problem, part=part)
                continue
            ends = []
            for side in ("cur", "aft"):
                _, key = _strip_part(rec[f"{side}_id"])
                c = self.by_key.get(key)
                if c is None:
                    ends.append(f"{side}_id {rec[side + '_id']!r}: no imported clip has that key")
                    continue
                if c.ann_frame != rec[f"{side}_frame_idx"]:
                    ends.append(f"{side}_frame_idx {rec[side + '_frame_idx']} is not the annotated frame "
                                f"{c.ann_frame} of {key!r}")
                    continue
                s = next((s for s in c.subjects if s.class_name == rec[f"{side}_class_name"]), None)
                if s is None:
                    ends.append(f"{key!r} has no subject {rec[side + '_class_name']!r}")
                    continue
                ends.append((c, s))
            bad = [e for e in ends if isinstance(e, str)]
            if bad:
                self._key_row("pair", file, offset, "error", "; ".join(bad), key=_strip_part(rec["cur_id"])[1], part=part)
                continue
            (tc, ts), (rc, rs) = ends
            if ts.subject_id == rs.subject_id:
                self._key_row("pair", file, offset, "error", "cur and aft are the same subject",
                              key=_strip_part(rec["cur_id"])[1], part=part)
                continue
            pair_id = "p-" + hashlib.blake2b(f"{ts.subject_id}|{rs.subject_id}".encode(), digest_size=6).hexdigest()
            if pair_id in self.pair_ids:
                self._key_row("pair", file, offset, "duplicate", "the same two subjects as an earlier pair record",
                              key=_strip_part(rec["cur_id"])[1], part=part)
                continue
            self.pair_ids.add(pair_id)
            text_sim = rec.get("text_similarity")
            kind = "in_pair" if tc.clip_id == rc.clip_id else ("cross_clip" if tc.video_id == rc.video_id else "cross_video")
            self.pairs.add({
                "pair_id": pair_id, "target_clip_id": tc.clip_id, "target_subject_id": ts.subject_id,
                "target_video_id": tc.video_id, "group_id": tc.group_id, "category": ts.category,
                "phrase": ts.class_name, "kind": kind, "reference_subject_ids": [rs.subject_id],
                "reference_clip_ids": [rc.clip_id], "reference_source": "subject",
                "similarity": float(rec["image_similarity"]) if rec.get("image_similarity") is not None else None,
                "diversity": None,
                "verdicts": [f"opens2v:text_similarity={float(text_sim)!r}"] if text_sim is not None else [],
                "rejected": [], "track_subject_ids": [ts.subject_id], "cluster_id": None,
                "keep": bool(ts.keep and rs.keep), "embedder": EMBEDDER})
            self.counts["pairs"] += 1

    # -------------------------------------------------------- tables

    def write(self) -> list[str]:
        from ...engine.writer import write_parquet
        n_clips: Counter = Counter()
        n_kept: Counter = Counter()
        for t in self.clips.chunks + [self.clips.spec.table(self.clips.rows)]:
            for vid, keep in zip(t.column("video_id").to_pylist(), t.column("keep").to_pylist()):
                n_clips[vid] += 1
                n_kept[vid] += bool(keep)
        for vid, row in self.video_rows.items():
            row["n_clips"], row["n_kept"] = n_clips[vid], n_kept[vid]
            self.videos.add(row)
        tables = {"videos": self.videos, "clips": self.clips, "captions": self.captions,
                  "subjects": self.subjects, "pairs": self.pairs}
        for name, rows in tables.items():
            write_parquet(rows.table(), self.out / f"{name}.parquet")
        keys = pa.concat_tables(self.keys.chunks + [self.keys.spec.table(self.keys.rows)])
        keys = keys.sort_by([("kind", "ascending"), ("key", "ascending"), ("file", "ascending"),
                             ("offset", "ascending")])
        write_parquet(keys, self.out / KEYS_TABLE)
        shutil.rmtree(self.out / ".work" / "opens2v", ignore_errors=True)
        return list(tables) + [KEYS_TABLE.removesuffix(".parquet")]


def _mask_score(published) -> list[float] | None:
    v = published.get("score") if isinstance(published, dict) else None
    if isinstance(v, list) and v and all(_is_num(x) for x in v):
        return [float(x) for x in v]
    return [float(v)] if _is_num(v) else None


def _frame(path: Path, index: int):
    """RGB frame `index` of a clip file; None when it cannot be decoded."""
    from ...media.decode import iter_frames
    try:
        for i, _t, rgb in iter_frames(path):
            if i == index:
                return rgb
    except Exception:           # noqa: BLE001 - an unreadable clip is a check on its subjects
        return None
    return None


def import_opens2v(json_paths: list[Path], videos_dir: Path, out: Path, *, recipe: dict | None = None,
                   progress: Callable[[dict], None] | None = None, chunk_chars: int | None = None) -> dict:
    """Read published OpenS2V-5M JSON files into a dataset at `out` (module doc); the summary.

    `videos_dir`: where the records' metadata.path resolve (as <videos_dir>/<part>/<path> or
    <videos_dir>/<path>). `recipe`: its `write` section encodes the clips (default recipe).
    `progress` is called with {"key", "status"} per record."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    missing = [str(p) for p in json_paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"no such JSON file: {', '.join(missing)}")
    run = _Import(Path(videos_dir), out, recipe, progress)
    for p in json_paths:
        run.read_file(Path(p), chunk_chars)
    run.resolve_pairs()
    tables = run.write()
    c = run.counts
    n_error = sum(v for k, v in c.items() if k.endswith("_error"))
    return {"stage": "import-opens2v", "dataset": str(out), "files": [str(p) for p in json_paths],
            "n_records": c["clip_ok"] + c["clip_error"] + c["clip_duplicate"], "n_clips": c["clip_ok"],
            "n_kept": c["clips_kept"], "n_dropped": c["clips_dropped"], "n_subjects": c["subjects_kept"],
            "n_subjects_dropped": c["subjects_dropped"], "n_pairs": c["pairs"],
            "n_duplicate": c["clip_duplicate"] + c["pair_duplicate"], "n_error": n_error,
            "n_cluster_lists_skipped": c["cluster_lists_skipped"], "errors": run.errors, "tables": tables}


# ============================================================== the command

def register(app) -> None:
    """Add `s2vforge import-opens2v` to a Typer app."""
    import typer

    from ...clikit import EXIT_OK, EXIT_SOME_FAILED, err, fail, json_option, quiet_option, recipe_option

    @app.command("import-opens2v")
    def import_opens2v_command(
        json_files: list[Path] = typer.Argument(..., help="OpenS2V-5M JSON files: Jsons/mask_and_bbox/total_partN.json "
                                                          "(or Jsons/total_partN.json) and cross_video_pairs/*.json."),
        videos: Path = typer.Option(..., "--videos", help="Folder of the videos: metadata.path is looked up as "
                                                          "DIR/<part>/<path>, then DIR/<path>."),
        out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write."),
        recipe: Optional[str] = recipe_option(),
        as_json: bool = json_option(),
        quiet: bool = quiet_option(),
    ):
        """Read published OpenS2V-5M records into a dataset (videos, clips, captions, subjects, pairs)."""
        raise typer.Exit(_run_command(json_files, videos, out, recipe, as_json, quiet))

    def _run_command(json_files, videos, out, recipe, as_json, quiet) -> int:
        from rich.markup import escape

        from ...clikit import progress_bar
        from ...recipes import RecipeError, load_recipe
        if not Path(videos).is_dir():
            return fail(f"--videos {videos}: no such folder", as_json)
        try:
            rec = load_recipe(recipe)
        except RecipeError as e:
            return fail(str(e), as_json)
        prog, advance = progress_bar("import-opens2v", None, enabled=not quiet and not as_json)
        try:
            with prog:
                summary = import_opens2v(list(json_files), videos, out, recipe=rec, progress=advance)
        except (FileNotFoundError, ValueError, OSError) as e:
            return fail(str(e), as_json)
        if as_json:
            print(json.dumps(summary, indent=2, default=str))
        elif not quiet:
            err.print(f"[bold]import-opens2v[/bold]: {summary['n_records']} records: {summary['n_clips']} clips "
                      f"({summary['n_kept']} kept), {summary['n_subjects']} subjects, {summary['n_pairs']} pairs, "
                      f"{summary['n_duplicate']} duplicates, {summary['n_error']} errors")
            for e in summary["errors"][:50]:
                err.print(f"[red]error:[/red] {escape(str(e['file']))}:{e['offset']}: {escape(str(e['error']))}")
            if len(summary["errors"]) > 50:
                err.print(f"... and {len(summary['errors']) - 50} more (see --json or {KEYS_TABLE})")
            err.print(f"tables: {escape(str(Path(out)))}/{{{','.join(summary['tables'])}}}.parquet")
        return EXIT_SOME_FAILED if summary["n_error"] else EXIT_OK
