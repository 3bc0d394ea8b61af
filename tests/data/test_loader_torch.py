"""With torch: DataLoader workers serve every sample exactly once (both datasets), default_collate
and collate give batches, and 1,000 samples through 2 workers leak no file or memory."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, IterableDataset  # noqa: E402

from loader_media import A, B  # noqa: E402
from s2vforge.data import BucketBatchSampler, S2VDataset, S2VShardDataset, collate  # noqa: E402


def _ids(loader) -> list[str]:
    return [sid for batch in loader for sid in batch["sample_id"]]


def test_map_style_with_two_workers_serves_each_sample_once(bulk_dir, cfg):
    root, rows = bulk_dir
    ds = S2VDataset(root, cfg=cfg)
    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    ids = [s for b in batches for s in b["sample_id"]]
    assert sorted(ids) == sorted(r["sample_id"] for r in rows)
    b = batches[0]
    assert b["frames"].shape == (3, 4, 64, 96, 3) and b["frames"].dtype == torch.uint8
    assert b["refs"].shape == (3, 4, 32, 32, 4) and b["valid_refs"].dtype == torch.bool
    assert b["n_refs"].tolist() == [1, 1, 1] and b["frame_indices"].shape == (3, 4)


def test_bucket_batches_through_a_dataloader(bulk_dir, cfg):
    root, _ = bulk_dir
    ds = S2VDataset(root, cfg=cfg, buckets=[[32, 48], [48, 32]])
    loader = DataLoader(ds, batch_sampler=BucketBatchSampler(ds, 4, seed=0, drop_last=False), num_workers=2)
    shapes = sorted(tuple(b["frames"].shape) for b in loader)
    assert shapes == [(2, 4, 32, 48, 3), (2, 4, 48, 32, 3), (4, 4, 32, 48, 3), (4, 4, 48, 32, 3)]


@pytest.mark.parametrize("one_shard", [False, True])
def test_shards_with_two_workers_serve_each_sample_once(bulk_shards, bulk_dir, cfg, one_shard):
    _, rows = bulk_dir
    source = [bulk_shards / "shard-000001.tar"] if one_shard else bulk_shards
    ds = S2VShardDataset(source, cfg=cfg, shuffle_buffer=3)
    assert isinstance(ds, IterableDataset)
    ids = _ids(DataLoader(ds, batch_size=2, num_workers=2))
    expect = [r["sample_id"] for r in rows[4:8]] if one_shard else [r["sample_id"] for r in rows]
    assert sorted(ids) == sorted(expect) and len(ids) == len(expect)


def test_collate_keeps_ragged_references_as_lists(export_dir, cfg):
    root, _ = export_dir
    cfg["loader"]["ref_size"] = None
    cfg["loader"]["max_refs"] = None
    ds = S2VDataset(root, "train", cfg=cfg)
    batch = collate([ds[0], ds[1]])
    assert batch["sample_id"] == [A, B]
    assert batch["frames"].shape == (2, 4, 64, 96, 3) and isinstance(batch["frames"], torch.Tensor)
    assert [len(r) for r in batch["refs"]] == [3, 1] and isinstance(batch["refs"][0][0], torch.Tensor)
    assert batch["n_refs"].tolist() == [3, 1] and batch["ref_kinds"][1] == ["self"]
    plain = collate([ds[0], ds[1]], to_torch=False)
    assert isinstance(plain["frames"], np.ndarray) and plain["refs"][0][2].shape == (30, 20, 4)


def test_contact_sheet_of_a_default_collate_batch(export_dir, cfg, tmp_path):
    """default_collate gives ref_kinds slot-major ([N] tuples of B); 4 samples x 4 slots is the
    case where shapes alone cannot tell, and the sheet still labels each sample's own references."""
    from s2vforge.data import save_contact_sheet
    root, _ = export_dir
    ds = S2VDataset(root, cfg=cfg)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert len(batch["ref_kinds"]) == 4 and len(batch["ref_kinds"][0]) == 4
    a = save_contact_sheet(batch, tmp_path / "dl.png").read_bytes()
    b = save_contact_sheet([ds[i] for i in range(4)], tmp_path / "items.png").read_bytes()
    c = save_contact_sheet(collate([ds[i] for i in range(4)]), tmp_path / "collate.png").read_bytes()
    assert a == b == c


def _fds(pid: int) -> tuple[int, int]:
    """(open descriptors, those on regular files: clips, crops, shards)."""
    total = files = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        total += 1
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")) and os.path.isfile(target):
            files += 1
    return total, files


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.parametrize("kind", ["map", "shards"])
def test_a_thousand_samples_leak_no_descriptor_and_no_memory(bulk_dir, bulk_shards, cfg, kind):
    """10 epochs of 100 samples through 2 persistent workers; descriptors and RSS are compared
    between the end of epoch 1 and the end of epoch 10, when no batch is in flight (torch passes
    batches between processes as descriptors, so mid-epoch counts move with the prefetch)."""
    import gc

    root, rows = bulk_dir
    cfg["loader"]["size"] = [32, 48]
    if kind == "map":
        ds = S2VDataset(root, cfg=cfg)
        loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True,
                            sampler=[k % len(ds) for k in range(100)])
    else:
        shards = sorted(bulk_shards.glob("*.tar")) * 9                        # 27 shards x 4 = 108 samples
        ds = S2VShardDataset(shards, cfg=cfg, shuffle=False)
        loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    seen, marks, pids = 0, [], None
    for epoch in range(10):
        it = iter(loader)
        pids = pids or [os.getpid()] + [w.pid for w in it._workers]
        for batch in it:
            seen += len(batch["sample_id"])
            assert max(_fds(p)[1] for p in pids) <= 8                        # never a pile of open files
        del batch, it
        gc.collect()
        if epoch in (0, 9):
            marks.append([(_fds(p), _rss_mb(p)) for p in pids])
    assert seen >= 1000
    for ((fd0, f0), rss0), ((fd1, f1), rss1) in zip(*marks):
        assert f1 <= f0 and fd1 <= fd0 + 2, marks                            # a leaked container: +1 fd a sample
        assert rss1 - rss0 < 40, marks                                       # MB, after warm-up
