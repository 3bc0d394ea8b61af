"""Hugging Face `datasets` export of the kept samples (`export --format hf`).

EXPORT/hf/ holds the same rows twice (docs/formats.md "Hugging Face datasets"):

- a DatasetDict written by `save_to_disk` (one split per samples split): `datasets.load_from_disk(EXPORT/hf)`;
- Parquet shards in the Hub's layout, `data/{split}-{i:05d}-of-{n:05d}.parquet`, with a README.md
  dataset card whose YAML header names the files of each split (configs/data_files) and the
  features: `load_dataset("parquet", data_files=...)` locally, or the folder pushed to the Hub.

Columns: ids, `video` (datasets.Video(decode=False): {"bytes": the mp4, "path": "<clip_id>.mp4"};
cast to Video() with torchcodec installed to decode), captions and tags, clip geometry,
`references` (a list of datasets.Image(): the RGBA PNGs, alpha = mask), `reference_masks`
(the 8-bit mask PNGs), one `ref_*` list column per reference field, and the score_* columns.

Media are written as their storage structs and typed afterwards: Image/Video encoding would
drop the bytes of a path that happens to exist relative to the working directory.
"path" of every medium is its file name in the export (clips/, subjects/).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from ...engine.writer import replace_dir
from ..recipe_keys import need
from .lance_table import mask_png
from .samples import one_line
from .webdataset import SampleFiles, json_safe, resolved_samples, sample_record

FOLDER = "hf"
DATA_DIR = "data"
# samples column -> datasets Value dtype, in column order
SCALARS = [("sample_id", "string"), ("clip_id", "string"), ("video_id", "string"), ("group_id", "string"),
           ("caption", "string"), ("caption_short", "string"), ("caption_long", "string"),
           ("captioner", "string"), ("ref_mode", "string"), ("fps", "float64"), ("n_frames", "int64"),
           ("width", "int32"), ("height", "int32"), ("duration_s", "float64"), ("start_s", "float64"),
           ("end_s", "float64"), ("start_frame", "int64"), ("end_frame", "int64"), ("recut", "string"),
           ("n_refs", "int32")]
TAGS = ("subject_tags", "object_tags", "background_tags")
# reference struct field -> (column, Value dtype); bbox / frame_size are lists of int32
REF_FIELDS = [("subject_id", "string"), ("kind", "string"), ("category", "string"), ("phrase", "string"),
              ("source_clip_id", "string"), ("source_video_id", "string"), ("frame_idx", "int64"),
              ("bbox", "int32[]"), ("frame_size", "int32[]"), ("similarity", "float64"),
              ("det_score", "float64"), ("synthetic", "bool"), ("pair_id", "string")]


def _list(feature):
    import datasets
    return datasets.List(feature) if hasattr(datasets, "List") else datasets.Sequence(feature)


def hf_features(score_columns: list[str], typed: bool = True):
    """The export's Features; typed=False: Image/Video as their storage struct {bytes, path}."""
    import datasets
    V = datasets.Value
    media = {"bytes": V("binary"), "path": V("string")}
    image = datasets.Image() if typed else dict(media)
    video = datasets.Video(decode=False) if typed and hasattr(datasets, "Video") else dict(media)
    cols: dict = {}
    for name, dtype in SCALARS[:1]:
        cols[name] = V(dtype)
    cols["video"] = video
    for name, dtype in SCALARS[1:]:
        cols[name] = V(dtype)
    for name in TAGS:
        cols[name] = _list(V("string"))
    cols["references"] = _list(image)
    cols["reference_masks"] = _list(datasets.Image() if typed else dict(media))
    for name, dtype in REF_FIELDS:
        cols[f"ref_{name}"] = _list(_list(V("int32")) if dtype == "int32[]" else V(dtype))
    for name in sorted(score_columns):
        cols[name] = V("float64")
    return datasets.Features(cols)


def hf_row(row: dict, files: SampleFiles, score_columns: list[str]) -> dict:
    """One example in storage form: media as {bytes, path = the file's name}, the form save_to_disk
    and push_to_hub leave them in (they embed local files and keep only their names)."""
    refs = row.get("references") or []
    out = {name: row.get(name) for name, _ in SCALARS}
    out["caption"] = one_line(row.get("caption"))
    out["video"] = {"bytes": files.clip.read_bytes(), "path": files.clip.name}
    for name in TAGS:
        out[name] = list(row.get(name) or [])
    out["references"] = [{"bytes": p.read_bytes(), "path": p.name} for p in files.refs]
    out["reference_masks"] = [{"bytes": mask_png(p, m), "path": p.name[:-len(".png")] + ".mask.png"}
                              for p, m in zip(files.refs, files.masks)]
    for name, _ in REF_FIELDS:
        out[f"ref_{name}"] = [ref.get(name) for ref in refs]
    for name in score_columns:
        out[name] = row.get(name)
    return json_safe(out)


def _examples(items: list[tuple[dict, SampleFiles]], score_columns: list[str]) -> Iterator[dict]:
    for row, files in items:
        yield hf_row(row, files, score_columns)


def _fingerprint(split: str, items: list[tuple[dict, SampleFiles]], features) -> str:
    """A content fingerprint for the split (datasets stores it in state.json; a random one would
    make every write differ): features, the portable sample rows and media file sizes."""
    h = hashlib.blake2b(digest_size=8)
    h.update(json.dumps(features.to_dict(), sort_keys=True).encode())
    h.update(split.encode())
    for row, files in items:
        h.update(json.dumps(sample_record(row), sort_keys=True, default=str).encode())
        for p in [files.clip, *files.refs, *(m for m in files.masks if m is not None)]:
            h.update(f"{p.name}:{p.stat().st_size};".encode())
    return h.hexdigest()


def build_split(split: str, items: list[tuple[dict, SampleFiles]], score_columns: list[str], cache: Path):
    """A Dataset of one split, written through the cache folder (rows stream to disk)."""
    import datasets

    raw = hf_features(score_columns, typed=False)
    typed = hf_features(score_columns, typed=True)
    fp = _fingerprint(split, items, typed)
    ds = datasets.Dataset.from_generator(_examples, features=raw, cache_dir=str(cache), split=split,
                                         gen_kwargs={"items": items, "score_columns": tuple(score_columns)},
                                         fingerprint=fp)
    info = datasets.DatasetInfo(description="s2vforge export: subject-to-video training samples", features=typed)
    return datasets.Dataset(ds.data, info=info, split=datasets.NamedSplit(split), fingerprint=fp)


def shard_bounds(n_rows: int, n_shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) row ranges of near-equal size (datasets' contiguous sharding)."""
    div, mod = divmod(n_rows, n_shards)
    bounds, start = [], 0
    for i in range(n_shards):
        stop = start + div + (1 if i < mod else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def write_parquet_split(ds, split: str, data_dir: Path, max_shard_size: int, row_group_bytes: int) -> list[dict]:
    """The split's Parquet shards; [{path, n_rows, bytes}]. Row groups hold about row_group_bytes."""
    import pyarrow.parquet as pq

    table = ds.data.table
    nbytes = table.nbytes
    n_shards = min(int(nbytes / max_shard_size) + 1, max(1, len(table)))   # save_to_disk's count
    row_group = max(1, int(row_group_bytes // max(1, nbytes / max(1, len(table)))))
    metadata = ds.features.arrow_schema.metadata
    out = []
    for i, (start, stop) in enumerate(shard_bounds(len(table), n_shards)):
        name = f"{split}-{i:05d}-of-{n_shards:05d}.parquet"
        part = table.slice(start, stop - start).replace_schema_metadata(metadata)
        pq.write_table(part, data_dir / name, row_group_size=row_group)
        out.append({"path": f"{DATA_DIR}/{name}", "n_rows": stop - start, "bytes": (data_dir / name).stat().st_size})
    return out


def dataset_card(features, splits: dict[str, dict], parquet: dict[str, list[dict]]) -> str:
    """README.md: the Hub's YAML header (configs -> data files per split, dataset_info features
    and split sizes) and a short description of the columns."""
    import yaml

    header: dict = {}
    if splits:      # the Hub rejects a config without data files (an export that kept nothing)
        header["configs"] = [{"config_name": "default",
                              "data_files": [{"split": s, "path": f"{DATA_DIR}/{s}-*"} for s in splits]}]
    header |= {
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [{"name": s, "num_bytes": v["num_bytes"], "num_examples": v["num_examples"]}
                       for s, v in splits.items()],
            "download_size": sum(f["bytes"] for files in parquet.values() for f in files),
            "dataset_size": sum(v["num_bytes"] for v in splits.values()),
        },
    }
    split_lines = "\n".join(f"- `{s}`: {v['num_examples']} samples, "
                            + ", ".join(f"`{f['path']}`" for f in parquet[s]) for s, v in splits.items())
    body = f"""# s2vforge subject-to-video samples

Training samples exported by s2vforge: one row per clip with its caption and subject references.

{split_lines}

```python
import datasets
ds = datasets.load_dataset("parquet", data_files={{{", ".join(f'"{s}": "{DATA_DIR}/{s}-*.parquet"' for s in splits)}}})
# or, from the export folder: datasets.load_from_disk("hf")
```

- `video`: the clip as {{"bytes", "path"}} (Video(decode=False)); `ds.cast_column("video", datasets.Video())`
  decodes it when torchcodec is installed.
- `references`: the reference crops, RGBA PNG (alpha = the subject's mask), in reference order;
  `reference_masks`: the same masks as 8-bit PNG; `ref_*`: one list per reference field
  (kind self / cross_clip / cross_video, category, phrase, source clip, box, identity similarity).
- `score_*`: the curation scores of the clip.
"""
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def _progress_bars_off():
    """Silence datasets' bars while writing; returns the function that restores the previous state."""
    import datasets
    from datasets.utils import are_progress_bars_disabled
    was_off = are_progress_bars_disabled()
    datasets.disable_progress_bars()
    return (lambda: None) if was_off else datasets.enable_progress_bars


def write_hf(export_dir: Path, samples: pa.Table, cfg: dict) -> dict:
    """EXPORT/hf/: save_to_disk DatasetDict + Hub-layout Parquet + README.md; returns counts and skipped.

    cfg is the recipe's `export` section (reads export.hf.max_shard_size, row_group_bytes)."""
    import datasets

    hcfg = need(cfg, "hf", "export")
    max_shard_size = int(need(hcfg, "max_shard_size", "export.hf"))
    row_group_bytes = int(need(hcfg, "row_group_bytes", "export.hf"))
    if max_shard_size < 1 or row_group_bytes < 1:
        raise ValueError("export.hf.max_shard_size and row_group_bytes must be >= 1")
    export_dir = Path(export_dir)
    items, skipped = resolved_samples(export_dir, samples)
    score_columns = sorted(n for n in samples.column_names if n.startswith("score_"))
    by_split: dict[str, list] = {}
    for row, files in items:
        by_split.setdefault(str(row["split"]), []).append((row, files))
    result: dict = {}

    def build(tmp: Path) -> None:
        cache = tmp / ".cache"
        dsets = {s: build_split(s, by_split[s], score_columns, cache) for s in sorted(by_split)}
        datasets.DatasetDict(dsets).save_to_disk(str(tmp), max_shard_size=max_shard_size)
        data_dir = tmp / DATA_DIR
        data_dir.mkdir()
        parquet = {s: write_parquet_split(ds, s, data_dir, max_shard_size, row_group_bytes) for s, ds in dsets.items()}
        splits = {s: {"num_examples": len(ds), "num_bytes": ds.data.nbytes} for s, ds in dsets.items()}
        features = hf_features(score_columns)
        (tmp / "README.md").write_text(dataset_card(features, splits, parquet))
        del dsets
        shutil.rmtree(cache, ignore_errors=True)
        result.update(splits={s: v["num_examples"] for s, v in splits.items()},
                      parquet=[f["path"] for files in parquet.values() for f in files])

    restore = _progress_bars_off()
    try:
        replace_dir(build, export_dir / FOLDER)
    finally:
        restore()
    skipped = sorted(skipped, key=lambda s: str(s["sample_id"]))
    return {"dir": FOLDER, "n_samples": len(items), **result, "datasets_version": datasets.__version__,
            "n_skipped": len(skipped), "skipped": skipped}
