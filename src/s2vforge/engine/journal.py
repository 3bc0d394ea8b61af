"""The one journal: what a stage has finished, so a killed or repeated run redoes nothing.

Under DATASET/.work/<stage>/, each finished item (key) has one Parquet part per table
(`<key>.<table>.parquet`) and a JSON marker `<key>.json` written last, atomically, holding
the stage's config stamp, the item's meta and the files it wrote. An item is done when its
marker carries the current stamp and all its parts exist; a run killed at any point leaves
either a complete item or nothing that counts. A changed config (another stamp) recomputes
the item; files its previous result wrote and the new one does not are removed, so the
dataset equals a fresh run's.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from ..schema import TableSpec
from . import writer
from .stage import Output

WORK_DIR = ".work"


def config_hash(cfg) -> str:
    """The stamp of a config: 16 hex of blake2b over its canonical JSON."""
    return hashlib.blake2b(json.dumps(cfg, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


class Journal:
    def __init__(self, dataset: Path, stage: str, stamp: str, tables: dict[str, TableSpec]) -> None:
        self.dataset = Path(dataset)
        self.dir = self.dataset / WORK_DIR / stage
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stamp, self.tables = stamp, tables

    def _marker(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def _part(self, key: str, table: str) -> Path:
        return self.dir / f"{key}.{table}.parquet"

    def _read_marker(self, key: str) -> dict | None:
        try:
            return json.loads(self._marker(key).read_text())
        except (OSError, ValueError):
            return None

    def is_done(self, key: str) -> bool:
        m = self._read_marker(key)
        return (m is not None and m.get("stamp") == self.stamp
                and all(self._part(key, t).exists() for t in self.tables))

    def meta(self, key: str) -> dict:
        m = self._read_marker(key)
        if m is None:
            raise KeyError(f"no journal entry for {key} in {self.dir}")
        return m["meta"]

    def commit(self, key: str, out: Output) -> dict:
        """Write an item's files, then its parts, then its marker (last); returns its meta."""
        old = self._read_marker(key)
        for rel, payload in sorted(out.files.items()):
            dest = self.dataset / rel
            if isinstance(payload, (bytes, bytearray, memoryview)):
                writer.write_bytes(dest, bytes(payload))
            else:
                writer.move_file(Path(payload), dest)
        for name, spec in self.tables.items():
            writer.write_parquet(spec.table(out.rows.get(name, [])), self._part(key, name))
        files = sorted(out.files)
        if old:   # what an earlier config wrote and this result does not: gone, as in a fresh run
            for rel in set(old.get("files") or []) - set(files):
                (self.dataset / rel).unlink(missing_ok=True)
        # last: until the marker carries the new stamp, a crash anywhere above means "redo"
        writer.write_json(self._marker(key), {"stamp": self.stamp, "meta": out.meta, "files": files}, indent=None)
        return out.meta

    def read(self, keys: Iterable[str], table: str) -> pa.Table:
        """One table over these keys, in the table's declared schema and sort order."""
        spec = self.tables[table]
        parts = [spec.conform(pq.read_table(self._part(k, table))) for k in sorted(set(keys))]
        t = pa.concat_tables(parts) if parts else spec.schema.empty_table()
        return t.sort_by(spec.sort_by) if t.num_rows else t

    def sweep(self) -> None:
        writer.sweep_tmp(self.dir)
