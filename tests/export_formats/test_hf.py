"""Hugging Face datasets export: load_from_disk and the Hub Parquet layout, offline, against the source files."""
from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from PIL import Image

from formats_fixture import kept_rows, samples_table
from s2vforge.stages.export.hf_datasets import write_hf

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def hf_offline(tmp_path, monkeypatch):
    """No network and a throwaway HF_HOME, also for a datasets module imported before this test."""
    home = tmp_path / "hf_home"
    for k, v in {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(home),
                 "HF_DATASETS_CACHE": str(home / "datasets")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets", raising=False)
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", home / "modules", raising=False)
    import huggingface_hub.constants as hub
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True, raising=False)
    return home


def pixels(data_or_path) -> np.ndarray:
    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(src) as im:
        return np.asarray(im)


def check_split_rows(export: Path, dset, split: str) -> None:
    """Every row against the samples table and the export's files."""
    want = [r for r in kept_rows(export) if r["split"] == split]
    assert list(dset["sample_id"]) == [r["sample_id"] for r in want]
    for got, row in zip(dset, want):
        assert got["video"]["bytes"] == (export / row["clip_path"]).read_bytes()
        assert got["caption"] == " ".join(row["caption"].split())
        assert (got["fps"], got["n_frames"], got["width"], got["height"]) == (10.0, 6, 96, 64)
        refs = row["references"]
        assert len(got["references"]) == len(refs) == got["n_refs"]
        for im, mask, ref in zip(got["references"], got["reference_masks"], refs):
            assert im.mode == "RGBA" and np.array_equal(np.asarray(im), pixels(export / ref["rgba_path"]))
            assert mask.mode == "L" and np.array_equal(np.asarray(mask), pixels(export / ref["mask_path"]))
        assert got["ref_kind"] == [r["kind"] for r in refs]
        assert got["ref_subject_id"] == [r["subject_id"] for r in refs]
        assert got["ref_bbox"] == [r["bbox"] for r in refs]
        assert got["ref_similarity"] == [r["similarity"] for r in refs]
        score = row["score_aesthetic"]
        assert got["score_aesthetic"] == (None if score != score else score)   # NaN -> null
        assert got["score_motion"] == row["score_motion"]


def test_load_from_disk_rows_media_and_rgba(export_copy, format_cfg, monkeypatch):
    export = export_copy()
    monkeypatch.chdir(export / "clips")      # the media names exist here: encoding must still keep the bytes
    summary = write_hf(export, samples_table(export), format_cfg)
    assert summary["n_samples"] == 6 and summary["splits"] == {"train": 4, "val": 2} and summary["skipped"] == []
    dd = datasets.load_from_disk(str(export / "hf"))
    assert sorted(dd) == ["train", "val"]
    assert isinstance(dd["train"].features["video"], datasets.Video)
    assert isinstance(dd["train"].features["references"].feature, datasets.Image)
    for split in dd:
        check_split_rows(export, dd[split], split)
    zero = next(r for r in dd["train"] if r["n_refs"] == 0)
    assert zero["references"] == [] and zero["ref_kind"] == []
    dropped = [r["sample_id"] for r in samples_table(export).to_pylist() if not r["keep"]]
    assert not set(dropped) & set(list(dd["train"]["sample_id"]) + list(dd["val"]["sample_id"]))
    raw = dd["val"].with_format("arrow")[:]
    assert [v["path"] for v in raw.column("video").to_pylist()] == [f"{i}.mp4" for i in list(dd["val"]["sample_id"])]
    refs = raw.column("references").to_pylist()[1]
    want = [r for r in kept_rows(export) if r["split"] == "val"][1]["references"]
    assert [r["path"] for r in refs] == [Path(r["rgba_path"]).name for r in want]
    import pyarrow.parquet as pq                # the Parquet copy holds the bytes too (nothing re-read from cwd)
    videos = pq.read_table(export / "hf" / "data" / "val-00000-of-00001.parquet").column("video").to_pylist()
    assert [v["bytes"] for v in videos] == [(export / r["clip_path"]).read_bytes() for r in kept_rows(export)
                                            if r["split"] == "val"]


def test_parquet_layout_loads_offline_with_the_card(export_copy, format_cfg, hf_offline):
    export = export_copy()
    write_hf(export, samples_table(export), format_cfg)
    hf = export / "hf"
    assert sorted(p.name for p in (hf / "data").iterdir()) == ["train-00000-of-00001.parquet",
                                                               "val-00000-of-00001.parquet"]
    files = {s: sorted(str(p) for p in (hf / "data").glob(f"{s}-*.parquet")) for s in ("train", "val")}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(hf_offline / "c1"))
    assert isinstance(loaded["train"].features["video"], datasets.Video)
    for split in ("train", "val"):
        check_split_rows(export, loaded[split], split)
    # the folder itself, read through the README's configs (data_files per split)
    folder = datasets.load_dataset(str(hf), cache_dir=str(hf_offline / "c2"))
    assert {s: list(folder[s]["sample_id"]) for s in folder} == {s: list(loaded[s]["sample_id"]) for s in loaded}
    text = (hf / "README.md").read_text()
    assert text.startswith("---\n")
    card = yaml.safe_load(text.split("---\n")[1])
    assert card["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*"}, {"split": "val", "path": "data/val-*"}]}]
    names = [f["name"] for f in card["dataset_info"]["features"]]
    assert names == list(loaded["train"].features)
    assert {s["name"]: s["num_examples"] for s in card["dataset_info"]["splits"]} == {"train": 4, "val": 2}
    assert card["dataset_info"]["download_size"] == sum(p.stat().st_size for p in (hf / "data").iterdir())


def test_rewrite_is_byte_identical(export_copy, format_cfg):
    a, b = export_copy("a"), export_copy("b")
    write_hf(a, samples_table(a), format_cfg)
    write_hf(b, samples_table(b), format_cfg)
    write_hf(a, samples_table(a), format_cfg)        # over the earlier folder: replaced as a whole
    fa = sorted(p.relative_to(a / "hf") for p in (a / "hf").rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b / "hf") for p in (b / "hf").rglob("*") if p.is_file())
    assert fa == fb and Path("README.md") in fa and Path("train/state.json") in fa
    assert not [p for p in fa if p.parts[0].startswith(".")]          # no cache or temp left behind
    for rel in fa:
        assert (a / "hf" / rel).read_bytes() == (b / "hf" / rel).read_bytes(), rel


def test_small_shard_size_gives_several_parquet_files(export_copy, format_cfg):
    export = export_copy()
    cfg = copy.deepcopy(format_cfg)
    cfg["hf"].update(max_shard_size=30_000, row_group_bytes=1)
    write_hf(export, samples_table(export), cfg)
    names = sorted(p.name for p in (export / "hf" / "data").iterdir())
    train = [n for n in names if n.startswith("train-")]
    assert len(train) > 1 and all(n.endswith(f"-of-{len(train):05d}.parquet") for n in train)
    assert [n[6:11] for n in train] == [f"{i:05d}" for i in range(len(train))]
    import pyarrow.parquet as pq
    meta = pq.ParquetFile(export / "hf" / "data" / train[0]).metadata
    assert meta.num_row_groups == meta.num_rows                        # row groups of ~row_group_bytes: 1 row
    dd = datasets.load_from_disk(str(export / "hf"))
    assert len(dd["train"].cache_files) > 1                            # save_to_disk sharded too
    files = {"train": [str(export / "hf" / "data" / n) for n in train]}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(export.parent / "c"))
    assert list(loaded["train"]["sample_id"]) == list(dd["train"]["sample_id"])


def test_bad_samples_are_skipped_with_reasons(export_copy, format_cfg):
    export = export_copy()
    table = samples_table(export)
    rows = table.to_pylist()
    kept = [r for r in rows if r["keep"]]
    (export / kept[1]["references"][0]["rgba_path"]).unlink()
    kept[3]["split"] = "no/slash"
    summary = write_hf(export, pa.Table.from_pylist(rows, schema=table.schema), format_cfg)
    assert {s["sample_id"] for s in summary["skipped"]} == {kept[1]["sample_id"], kept[3]["sample_id"]}
    dd = datasets.load_from_disk(str(export / "hf"))
    assert len(dd["train"]) + len(dd["val"]) == 4


def test_an_export_that_kept_nothing(export_copy, format_cfg):
    export = export_copy()
    table = samples_table(export)
    import pyarrow.compute as pc
    summary = write_hf(export, table.filter(pc.invert(table.column("keep"))), format_cfg)
    assert summary["n_samples"] == 0 and summary["parquet"] == []
    assert len(datasets.load_from_disk(str(export / "hf"))) == 0
    card = yaml.safe_load((export / "hf" / "README.md").read_text().split("---\n")[1])
    assert "configs" not in card and card["dataset_info"]["splits"] == []
