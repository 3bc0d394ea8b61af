"""The resumable journal: one set of part files per finished video.

A video is done when its marker `<video_id>.json` exists; the marker is written last and
atomically, after the video's Parquet parts, so a run killed at any point leaves either a
complete video or nothing that counts. Finalising concatenates the parts into the tables.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..schema import VIDEO_SCHEMA, clip_schema, table_from_rows


class PartStore:
    def __init__(self, dataset_dir: Path):
        self.dir = Path(dataset_dir) / ".work" / "parts"
        self.dir.mkdir(parents=True, exist_ok=True)

    def is_done(self, video_id: str) -> bool:
        return (self.dir / f"{video_id}.json").exists()

    def write(self, video_id: str, video_row: dict, clip_rows: list[dict], score_columns: list[str], meta: dict) -> None:
        atomic_parquet(table_from_rows([video_row], VIDEO_SCHEMA), self.dir / f"{video_id}.videos.parquet")
        atomic_parquet(table_from_rows(clip_rows, clip_schema(score_columns)), self.dir / f"{video_id}.clips.parquet")
        atomic_bytes(json.dumps(meta, sort_keys=True).encode(), self.dir / f"{video_id}.json")

    def meta(self, video_id: str) -> dict:
        return json.loads((self.dir / f"{video_id}.json").read_text())

    def finalize(self, video_ids: list[str], out_dir: Path, score_columns: list[str]) -> tuple[pa.Table, pa.Table]:
        """Write videos.parquet and clips.parquet for exactly these videos, sorted by id."""
        ids = sorted(set(video_ids))
        videos = [pq.read_table(self.dir / f"{v}.videos.parquet", schema=VIDEO_SCHEMA) for v in ids]
        schema = clip_schema(score_columns)
        clips = [_conform(pq.read_table(self.dir / f"{v}.clips.parquet"), schema) for v in ids]
        vt = pa.concat_tables(videos) if videos else VIDEO_SCHEMA.empty_table()
        ct = pa.concat_tables(clips) if clips else schema.empty_table()
        vt = vt.sort_by("video_id")
        ct = ct.sort_by("clip_id")
        atomic_parquet(vt, Path(out_dir) / "videos.parquet")
        atomic_parquet(ct, Path(out_dir) / "clips.parquet")
        return vt, ct


def config_hash(cfg) -> str:
    """The stamp of a stage config: 16 hex of blake2b over its canonical JSON."""
    return hashlib.blake2b(json.dumps(cfg, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


class StampedParts:
    """A per-item journal for the stages after curate (subjects, pairs): `<key>.parquet` rows in
    `schema` plus a JSON marker written last, stamped with the stage's config hash. An item is done
    only when both files exist and the stamp matches, so a config change reruns it."""

    def __init__(self, directory: Path, schema: pa.Schema, stamp: str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.schema, self.stamp = schema, stamp

    def _marker(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def is_done(self, key: str) -> bool:
        p = self._marker(key)
        if not p.exists() or not (self.dir / f"{key}.parquet").exists():
            return False
        try:
            return json.loads(p.read_text()).get("stamp") == self.stamp
        except ValueError:
            return False

    def meta(self, key: str) -> dict:
        return json.loads(self._marker(key).read_text())

    def write(self, key: str, rows: list[dict], meta: dict) -> None:
        atomic_parquet(table_from_rows(rows, self.schema), self.dir / f"{key}.parquet")
        atomic_bytes(json.dumps({**meta, "stamp": self.stamp}, sort_keys=True, default=str).encode(), self._marker(key))

    def read_table(self, keys) -> pa.Table:
        """The parts of these keys, concatenated in key order."""
        tables = [pq.read_table(self.dir / f"{k}.parquet", schema=self.schema) for k in sorted(set(keys))]
        return pa.concat_tables(tables) if tables else self.schema.empty_table()

    def sweep_tmp(self) -> None:
        """Temporary files of a killed run (never complete parts) are removed."""
        for p in self.dir.glob(".*.tmp"):
            p.unlink(missing_ok=True)


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """Parts written by an earlier recipe may lack some score columns: add them as nulls."""
    cols = []
    for f in schema:
        cols.append(t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(len(t), f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def atomic_bytes(data: bytes, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
