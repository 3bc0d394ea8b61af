"""WebDataset shards: read back the way trainers do (webdataset) and with tarfile, against the source files."""
from __future__ import annotations

import copy
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from formats_fixture import kept_rows, samples_table
from s2vforge.stages.export.webdataset import write_webdataset
from s2vforge.stages.recipe_keys import MissingRecipeKey

wds = pytest.importorskip("webdataset")


def cfg_with(format_cfg, **wd):
    cfg = copy.deepcopy(format_cfg)
    cfg["webdataset"].update(wd)
    return cfg


def shard_urls(export: Path, split: str) -> list[str]:
    return [str(p) for p in sorted((export / "webdataset").glob(f"{split}-*.tar"))]


def expected_members(export: Path, row: dict) -> list[tuple[str, bytes | None]]:
    key = row["sample_id"]
    refs = [(f"{key}.ref{i}.png", (export / r["rgba_path"]).read_bytes()) for i, r in enumerate(row["references"])]
    return [(f"{key}.mp4", (export / row["clip_path"]).read_bytes()), (f"{key}.json", None), (f"{key}.txt", None)] + refs


def test_shards_hold_every_kept_sample_in_member_order(export_copy, format_cfg):
    export = export_copy()
    summary = write_webdataset(export, samples_table(export), format_cfg)
    kept = kept_rows(export)
    dropped = [r["sample_id"] for r in samples_table(export).to_pylist() if not r["keep"]]
    assert summary["n_samples"] == len(kept) == 6 and summary["skipped"] == []
    assert summary["splits"] == {"train": 4, "val": 2}
    assert sorted(p.name for p in (export / "webdataset").iterdir()) == [
        "index.json", "train-000000.parquet", "train-000000.tar", "train-000000_stats.json",
        "val-000000.parquet", "val-000000.tar", "val-000000_stats.json"]
    for split in ("train", "val"):
        rows = [r for r in kept if r["split"] == split]
        with tarfile.open(export / "webdataset" / f"{split}-000000.tar") as tf:
            infos = tf.getmembers()
            got = [(m.name, tf.extractfile(m).read()) for m in infos]
        want = [m for r in rows for m in expected_members(export, r)]
        assert [n for n, _ in got] == [n for n, _ in want]
        for (name, data), (_, truth) in zip(got, want):
            if truth is not None:
                assert data == truth, name
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, m.type) for m in infos} == {
            (0, 0, 0, "", "", 0o644, tarfile.REGTYPE)}
        assert not any(d in n for d in dropped for n, _ in got)
    # the zero-reference sample has exactly three members, the three-reference one six
    counts = {}
    with tarfile.open(export / "webdataset" / "train-000000.tar") as tf:
        for name in tf.getnames():
            counts[name.split(".")[0]] = counts.get(name.split(".")[0], 0) + 1
    assert sorted(counts.values()) == [3, 4, 4, 6]


def test_webdataset_reads_keys_members_bytes_and_rgba(export_copy, format_cfg):
    export = export_copy()
    write_webdataset(export, samples_table(export), format_cfg)
    for split in ("train", "val"):
        rows = {r["sample_id"]: r for r in kept_rows(export) if r["split"] == split}
        seen = []
        for s in wds.WebDataset(shard_urls(export, split), shardshuffle=False):
            row = rows[s["__key__"]]
            seen.append(s["__key__"])
            exts = {k for k in s if not k.startswith("__")}
            assert exts == {"mp4", "json", "txt"} | {f"ref{i}.png" for i in range(len(row["references"]))}
            assert s["mp4"] == (export / row["clip_path"]).read_bytes()
            for i, ref in enumerate(row["references"]):
                assert s[f"ref{i}.png"] == (export / ref["rgba_path"]).read_bytes()
            meta = json.loads(s["json"])
            assert meta["sample_id"] == row["sample_id"] and meta["split"] == split
            assert (meta["fps"], meta["n_frames"], meta["width"], meta["height"]) == (10.0, 6, 96, 64)
            assert meta["caption"] == row["caption"]
            assert "source_clip_path" not in meta and "source_video_path" not in meta
            assert [r["subject_id"] for r in meta["references"]] == [r["subject_id"] for r in row["references"]]
            assert all("mask_rle" not in r for r in meta["references"])
            assert s["txt"].decode() == " ".join(row["caption"].split())
        assert seen == sorted(rows)
    # decoded the way trainers keep alpha: pilrgba gives the RGBA pixels of the PNG
    row = next(r for r in kept_rows(export) if r["n_refs"] == 3)
    for s in wds.WebDataset(shard_urls(export, "train"), shardshuffle=False).decode("pilrgba"):
        if s["__key__"] == row["sample_id"]:
            assert isinstance(s["json"], dict) and s["txt"] == row["caption"]
            for i, ref in enumerate(row["references"]):
                with Image.open(export / ref["rgba_path"]) as im:
                    truth = np.asarray(im)
                assert s[f"ref{i}.png"].mode == "RGBA"
                assert np.array_equal(np.asarray(s[f"ref{i}.png"]), truth)
                assert truth[..., 3].min() == 0 and truth[..., 3].max() == 255   # the mask is in there
    # .decode() with no image handler: json -> dict, txt -> str, mp4 / png stay the files' bytes
    for s in wds.WebDataset(shard_urls(export, "val"), shardshuffle=False).decode():
        row = next(r for r in kept_rows(export) if r["sample_id"] == s["__key__"])
        assert s["json"]["sample_id"] == row["sample_id"] and s["txt"] == row["caption"]
        assert s["mp4"] == (export / row["clip_path"]).read_bytes()
        assert s["ref0.png"] == (export / row["references"][0]["rgba_path"]).read_bytes()
    tuples = list(wds.WebDataset(shard_urls(export, "val"), shardshuffle=False).to_tuple("mp4", "json", "txt"))
    val = [r for r in kept_rows(export) if r["split"] == "val"]
    assert [json.loads(j)["sample_id"] for _, j, _ in tuples] == [r["sample_id"] for r in val]
    assert [m for m, _, _ in tuples] == [(export / r["clip_path"]).read_bytes() for r in val]


def test_nan_score_and_two_line_caption(export_copy, format_cfg):
    export = export_copy()
    write_webdataset(export, samples_table(export), format_cfg)
    row = next(r for r in kept_rows(export) if "\n" in r["caption"])
    with tarfile.open(export / "webdataset" / "train-000000.tar") as tf:
        meta = json.loads(tf.extractfile(f"{row['sample_id']}.json").read())   # strict JSON: no NaN token
        text = tf.extractfile(f"{row['sample_id']}.txt").read().decode()
    assert meta["score_aesthetic"] is None and meta["score_motion"] == row["score_motion"]
    assert text == "A man with a camera on a lawn." and "\n" not in text


def test_index_stats_and_parquet_describe_the_shards(export_copy, format_cfg):
    export = export_copy()
    write_webdataset(export, samples_table(export), cfg_with(format_cfg, max_samples_per_shard=3))
    out = export / "webdataset"
    index = json.loads((out / "index.json").read_text())
    assert [s["name"] for s in index["shards"]] == ["train-000000.tar", "train-000001.tar", "val-000000.tar"]
    kept = kept_rows(export)
    for entry in index["shards"]:
        tar = out / entry["name"]
        stem = entry["name"][:-4]
        with tarfile.open(tar) as tf:
            keys = list(dict.fromkeys(n.split(".")[0] for n in tf.getnames()))
        assert entry["bytes"] == tar.stat().st_size
        assert (entry["n_samples"], entry["first_key"], entry["last_key"]) == (len(keys), keys[0], keys[-1])
        stats = json.loads((out / f"{stem}_stats.json").read_text())
        assert (stats["count"], stats["successes"], stats["bytes"]) == (len(keys), len(keys), entry["bytes"])
        meta = pq.read_table(out / f"{stem}.parquet")
        assert meta.column("sample_id").to_pylist() == keys
        assert "source_clip_path" not in meta.column_names
        assert "mask_rle" not in [f.name for f in meta.schema.field("references").type.value_type]
        by_id = {r["sample_id"]: r for r in kept}
        assert meta.column("caption").to_pylist() == [by_id[k]["caption"] for k in keys]
    assert index["totals"] == {"n_shards": 3, "n_samples": 6, "n_skipped": 0,
                               "bytes": sum((out / s["name"]).stat().st_size for s in index["shards"])}
    assert index["splits"]["train"]["urls"] == "train-{000000..000001}.tar"
    urls = str(out / index["splits"]["train"]["urls"])     # the brace pattern webdataset expands
    assert len(list(wds.WebDataset(urls, shardshuffle=False))) == 4


def _member_blocks(tar: Path) -> dict[str, int]:
    """Bytes each sample takes in a tar: 512-byte header + data padded to 512, per member."""
    out: dict[str, int] = {}
    with tarfile.open(tar) as tf:
        for m in tf.getmembers():
            key = m.name.split(".")[0]
            out[key] = out.get(key, 0) + 512 + -(-m.size // 512) * 512
    return out


def _file_size(body: int) -> int:
    return -(-(body + 1024) // 10240) * 10240


@pytest.mark.parametrize("shard_size", [1, 30720, 40960, 10 ** 9])
def test_shard_size_is_respected_and_greedy(export_copy, format_cfg, shard_size):
    export = export_copy()
    write_webdataset(export, samples_table(export), cfg_with(format_cfg, shard_size=shard_size))
    out = export / "webdataset"
    index = json.loads((out / "index.json").read_text())
    for split in ("train", "val"):
        shards = [out / s["name"] for s in index["shards"] if s["split"] == split]
        blocks = [_member_blocks(t) for t in shards]
        assert sum(len(b) for b in blocks) == sum(1 for r in kept_rows(export) if r["split"] == split)
        for tar, b in zip(shards, blocks):
            assert tar.stat().st_size == _file_size(sum(b.values()))
            assert tar.stat().st_size <= shard_size or len(b) == 1       # only a lone sample may exceed it
        for prev, nxt in zip(blocks, blocks[1:]):                          # the next shard's first sample did not fit
            assert _file_size(sum(prev.values()) + next(iter(nxt.values()))) > shard_size
    n_shards = len(index["shards"])
    assert {1: 6, 10 ** 9: 2}.get(shard_size, n_shards) == n_shards
    assert 2 < n_shards < 6 or shard_size in (1, 10 ** 9)


def test_byte_identical_rewrite_and_resume(export_copy, format_cfg):
    a, b = export_copy("a"), export_copy("b")
    cfg = cfg_with(format_cfg, max_samples_per_shard=2)
    write_webdataset(a, samples_table(a), cfg)
    write_webdataset(b, samples_table(b), cfg)
    files = sorted(p.name for p in (a / "webdataset").iterdir())
    assert files == sorted(p.name for p in (b / "webdataset").iterdir()) and len(files) == 3 * 3 + 1
    for name in files:
        assert (a / "webdataset" / name).read_bytes() == (b / "webdataset" / name).read_bytes(), name
    # a rerun keeps finished shards as they are (same inode and mtime) and gives the same bytes
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (a / "webdataset").glob("*.tar")}
    write_webdataset(a, samples_table(a), cfg)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (a / "webdataset").glob("*.tar")} == before
    # a killed run: one shard's stats (its completion mark) missing, another's tar truncated
    (a / "webdataset" / "train-000001_stats.json").unlink()
    with open(a / "webdataset" / "val-000000.tar", "r+b") as f:
        f.truncate(1000)
    write_webdataset(a, samples_table(a), cfg)
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (a / "webdataset").glob("*.tar")}
    assert after["train-000000.tar"] == before["train-000000.tar"]
    assert after["train-000001.tar"] != before["train-000001.tar"] and after["val-000000.tar"] != before["val-000000.tar"]
    for name in files:
        assert (a / "webdataset" / name).read_bytes() == (b / "webdataset" / name).read_bytes(), name
    # fewer shards next time: the extra ones of the earlier export are removed
    write_webdataset(a, samples_table(a), format_cfg)
    assert sorted(p.name for p in (a / "webdataset").glob("*.tar")) == ["train-000000.tar", "val-000000.tar"]
    assert not list((a / "webdataset").glob("train-000001*"))


def test_bad_samples_become_skipped_records(export_copy, format_cfg):
    export = export_copy()
    table = samples_table(export)
    rows = table.to_pylist()
    kept = [r for r in rows if r["keep"]]
    (export / kept[0]["clip_path"]).unlink()                                   # clip missing
    (export / kept[1]["references"][2]["rgba_path"]).unlink()                  # one reference missing
    kept[2]["sample_id"] = "has.a.dot"                                         # not a WebDataset key
    kept[3]["clip_path"] = "../outside.mp4"                                    # not inside the export
    kept[4]["split"] = None                                                    # kept but no split
    import pyarrow as pa
    summary = write_webdataset(export, pa.Table.from_pylist(rows, schema=table.schema), format_cfg)
    reasons = {s["sample_id"]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {kept[0]["sample_id"], kept[1]["sample_id"], "has.a.dot", kept[3]["sample_id"],
                            kept[4]["sample_id"]}
    assert "clip" in reasons[kept[0]["sample_id"]] and "missing" in reasons[kept[0]["sample_id"]]
    assert "reference 2" in reasons[kept[1]["sample_id"]]
    assert "WebDataset key" in reasons["has.a.dot"]
    assert "inside the export" in reasons[kept[3]["sample_id"]]
    assert "split" in reasons[kept[4]["sample_id"]]
    assert summary["n_samples"] == 1
    index = json.loads((export / "webdataset" / "index.json").read_text())
    assert index["skipped"] == summary["skipped"] and index["totals"]["n_samples"] == 1
    assert shard_urls(export, "val") == []
    got = [s["__key__"] for s in wds.WebDataset(shard_urls(export, "train"), shardshuffle=False)]
    assert got == [kept[5]["sample_id"]]


def test_no_kept_samples_and_missing_keys(export_copy, format_cfg):
    export = export_copy()
    table = samples_table(export)
    import pyarrow.compute as pc
    summary = write_webdataset(export, table.filter(pc.invert(table.column("keep"))), format_cfg)
    assert summary["n_samples"] == 0 and summary["n_shards"] == 0
    assert json.loads((export / "webdataset" / "index.json").read_text())["shards"] == []
    with pytest.raises(MissingRecipeKey, match="export.webdataset.shard_size"):
        write_webdataset(export, table, {"webdataset": {"max_samples_per_shard": None}})
    with pytest.raises(ValueError, match="must be >= 1"):
        write_webdataset(export, table, cfg_with(format_cfg, shard_size=0))


def test_json_member_is_sorted_and_compact_utf8(export_copy, format_cfg):
    export = export_copy()
    write_webdataset(export, samples_table(export), format_cfg)
    with tarfile.open(export / "webdataset" / "val-000000.tar") as tf:
        name = next(n for n in tf.getnames() if n.endswith(".json"))
        raw = tf.extractfile(name).read()
    meta = json.loads(raw)
    assert raw == json.dumps(meta, sort_keys=True, ensure_ascii=False).encode()
    assert list(meta) == sorted(meta)
