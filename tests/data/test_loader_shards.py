"""S2VShardDataset: the member layout, the same items as S2VDataset, order, ranks, bad members."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from loader_media import A, B, BANDS, C, read_index
from s2vforge.data import S2VDataset, S2VShardDataset
from s2vforge.data.shards import iter_shard, list_shards, shuffled, split_member


def test_member_names_split_into_key_and_extension():
    assert split_member("v1-0000000-0000060.ref3.png") == ("v1-0000000-0000060", "ref3.png")
    assert split_member("train/v1.json") == ("train/v1", "json")
    assert split_member("README") is None


def test_shard_sources(export_shards, tmp_path):
    names = [p.rsplit("/", 1)[1] for p in list_shards(export_shards)]
    assert names == ["shard-000000.tar", "shard-000001.tar"]                 # index.json order
    assert list_shards(export_shards / "index.json") == list_shards(export_shards)
    for p in sorted(export_shards.glob("*.tar"), reverse=True):
        (tmp_path / p.name).write_bytes(p.read_bytes())
    assert [p.rsplit("/", 1)[1] for p in list_shards(tmp_path)] == names    # no index: *.tar sorted
    one = str(export_shards / "shard-000001.tar")
    assert list_shards([f"file://{one}"]) == [one]
    with pytest.raises(ValueError, match="no network"):
        list_shards(["https://example.org/shard.tar"])


def test_members_are_read_in_the_layout(export_shards, export_dir):
    root, truth = export_dir
    groups = list(iter_shard(str(export_shards / "shard-000000.tar")))
    assert [g["__key__"] for g in groups] == [A, B]
    a = groups[0]
    n = len(truth["rows"][A]["references"])
    assert set(a) - {"__key__", "__shard__"} == {"mp4", "json", "txt"} | {f"ref{i}.png" for i in range(n)}
    assert a["mp4"] == (root / "clips" / f"{A}.mp4").read_bytes()
    assert json.loads(a["json"])["n_frames"] == 60 and a["txt"].decode() == truth["rows"][A]["caption"]


def _same(x, y):
    if isinstance(x, np.ndarray):
        return isinstance(y, np.ndarray) and x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
    return x == y


def test_items_equal_the_map_style_items(export_dir, export_shards, cfg):
    root, _ = export_dir
    mapped = {it["sample_id"]: it for it in (S2VDataset(root, cfg=cfg)[i] for i in range(4))}
    streamed = {it["sample_id"]: it for it in S2VShardDataset(export_shards, cfg=cfg, shuffle=False)}
    assert sorted(streamed) == sorted(mapped) == sorted([A, B, C, BANDS])
    for sid, item in streamed.items():
        assert set(item) == set(mapped[sid])
        for k in item:
            assert _same(item[k], mapped[sid][k]), (sid, k)
    assert [read_index(f) for f in streamed[A]["frames"]] == streamed[A]["frame_indices"].tolist()


def test_split_and_skip_rules_apply(export_shards, cfg):
    ds = S2VShardDataset(export_shards, "train", cfg=cfg, shuffle=False)
    assert [it["sample_id"] for it in ds] == [A, B]
    skip = S2VShardDataset(export_shards, cfg=cfg, shuffle=False, short="skip")
    assert C not in [it["sample_id"] for it in skip] and skip.skipped[0][0] == C


def _ids(ds) -> list[str]:
    return [it["sample_id"] for it in ds]


def test_seeded_shuffle_of_shards_and_buffer(bulk_shards, bulk_dir, cfg):
    _, rows = bulk_dir
    everything = sorted(r["sample_id"] for r in rows)
    plain = _ids(S2VShardDataset(bulk_shards, cfg=cfg, shuffle=False))
    assert plain == everything                                               # shard order, member order
    ds = S2VShardDataset(bulk_shards, cfg=cfg, shuffle_buffer=5, seed=11)
    e0 = _ids(ds)
    assert sorted(e0) == everything and e0 != plain
    assert e0 == _ids(S2VShardDataset(bulk_shards, cfg=cfg, shuffle_buffer=5, seed=11))
    ds.set_epoch(1)
    e1 = _ids(ds)
    assert sorted(e1) == everything and e1 != e0


def test_bounded_shuffle_buffer_keeps_every_item():
    rng = np.random.default_rng(0)
    out = list(shuffled(iter(range(100)), 10, rng))
    assert sorted(out) == list(range(100)) and out != list(range(100))
    # nothing leaves the buffer early: item k is emitted no sooner than position k - 10
    assert all(pos >= k - 10 for pos, k in enumerate(out))


@pytest.mark.parametrize("world_size", [2, 3, 5])
def test_ranks_partition_the_samples(bulk_shards, bulk_dir, cfg, world_size):
    """2-3 ranks: whole shards each (3 shards); 5 ranks > 3 shards: every k-th sample."""
    _, rows = bulk_dir
    parts = [_ids(S2VShardDataset(bulk_shards, cfg=cfg, rank=r, world_size=world_size, seed=4))
             for r in range(world_size)]
    flat = [s for p in parts for s in p]
    assert sorted(flat) == sorted(r["sample_id"] for r in rows)             # each sample exactly once
    with pytest.raises(ValueError):
        S2VShardDataset(bulk_shards, cfg=cfg, rank=world_size, world_size=world_size)


def _tar_with(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))


def test_bad_members_are_skipped_with_reasons(export_shards, tmp_path, cfg):
    good = {g["__key__"]: g for g in iter_shard(str(export_shards / "shard-000000.tar"))}
    a = good[A]
    members = {"broken.mp4": b"\x00" * 500, "broken.json": a["json"].replace(A.encode(), b"broken"),
               "nojson.mp4": a["mp4"], "badjson.json": b"{not json", "badjson.mp4": a["mp4"],
               f"{A}.mp4": a["mp4"], f"{A}.json": a["json"], f"{A}.txt": a["txt"]}
    members.update({f"{A}.{k}": v for k, v in a.items() if k.startswith("ref")})
    _tar_with(tmp_path / "bad.tar", members)
    (tmp_path / "truncated.tar").write_bytes((export_shards / "shard-000001.tar").read_bytes()[:3000])
    ds = S2VShardDataset([tmp_path / "bad.tar", tmp_path / "truncated.tar"], cfg=cfg, shuffle=False)
    with pytest.warns(RuntimeWarning):
        got = _ids(ds)
    assert A in got and "broken" not in got
    reasons = dict(ds.skipped)
    assert reasons["broken"].startswith("sample broken: <500 bytes>: ")
    assert reasons["nojson"] == "no .json member" and reasons["badjson"].startswith("bad .json")
    assert any(k.endswith("truncated.tar") for k in reasons)


def test_shards_of_the_export_webdataset_writer(export_dir, cfg, tmp_path):
    """The lead's writer (stages/export/webdataset.py) over the fixture export: same items as the
    map-style dataset, the split narrows the shards opened."""
    import shutil

    import pyarrow.parquet as pq

    from s2vforge.stages.export.webdataset import write_webdataset
    root, _ = export_dir
    copy = tmp_path / "export"
    shutil.copytree(root, copy)
    summary = write_webdataset(copy, pq.read_table(copy / "samples.parquet"),
                               {"webdataset": {"shard_size": 10 ** 9, "max_samples_per_shard": 1}})
    assert summary["n_samples"] == 4                                         # A, B, C, BANDS (E has no clip)
    mapped = {it["sample_id"]: it for it in (S2VDataset(copy, cfg=cfg)[i] for i in range(4))}
    streamed = {it["sample_id"]: it for it in S2VShardDataset(copy / "webdataset", cfg=cfg, shuffle=False)}
    assert sorted(streamed) == sorted(mapped)
    for sid, item in streamed.items():
        for k in item:
            assert _same(item[k], mapped[sid][k]), (sid, k)
    train = S2VShardDataset(copy / "webdataset", "train", cfg=cfg, shuffle=False)
    assert len(train.shards) == 2 and train.n_samples == 2 and _ids(train) == [A, B]
