"""The one journal: what a stage has finished, so a killed or repeated run redoes nothing.

Under DATASET/.work/<stage>/, each finished item (key) has one Parquet part per table
(`<key>.<table>.parquet`) and a JSON marker `<key>.json` written last, atomically, holding
the stage's config stamp, the item's meta and the files it wrote. An item is done when its
marker carries the current stamp and all its parts exist; a run killed at any point leaves
either a complete item or nothing that counts. A changed config (another stamp) or a changed
item (another digest: a new caption, upstream rows that changed) recomputes the item; files
its previous result wrote and the new one does not are removed, so the dataset equals a fresh
run's. Results of a crashed worker or an internal error are kept but marked `retry`: the next
run tries them again.
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


def item_digest(item) -> str:
    """What an item holds (its path, caption, upstream rows...), for Journal.is_done."""
    return config_hash(item)


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

    def is_done(self, key: str, digest: str | None = None) -> bool:
        """Done = committed under this stamp, for this very item (`digest` of its content, so an
        item whose inputs changed upstream is redone), not marked for retry, parts present."""
        m = self._read_marker(key)
        return (m is not None and m.get("stamp") == self.stamp and not m.get("retry")
                and (digest is None or m.get("digest") == digest)
                and all(self._part(key, t).exists() for t in self.tables))

    def meta(self, key: str) -> dict:
        m = self._read_marker(key)
        if m is None or m.get("meta") is None:
            raise KeyError(f"no journal entry for {key} in {self.dir}")
        return m["meta"]

    def commit(self, key: str, out: Output, digest: str | None = None, retry: bool = False) -> dict:
        """Write an item's files, then its parts, then its marker (last); returns its meta.

        First the marker is replaced by a pending one (no stamp) that lists every file the old
        and the new result may leave, so a crash anywhere in between means "redo" and the redo
        still knows what to clean up. `retry`: a result that does not count as done (a crashed
        worker, an internal error): the next run tries the item again."""
        old = self._read_marker(key) or {}
        files = sorted(out.files)
        old_files = set(old.get("files") or []) | set(old.get("pending_files") or [])
        writer.write_json(self._marker(key), {"stamp": None, "meta": None, "files": sorted(old_files),
                                              "pending_files": files}, indent=None)
        for rel, payload in sorted(out.files.items()):
            dest = self.dataset / rel
            if isinstance(payload, (bytes, bytearray, memoryview)):
                writer.write_bytes(dest, bytes(payload))
            else:
                writer.move_file(Path(payload), dest)
        for name, spec in self.tables.items():
            writer.write_parquet(spec.table(out.rows.get(name, [])), self._part(key, name))
        for rel in old_files - set(files):   # what an earlier result wrote and this one does not
            (self.dataset / rel).unlink(missing_ok=True)
        sizes = {rel: (self.dataset / rel).stat().st_size for rel in files}
        writer.write_json(self._marker(key), {"stamp": self.stamp, "digest": digest, "retry": retry,
                                              "meta": out.meta, "files": files, "sizes": sizes}, indent=None)
        return out.meta

    def files_of(self, key: str) -> dict[str, int | None]:
        """The files a committed item wrote, each with the size it had when committed."""
        m = self._read_marker(key) or {}
        sizes = m.get("sizes") or {}
        return {rel: sizes.get(rel) for rel in m.get("files") or []}

    def read(self, keys: Iterable[str], table: str) -> pa.Table:
        """One table over these keys, in the table's declared schema and sort order."""
        spec = self.tables[table]
        parts = [spec.conform(pq.read_table(self._part(k, table))) for k in sorted(set(keys))]
        t = pa.concat_tables(parts) if parts else spec.schema.empty_table()
        return t.sort_by(spec.sort_by) if t.num_rows else t

    def sweep(self) -> None:
        writer.sweep_tmp(self.dir)
