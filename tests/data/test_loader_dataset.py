"""S2VDataset over the fixture export: what is served, the item layout, frames by the sampling
rules, reference selection, buckets and the bucket batch sampler, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from loader_media import A, B, BANDS, C, D, E, read_index
from s2vforge.data import BucketBatchSampler, S2VDataset


def test_serves_kept_rows_of_a_split_and_says_why_others_are_left_out(export_dir, cfg):
    root, _ = export_dir
    ds = S2VDataset(root, cfg=cfg)
    assert ds.sample_ids == sorted([A, B, C, BANDS])                         # D keep=false, E no clip
    assert ds.excluded == [(E, f"missing_clip: clips/{E}.mp4")]
    assert S2VDataset(root, "train", cfg=cfg).sample_ids == [A, B]
    assert S2VDataset(root, "val", cfg=cfg).sample_ids == [C]
    assert D not in S2VDataset(root, "train", cfg=cfg).sample_ids
    skip = S2VDataset(root, cfg=cfg, short="skip")
    assert C not in skip.sample_ids and (C, "short_clip: 8 frames < 10 (4 at stride 3)") in skip.excluded
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert ds[-1]["sample_id"] == ds.sample_ids[-1]


def test_item_layout(export_dir, cfg):
    root, truth = export_dir
    ds = S2VDataset(root, cfg=cfg)
    item = ds[ds.sample_ids.index(A)]
    assert item["sample_id"] == A and item["caption"] == "a woman waves in a street" and item["fps"] == 25.0
    assert item["frames"].shape == (4, 64, 96, 3) and item["frames"].dtype == np.uint8
    assert item["frame_indices"].dtype == np.int64 and item["stride"] == 3
    assert item["refs"].shape == (4, 32, 32, 4) and item["refs"].dtype == np.uint8
    assert item["ref_masks"].shape == (4, 32, 32) and item["ref_masks"].dtype == bool
    assert item["valid_refs"].tolist() == [True, True, True, False] and item["n_refs"] == 3
    assert item["ref_kinds"] == ["self", "cross_clip", "self", ""]
    assert item["ref_ids"][:3] == truth["kept_a"]
    sim = item["ref_similarity"]
    assert np.isnan(sim[0]) and sim[1] == pytest.approx(0.83) and np.isnan(sim[3])
    assert not item["refs"][3].any() and not item["ref_masks"][3].any()      # padding is transparent
    assert np.array_equal(item["ref_masks"][0], item["refs"][0][..., 3] >= 128)


def test_center_frames_are_the_clip_frames_at_those_indices(export_dir, cfg):
    root, truth = export_dir
    ds = S2VDataset(root, cfg=cfg)
    item = ds[ds.sample_ids.index(A)]
    expect = [25, 28, 31, 34]                                                # (60 - 10) // 2 = 25
    assert item["frame_indices"].tolist() == expect
    assert [read_index(f) for f in item["frames"]] == expect
    for f, i in zip(item["frames"], expect):
        assert np.array_equal(f, truth["decoded"][A][i])                     # 96x64 at 64x96: no resize


def test_short_clip_rules_on_a_real_clip(export_dir, cfg):
    root, _ = export_dir
    for short, expect, stride in [("shrink_stride", [0, 2, 4, 6], 2), ("pad_last", [0, 3, 6, 6], 3)]:
        ds = S2VDataset(root, "val", cfg=cfg, short=short)
        item = ds[0]
        assert item["frame_indices"].tolist() == expect and item["stride"] == stride
        assert [read_index(f) for f in item["frames"]] == expect
    item = S2VDataset(root, "val", cfg=cfg, num_frames=11)[0]                # 11 > 8 frames: all, then the last
    assert item["frame_indices"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 7, 7, 7]
    assert [read_index(f) for f in item["frames"]] == [0, 1, 2, 3, 4, 5, 6, 7, 7, 7, 7]


def test_seeded_random_starts(export_dir, cfg):
    root, _ = export_dir
    a = S2VDataset(root, "train", cfg=cfg, sampling="random", seed=7)
    b = S2VDataset(root, "train", cfg=cfg, sampling="random", seed=7)
    first = [a[i]["frame_indices"].tolist() for i in range(len(a))]
    assert first == [b[i]["frame_indices"].tolist() for i in range(len(b))]
    assert np.array_equal(a[0]["frames"], b[0]["frames"])
    starts = []
    for epoch in range(6):
        a.set_epoch(epoch)
        item = a[a.sample_ids.index(A)]
        assert [read_index(f) for f in item["frames"]] == item["frame_indices"].tolist()
        starts.append(int(item["frame_indices"][0]))
    assert len(set(starts)) > 1 and all(0 <= s <= 50 for s in starts)
    a.set_epoch(0)
    assert [a[i]["frame_indices"].tolist() for i in range(len(a))] == first
    # the start depends on the sample id, not its position: the train split and the full set agree
    full = S2VDataset(root, cfg=cfg, sampling="random", seed=7)
    assert full[full.sample_ids.index(A)]["frame_indices"].tolist() == first[a.sample_ids.index(A)]


@pytest.mark.parametrize("choice, kinds", [("self", ["self", "self"]), ("cross", ["cross_clip"]),
                                           ("both", ["self", "cross_clip", "self"]),
                                           ("any", ["self", "cross_clip", "self"])])
def test_refs_choice_keeps_table_order(export_dir, cfg, choice, kinds):
    root, truth = export_dir
    ds = S2VDataset(root, "train", cfg=cfg, refs=choice)
    item = ds[ds.sample_ids.index(A)]
    assert item["ref_kinds"][:item["n_refs"]] == kinds
    order = [r for r in truth["kept_a"] if r in item["ref_ids"]]
    assert item["ref_ids"][:item["n_refs"]] == order


def test_max_refs_truncates_and_native_refs_are_lists(export_dir, cfg):
    root, _ = export_dir
    ds = S2VDataset(root, "train", cfg=cfg, max_refs=2)
    item = ds[ds.sample_ids.index(A)]
    assert item["n_refs"] == 2 and item["refs"].shape[0] == 2 and item["valid_refs"].tolist() == [True, True]
    cfg["loader"]["ref_size"] = None
    cfg["loader"]["max_refs"] = None
    item = S2VDataset(root, "train", cfg=cfg)[0]
    assert isinstance(item["refs"], list) and [r.shape for r in item["refs"]] == [(40, 40, 4), (50, 40, 4), (30, 20, 4)]
    assert "valid_refs" not in item


def test_normalize(export_dir, cfg):
    root, _ = export_dir
    raw = S2VDataset(root, "train", cfg=cfg)[0]["frames"].astype(np.float32)
    z = S2VDataset(root, "train", cfg=cfg, normalize="zero_one")[0]["frames"]
    m = S2VDataset(root, "train", cfg=cfg, normalize="minus_one_one")[0]["frames"]
    assert z.dtype == np.float32 and np.allclose(z, raw / 255) and np.allclose(m, raw / 127.5 - 1)


def test_buckets_assign_the_closest_aspect_and_frames_take_its_size(export_dir, cfg):
    root, _ = export_dir
    ds = S2VDataset(root, "train", cfg=cfg, buckets=[[32, 32], [32, 48], [48, 32]])
    got = dict(zip(ds.sample_ids, ds.bucket_ids.tolist()))
    assert got == {A: 1, B: 2}                                               # 96x64 -> 32x48, 64x96 -> 48x32
    assert ds[ds.sample_ids.index(A)]["frames"].shape == (4, 32, 48, 3)
    assert ds[ds.sample_ids.index(B)]["frames"].shape == (4, 48, 32, 3)
    assert ds[ds.sample_ids.index(B)]["bucket"] == 2


def test_bucket_batch_sampler(bulk_dir, cfg):
    root, rows = bulk_dir
    ds = S2VDataset(root, cfg=cfg, buckets=[[32, 48], [48, 32]])
    buckets = ds.bucket_ids
    assert sorted(np.bincount(buckets).tolist()) == [6, 6]
    s = BucketBatchSampler(ds, batch_size=4, seed=3, drop_last=False)
    batches = list(s)
    assert len(batches) == len(s) == 4                                      # 6 = 4 + 2 per bucket
    assert all(len({int(buckets[i]) for i in b}) == 1 for b in batches)      # one bucket per batch
    assert sorted(i for b in batches for i in b) == list(range(12))
    assert batches == list(BucketBatchSampler(ds, 4, 3, False))              # deterministic
    s.set_epoch(1)
    assert list(s) != batches
    dropped = list(BucketBatchSampler(ds, 4, 3, drop_last=True))
    assert len(dropped) == 2 and all(len(b) == 4 for b in dropped)
    # ranks: disjoint, same count, together every batch
    ranks = [list(BucketBatchSampler(ds, 4, 3, False, rank=r, world_size=3)) for r in range(3)]
    assert [len(r) for r in ranks] == [2, 2, 2]                              # 4 batches padded to 6
    flat = [tuple(b) for r in ranks for b in r]
    assert {tuple(b) for b in batches} == set(flat)
    ranks = [list(BucketBatchSampler(ds, 4, 3, True, rank=r, world_size=2)) for r in range(2)]
    assert [len(r) for r in ranks] == [1, 1] and not set(map(tuple, ranks[0])) & set(map(tuple, ranks[1]))
    with pytest.raises(ValueError):
        BucketBatchSampler(ds, 4, 3, False, rank=2, world_size=2)


def test_an_undecodable_clip_raises_naming_the_sample(export_dir, cfg, tmp_path):
    import shutil

    from s2vforge.data import ClipReadError
    root, _ = export_dir
    copy = tmp_path / "export"
    shutil.copytree(root, copy)
    (copy / "clips" / f"{B}.mp4").write_bytes(b"\x00" * 2000)
    ds = S2VDataset(copy, "train", cfg=cfg)
    with pytest.raises(ClipReadError, match=B):
        ds[ds.sample_ids.index(B)]
    assert ds[ds.sample_ids.index(A)]["n_refs"] == 3                         # the others still read


def test_not_a_folder_of_samples(tmp_path, cfg):
    with pytest.raises(FileNotFoundError, match="samples.parquet"):
        S2VDataset(tmp_path, cfg=cfg)
