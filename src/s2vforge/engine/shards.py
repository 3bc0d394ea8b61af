"""Sharded copies of the finished tables, for corpora too large for one Parquet file.

`DATASET/<table>.parquet` stays the single, sorted file every stage reads; with `--shard-rows N`
the same rows (same order) are also written as `DATASET/shards/<table>/part-NNNNN.parquet`, at
most N rows each, which Ray Data (`ray.data.read_parquet`), DuckDB (`read_parquet('.../*.parquet')`)
and pyarrow.dataset read in parallel. A destination URI (s3://...) is written through fsspec.
The shard folder is replaced as a whole: stale parts of an earlier, larger run never linger.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .writer import replace_dir


def shard_table(table: pa.Table, rows_per_shard: int) -> list[pa.Table]:
    if rows_per_shard <= 0:
        raise ValueError("rows_per_shard must be > 0")
    if table.num_rows == 0:
        return [table]
    return [table.slice(off, rows_per_shard) for off in range(0, table.num_rows, rows_per_shard)]


def write_shards(table: pa.Table, dest: str | Path, rows_per_shard: int) -> list[str]:
    """Write the shards of `table` under `dest` (a folder or fsspec URI); returns their paths."""
    from ..media.fetch import is_remote, open_fs
    parts = shard_table(table, rows_per_shard)
    names = [f"part-{k:05d}.parquet" for k in range(len(parts))]
    if is_remote(str(dest)):
        fs, root = open_fs(str(dest))
        if fs.exists(root):
            fs.rm(root, recursive=True)
        fs.makedirs(root, exist_ok=True)
        out = []
        for name, part in zip(names, parts):
            with fs.open(f"{root.rstrip('/')}/{name}", "wb") as f:
                pq.write_table(part, f)
            out.append(f"{str(dest).rstrip('/')}/{name}")
        return out
    dest = Path(dest)

    def build(tmp: Path) -> None:
        for name, part in zip(names, parts):
            pq.write_table(part, tmp / name)
    replace_dir(build, dest)
    return [str(dest / n) for n in names]


def write_table_shards(dataset: str | Path, tables: tuple[str, ...], rows_per_shard: int,
                       dest_root: str | None = None) -> dict[str, list[str]]:
    """Shard DATASET/<table>.parquet for each table into DATASET/shards/<table>/ (or dest_root/<table>/)."""
    dataset = Path(dataset)
    out = {}
    for name in tables:
        src = dataset / f"{name}.parquet"
        if not src.exists():
            continue
        dest = f"{dest_root.rstrip('/')}/{name}" if dest_root else dataset / "shards" / name
        out[name] = write_shards(pq.read_table(src), dest, rows_per_shard)
    return out
