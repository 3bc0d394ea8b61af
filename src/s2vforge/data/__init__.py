"""The PyTorch loader over exported samples, usable without torch (docs/loader.md).

    from s2vforge.data import S2VDataset, S2VShardDataset, BucketBatchSampler
    ds = S2VDataset(DIR, split="train", num_frames=49, stride=3, size=(480, 832), refs="cross")

Names load on first use, so importing the package pulls in neither torch nor PyAV.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "S2VDataset": "dataset",
    "S2VShardDataset": "shards",
    "BucketBatchSampler": "buckets",
    "collate": "collate",
    "save_contact_sheet": "contact",
    "ClipReadError": "video",
    "read_frames": "video",
    "LoaderSettings": "settings",
    "loader_settings": "settings",
    "frame_indices": "frames",
    "cover_crop": "geometry",
    "bucket_for": "geometry",
    "list_shards": "shards",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 's2vforge.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
