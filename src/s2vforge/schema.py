"""Table schemas and stable ids: the spine every stage reads and writes.

Ids derive from content, never from run order, so re-runs and resumes are idempotent:
video_id from a content fingerprint of the file, clip_id from video_id + frame range.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import pyarrow as pa

from .reasons import REASON_TYPE

# Subject categories, everywhere (subjects, pairs, reports): the one list.
SUBJECT_CATEGORIES = ("face", "person", "animal", "object")
LIVING_CATEGORIES = ("face", "person", "animal")      # paired under the same-group prior (Phantom-Data)
PERSON_CATEGORIES = ("face", "person")                # segmented with the person models

FINGERPRINT_CHUNK = 1 << 18        # 256 KiB
FINGERPRINT_CHUNKS = 16            # + the first and last chunk; whole file when smaller


def content_fingerprint(path: str | bytes | os.PathLike) -> str:
    """blake2b over the size and 18 evenly spaced 256 KiB chunks (the whole file when small).

    Reading a fixed ~4.5 MiB per file keeps hashing negligible beside decoding even for
    multi-GB sources, while any re-encode, trim or different file changes the id.
    """
    with open(path, "rb") as f:
        return fingerprint_stream(f, os.path.getsize(path))


def fingerprint_stream(f, size: int) -> str:
    """content_fingerprint of an open binary file of `size` bytes (local or fsspec)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(size.to_bytes(8, "little"))
    if size <= FINGERPRINT_CHUNK * (FINGERPRINT_CHUNKS + 2):
        h.update(f.read())
    else:
        offsets = [0] + [int(size * (i + 1) / (FINGERPRINT_CHUNKS + 1)) for i in range(FINGERPRINT_CHUNKS)]
        offsets.append(size - FINGERPRINT_CHUNK)
        for off in offsets:
            f.seek(off)
            h.update(f.read(FINGERPRINT_CHUNK))
    return h.hexdigest()


def video_id_for(path: str | bytes | os.PathLike) -> str:
    """Stable id of an input: its content fingerprint, or (empty/unreadable files) its path."""
    try:
        if os.path.getsize(path) > 0:
            return "v" + content_fingerprint(path)[:16]
    except OSError:
        pass
    raw = os.fsencode(path)
    return "v" + hashlib.blake2b(b"path:" + raw, digest_size=8).hexdigest()


def clip_id_for(video_id: str, start_frame: int, end_frame: int) -> str:
    return f"{video_id}-{start_frame:07d}-{end_frame:07d}"


def display_path(path: str | bytes | os.PathLike) -> str:
    """A UTF-8-safe rendering of any path (undecodable bytes shown as \\xNN)."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", errors="backslashreplace")


VIDEO_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("path", pa.string()),            # UTF-8 rendering, for people
    ("path_raw", pa.binary()),        # exact bytes of the path, for programs
    ("status", pa.string()),          # ok | error | duplicate
    ("error", pa.string()),
    ("duration_s", pa.float64()),
    ("fps", pa.float64()),
    ("vfr", pa.bool_()),
    ("n_frames", pa.int64()),
    ("width", pa.int32()),            # display size (rotation applied)
    ("height", pa.int32()),
    ("rotation", pa.int32()),
    ("codec", pa.string()),
    ("has_audio", pa.bool_()),
    ("size_bytes", pa.int64()),
    ("group_id", pa.string()),
    ("caption", pa.string()),
    ("n_scenes", pa.int32()),
    ("n_clips", pa.int32()),
    ("n_kept", pa.int32()),
])

CLIP_BASE_FIELDS = [
    ("clip_id", pa.string()),
    ("video_id", pa.string()),
    ("scene_index", pa.int32()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("duration_s", pa.float64()),
    ("start_frame", pa.int64()),
    ("end_frame", pa.int64()),       # exclusive
    ("crop", pa.list_(pa.int32())),  # x0, y0, x1, y1 in display pixels
    ("crop_border", pa.list_(pa.int32())),
    ("crop_subtitle_band", pa.list_(pa.int32())),
    ("n_text_boxes", pa.int32()),
    ("path", pa.string()),           # clips/<clip_id>.mp4 relative to the dataset, kept clips only
    ("keep", pa.bool_()),
    ("reject_reasons", pa.list_(pa.string())),   # texts of `rejects`, e.g. "score_luminance<10"
    ("rejects", pa.list_(REASON_TYPE)),          # typed reasons (reasons.Reason): code, column, bound, text
    ("caption", pa.string()),
    ("group_id", pa.string()),
    # timestamps and pixels (docs/curation.md "Timestamps and pixel aspect")
    ("pts_discontinuity", pa.bool_()),   # the clip starts right after a pts reset/jump in the source (cut there)
    ("sample_aspect", pa.string()),      # SAR of the source's coded pixels, "num:den" ("1:1" = square)
    ("pixels_resampled", pa.bool_()),    # the clip file was resampled to square pixels (SAR 1:1); false: it
                                         # keeps the coded pixels and carries sample_aspect; null: no file
]


def clip_schema(score_columns: list[str]) -> pa.Schema:
    """clips.parquet: the base fields plus one float column per scorer column of the recipe."""
    return pa.schema(CLIP_BASE_FIELDS + [(c, pa.float64()) for c in sorted(score_columns)])


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


CAPTION_STRUCT = pa.struct([(k, pa.string()) for k in
                            ("subjects", "appearance", "action", "face_motion", "environment", "camera")])

CAPTION_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("video_id", pa.string()),
    ("short", pa.string()),           # one sentence
    ("long", pa.string()),            # the full subject-centric caption
    ("structured", CAPTION_STRUCT),   # OpenHumanVid's fields (+ subjects, camera); null where unknown
    ("subject_tags", pa.list_(pa.string())),     # OpenS2V-5M word_tags: subjects (people, animals)
    ("object_tags", pa.list_(pa.string())),      # ... objects
    ("background_tags", pa.list_(pa.string())),  # ... scene words (never grounded)
    ("face_caption", pa.string()),    # a face description where a face is present
    ("captioner", pa.string()),       # facts | manifest | endpoint | reference
    ("model", pa.string()),
    ("prompt_id", pa.string()),       # prompt name + hash of its texts
    ("score", pa.float64()),          # agreement with the frames (vote), where a scorer ran
    ("verdicts", pa.list_(pa.string())),         # why a caption was rejected or repaired
    ("error", pa.string()),           # why this clip has no caption
])


SUBJECT_SCHEMA = pa.schema([
    ("subject_id", pa.string()),      # <clip_id>-f<frame_idx>-<category>-<8 hex of box+phrase>, or <clip_id>-none
    ("clip_id", pa.string()),
    ("video_id", pa.string()),
    ("group_id", pa.string()),
    ("frame_idx", pa.int64()),        # frame index within the clip (0 = the clip's first frame)
    ("time_s", pa.float64()),         # seconds from the clip's start
    ("phrase", pa.string()),          # caption phrase, "face", "person" or "salient object"
    ("category", pa.string()),        # one of SUBJECT_CATEGORIES, or none
    ("bbox", pa.list_(pa.int32())),   # x0, y0, x1, y1 in clip-frame pixels (exclusive ends)
    ("mask_rle", pa.string()),        # JSON of COCO RLE {"size": [h, w], "counts": str}, full frame
    ("crop_path", pa.string()),       # subjects/<subject_id>.png (RGBA, alpha = mask), kept rows only
    ("det_score", pa.float64()),
    ("backend", pa.string()),         # detector that proposed the box
    ("quality", pa.string()),         # JSON of quality.crop_quality
    ("checks", pa.list_(pa.string())),  # verdicts against this instance; empty iff keep
    ("keep", pa.bool_()),
    ("caption_verdicts", pa.list_(pa.string())),  # why the caption gave no (or fewer) phrases
    ("caption_phrases", pa.list_(pa.string())),   # the phrases looked for in this clip
    ("face_segment", pa.string()),    # JSON of facetrack.longest_face_segment for the clip
])

# per-clip identity + context embeddings of the pairs stage (its journal table, not a dataset table)
EMBED_SCHEMA = pa.schema([
    ("subject_id", pa.string()),
    ("clip_id", pa.string()),
    ("category", pa.string()),
    ("vector", pa.list_(pa.float32())),       # identity embedding (null: embedding failed)
    ("context", pa.list_(pa.float32())),      # background embedding of the subject's frame (null: not available)
    ("error", pa.string()),
])

# --bank folder images as bank entries (cached per image under .work/pairs/bank/)
BANK_ENTRY_SCHEMA = pa.schema([
    ("entry_id", pa.string()), ("category", pa.string()), ("path", pa.string()), ("relpath", pa.string()),
    ("box", pa.list_(pa.int32())), ("vector", pa.list_(pa.float32())), ("context", pa.list_(pa.float32())),
])

# DATASET/index/<category>/ids.parquet: FAISS row i is table row i (stages/pairs/bank.py)
BANK_META_COLUMNS = ("clip_id", "video_id", "group_id", "category", "source")
BANK_IDS_SCHEMA = pa.schema([("row", pa.int64()), ("id", pa.string())]
                            + [(c, pa.string()) for c in BANK_META_COLUMNS] + [("meta", pa.string())])

PAIR_SCHEMA = pa.schema([
    ("pair_id", pa.string()),                  # p-<12 hex of the target subject id>
    ("target_clip_id", pa.string()),
    ("target_subject_id", pa.string()),
    ("target_video_id", pa.string()),
    ("group_id", pa.string()),
    ("category", pa.string()),
    ("phrase", pa.string()),
    ("kind", pa.string()),                     # cross_clip | cross_video | in_pair | none
    ("reference_subject_ids", pa.list_(pa.string())),   # subject ids, or bank:<relpath>#<entry> for bank images
    ("reference_clip_ids", pa.list_(pa.string())),
    ("reference_source", pa.string()),         # subject | bank
    ("similarity", pa.float64()),              # identity cosine target vs first reference
    ("diversity", pa.float64()),               # context distance target vs first reference (higher = more diverse)
    ("verdicts", pa.list_(pa.string())),       # every check that passed the chosen reference(s)
    ("rejected", pa.list_(pa.string())),       # "<candidate id>:<verdict>" for every rejected candidate
    ("track_subject_ids", pa.list_(pa.string())),  # the target track's instances
    ("cluster_id", pa.string()),
    ("keep", pa.bool_()),
    ("embedder", pa.string()),
])


@dataclass(frozen=True)
class TableSpec:
    """A table a stage writes: its schema and the column its rows are sorted by (ids, so the
    table is the same whatever order the work finished in)."""
    schema: pa.Schema
    sort_by: str

    def table(self, rows: list[dict]) -> pa.Table:
        return table_from_rows(rows, self.schema)

    def conform(self, t: pa.Table) -> pa.Table:
        """A table in exactly this schema (missing columns as nulls, types cast)."""
        cols = [t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(len(t), f.type)
                for f in self.schema]
        return pa.Table.from_arrays(cols, schema=self.schema)


# ------------------------------------------------------------------ export: training samples
# DATASET-or-EXPORT-relative paths throughout: an export folder keeps the dataset's layout
# (clips/<clip_id>.mp4, subjects/<subject_id>.png), so samples built over a dataset and samples
# read from an export resolve the same way (docs/export.md "Layout").

REFERENCE_STRUCT = pa.struct([
    ("subject_id", pa.string()),        # subjects.parquet id of the reference instance
    ("target_subject_id", pa.string()), # the subject of this clip it stands for (itself for kind self)
    ("kind", pa.string()),              # self | cross_clip | cross_video (pairs.parquet kinds; self = from the clip)
    ("source_clip_id", pa.string()),
    ("source_video_id", pa.string()),
    ("category", pa.string()),          # SUBJECT_CATEGORIES
    ("phrase", pa.string()),
    ("frame_idx", pa.int64()),          # frame of the source clip the crop comes from
    ("bbox", pa.list_(pa.int32())),     # x0, y0, x1, y1 in the source clip frame
    ("frame_size", pa.list_(pa.int32())),  # width, height of that frame
    ("mask_rle", pa.string()),          # COCO RLE JSON of the full-frame mask (subjects.parquet)
    ("rgba_path", pa.string()),         # subjects/<subject_id>.png: RGBA crop, alpha = mask
    ("rgb_path", pa.string()),          # subjects/<subject_id>.rgb.png: RGB on white (trainers drop alpha); null over a dataset
    ("mask_path", pa.string()),         # subjects/<subject_id>.mask.png: 8-bit mask; null over a dataset
    ("similarity", pa.float64()),       # identity cosine target vs reference (cross kinds); null for self
    ("pair_id", pa.string()),
    ("det_score", pa.float64()),
    ("synthetic", pa.bool_()),          # generated (imagepairs / Nexus synthetic views), not cut from video
])

SAMPLE_BASE_FIELDS = [
    ("sample_id", pa.string()),         # = clip_id
    ("clip_id", pa.string()),
    ("video_id", pa.string()),
    ("group_id", pa.string()),
    ("keep", pa.bool_()),               # exported (false: duplicate, too few references, no caption ...)
    ("drop_reasons", pa.list_(pa.string())),
    ("split", pa.string()),             # train | val | test | ... (export.splits), null when dropped
    ("split_group", pa.string()),       # the leak-free unit the split was drawn for (stages/export/splits.py)
    ("duplicate_of", pa.string()),      # clip_id of the kept copy of the same footage
    ("duplicate_cluster", pa.string()),
    ("duplicate_similarity", pa.float64()),
    ("clip_path", pa.string()),         # clips/<clip_id>.mp4 (the export's file: copied or re-cut)
    ("source_clip_path", pa.string()),  # absolute path of the dataset's clip file it came from
    ("source_video_path", pa.string()), # the input video
    ("fps", pa.float64()),              # of clip_path
    ("n_frames", pa.int64()),           # of clip_path
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("duration_s", pa.float64()),
    ("start_s", pa.float64()),          # in the input video
    ("end_s", pa.float64()),
    ("start_frame", pa.int64()),        # in the input video (clips.parquet)
    ("end_frame", pa.int64()),
    ("crop", pa.list_(pa.int32())),     # the curate crop, in input display pixels
    ("recut", pa.string()),             # null: the curated clip as is; else "<fps>fps/<n>f" (export.clip)
    ("caption", pa.string()),           # the training text: one line (export.caption picks short or long)
    ("caption_short", pa.string()),
    ("caption_long", pa.string()),
    ("caption_structured", CAPTION_STRUCT),
    ("subject_tags", pa.list_(pa.string())),
    ("object_tags", pa.list_(pa.string())),
    ("background_tags", pa.list_(pa.string())),
    ("captioner", pa.string()),
    ("ref_mode", pa.string()),          # self | cross | both (export.refs.mode)
    ("references", pa.list_(REFERENCE_STRUCT)),   # ordered by the rule of stages/export/samples.py
    ("n_refs", pa.int32()),
]


def sample_schema(score_columns: list[str]) -> pa.Schema:
    """samples.parquet: the base fields plus the clip's score_* columns."""
    return pa.schema(SAMPLE_BASE_FIELDS + [(c, pa.float64()) for c in sorted(score_columns)])
