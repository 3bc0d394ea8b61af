"""S2VDataset: map-style access to exported samples, numpy items, no torch needed.

    ds = S2VDataset(DIR, split="train", num_frames=49, stride=3, size=(480, 832), refs="cross")
    item = ds[0]                       # dict of numpy arrays / str / numbers (items.py)
    DataLoader(ds, batch_size=2, num_workers=4)   # default_collate makes tensors

DIR is an export folder or a dataset folder (table.py). Settings are the recipe's
export.loader section; keywords replace single keys (settings.py). Random frame starts depend
on (seed, epoch, sample id) only: `set_epoch(e)` before each epoch (with persistent_workers the
workers keep the epoch they started with, as with any dataset attribute).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .items import build_item
from .settings import default_export_cfg, loader_settings
from .table import read_samples, served_rows


class S2VDataset:
    """Exported training samples as items (frames, caption, references); see the module doc."""

    def __init__(self, root, split: str | None = None, *, cfg: dict | None = None, epoch: int = 0, **settings):
        self.root = Path(root)
        export_cfg = default_export_cfg() if cfg is None else cfg
        self.settings = loader_settings(export_cfg, settings)
        table, self.source = read_samples(self.root, export_cfg)
        self.split = split
        self._table, self.excluded, buckets = served_rows(table, self.root, split, self.source, self.settings)
        self._buckets = None if buckets is None else np.asarray(buckets, dtype=np.int64)
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._table.num_rows

    @property
    def sample_ids(self) -> list[str]:
        return self._table.column("sample_id").to_pylist()

    @property
    def bucket_ids(self) -> np.ndarray | None:
        """The bucket of every sample (index into settings.buckets), None without buckets."""
        return None if self._buckets is None else self._buckets.copy()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def row(self, index: int) -> dict:
        """The samples.parquet row of item `index`."""
        return self._table.slice(self._index(index), 1).to_pylist()[0]

    def _index(self, index: int) -> int:
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        return i

    def __getitem__(self, index: int) -> dict:
        i = self._index(index)
        sample = self.row(i)
        st = self.settings
        bucket = None if self._buckets is None else int(self._buckets[i])
        out_hw = st.size if bucket is None else st.buckets[bucket]
        root = self.root

        def open_ref(_pos: int, ref: dict):
            rel = ref.get("rgba_path")
            return (root / rel) if rel else None

        return build_item(sample, root / sample["clip_path"], open_ref, st, self.epoch, out_hw, bucket=bucket)

    def __repr__(self) -> str:
        return (f"S2VDataset({str(self.root)!r}, split={self.split!r}, {len(self)} samples, "
                f"{len(self.excluded)} excluded, source={self.source})")
