"""A Lance table of the kept samples (`export --format lance`), for loaders that read rows at random.

EXPORT/lance/samples.lance: one row per kept sample, sorted by sample_id (row i of the table is
the i-th kept sample), with every column of samples.parquet except the exporting machine's
absolute paths, plus the media:

- `clip_bytes` (large_binary): the mp4 file. With `export.lance.clip_blob` it carries Lance's
  blob encoding (field metadata `lance-encoding:blob`): the bytes are stored apart from the
  column pages, a scan or `take` returns a small descriptor instead of the bytes, and
  `dataset.take_blobs("clip_bytes", indices=[i])` opens row i's clip as a lazy file; without
  it `take([i])` returns the bytes themselves.
- `ref_png` (list of binary): each reference's RGBA PNG (subjects/<id>.png), in reference order;
- `ref_mask_png` (list of binary): each reference's 8-bit mask PNG (subjects/<id>.mask.png,
  derived from the PNG's alpha when the export wrote none).

Lance names its data and manifest files with fresh UUIDs, so two writes are equal as tables
(`to_table()`), not byte for byte (docs/formats.md "Determinism").
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa

from ...engine.writer import replace_dir
from ..recipe_keys import need
from .webdataset import MACHINE_LOCAL, SampleFiles, resolved_samples

FOLDER = "lance"
TABLE = "samples.lance"
BLOB_METADATA = {"lance-encoding:blob": "true"}
MEDIA_COLUMNS = ("clip_bytes", "ref_png", "ref_mask_png")


def lance_schema(samples_schema: pa.Schema, clip_blob: bool) -> pa.Schema:
    """The samples schema less machine-local paths, plus the three media columns."""
    fields = [f for f in samples_schema if f.name not in MACHINE_LOCAL and f.name not in MEDIA_COLUMNS]
    fields.append(pa.field("clip_bytes", pa.large_binary(), metadata=BLOB_METADATA if clip_blob else None))
    fields.append(pa.field("ref_png", pa.list_(pa.large_binary())))
    fields.append(pa.field("ref_mask_png", pa.list_(pa.large_binary())))
    return pa.schema(fields)


def mask_png(rgba_png: Path, mask: Path | None) -> bytes:
    """The reference's mask PNG: the export's file, else its RGBA crop's alpha as 0/255 (the export's rule)."""
    if mask is not None:
        return mask.read_bytes()
    from .pipeline import reference_files
    return reference_files(rgba_png)[1]


def media_row(row: dict, files: SampleFiles) -> dict:
    out = {k: v for k, v in row.items() if k not in MACHINE_LOCAL}
    out["clip_bytes"] = files.clip.read_bytes()
    out["ref_png"] = [p.read_bytes() for p in files.refs]
    out["ref_mask_png"] = [mask_png(p, m) for p, m in zip(files.refs, files.masks)]
    return out


def _batches(items: list[tuple[dict, SampleFiles]], schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of batch_rows samples: the media of one batch in memory at a time."""
    for start in range(0, len(items), batch_rows):
        rows = [media_row(r, f) for r, f in items[start:start + batch_rows]]
        yield pa.RecordBatch.from_pylist(rows, schema=schema)


def write_lance(export_dir: Path, samples: pa.Table, cfg: dict) -> dict:
    """EXPORT/lance/samples.lance of the kept samples; returns rows, bytes and skipped samples.

    cfg is the recipe's `export` section (reads export.lance.clip_blob, batch_rows)."""
    import lance

    lcfg = need(cfg, "lance", "export")
    clip_blob = bool(need(lcfg, "clip_blob", "export.lance"))
    batch_rows = int(need(lcfg, "batch_rows", "export.lance"))
    if batch_rows < 1:
        raise ValueError("export.lance.batch_rows must be >= 1")
    export_dir = Path(export_dir)
    items, skipped = resolved_samples(export_dir, samples)
    schema = lance_schema(samples.schema, clip_blob)

    def build(tmp: Path) -> None:
        reader = pa.RecordBatchReader.from_batches(schema, _batches(items, schema, batch_rows))
        lance.write_dataset(reader, str(tmp), schema=schema, mode="create")

    dest = export_dir / FOLDER / TABLE
    dest.parent.mkdir(parents=True, exist_ok=True)
    replace_dir(build, dest)
    skipped = sorted(skipped, key=lambda s: str(s["sample_id"]))
    return {"dir": FOLDER, "path": f"{FOLDER}/{TABLE}", "n_rows": len(items), "clip_blob": clip_blob,
            "clip_bytes": sum(f.clip.stat().st_size for _, f in items),
            "n_references": sum(len(f.refs) for _, f in items), "n_skipped": len(skipped), "skipped": skipped}
