"""The samples a dataset object serves: samples.parquet of an export, or built over a dataset.

An export folder has samples.parquet (all rows, keep=false included). A dataset folder (no
samples.parquet, a clips.parquet) gets its rows from stages.export.samples.build_samples with
the recipe's export section, the same rule the export command applies; a dataset has no
splits, so only split=None is served from one.

Only rows with keep = true are served; a row whose clip file is missing, whose n_frames is
unknown, or (short: skip) that is too short is left out here, once, with its reason in
`excluded`, so an epoch never meets it. The rows stay in an Arrow table (not Python dicts):
forked DataLoader workers then share its buffers instead of copying pages as refcounts change.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .frames import fits
from .geometry import bucket_for
from .settings import LoaderSettings


def read_samples(root: Path, cfg: dict) -> tuple[pa.Table, str]:
    """(samples table, "export" | "dataset")."""
    root = Path(root)
    if (root / "samples.parquet").is_file():
        return pq.read_table(root / "samples.parquet"), "export"
    if (root / "clips.parquet").is_file():
        from ..stages.export.samples import build_samples
        return build_samples(root, cfg), "dataset"
    raise FileNotFoundError(f"{root}: neither an export folder (samples.parquet) nor a dataset folder "
                            f"(clips.parquet); run `s2vforge export DATASET --out {root}` or point at a dataset")


def served_rows(table: pa.Table, root: Path, split: str | None, source: str,
                st: LoaderSettings) -> tuple[pa.Table, list[tuple[str, str]], list[int] | None]:
    """(the kept rows to serve sorted by sample_id, [(sample_id, reason)] left out, bucket per row
    or None without buckets)."""
    if split is not None and source == "dataset":
        raise ValueError(f"{root} is a dataset folder: it has no splits (they are drawn by `s2vforge export`); "
                         f"pass split=None or export it first")
    keep = pc.fill_null(table.column("keep"), False)
    if split is not None:
        keep = pc.and_(keep, pc.fill_null(pc.equal(table.column("split"), split), False))
    table = table.filter(keep)
    table = table.take(pc.sort_indices(table, sort_keys=[("sample_id", "ascending")]))
    ids = table.column("sample_id").to_pylist()
    paths = table.column("clip_path").to_pylist()
    n_frames = table.column("n_frames").to_pylist()
    widths = table.column("width").to_pylist() if st.buckets else None
    heights = table.column("height").to_pylist() if st.buckets else None
    excluded: list[tuple[str, str]] = []
    serve: list[bool] = []
    buckets: list[int] = []
    for k, (sid, rel, n) in enumerate(zip(ids, paths, n_frames)):
        reason = None
        if not rel or not (root / rel).is_file():
            reason = f"missing_clip: {rel}"
        elif n is None or n < 1:
            reason = "no_frames: n_frames unknown or 0"
        elif st.short == "skip" and not fits(n, st.num_frames, st.stride):
            reason = f"short_clip: {n} frames < {st.span} ({st.num_frames} at stride {st.stride})"
        elif st.buckets:
            try:
                buckets.append(bucket_for(widths[k], heights[k], st.buckets))
            except (ValueError, TypeError):
                reason = f"no_size: cannot bucket {widths[k]}x{heights[k]}"
        if reason is not None:
            excluded.append((sid, reason))
        serve.append(reason is None)
    return table.filter(pa.array(serve, type=pa.bool_())), excluded, (buckets if st.buckets else None)
