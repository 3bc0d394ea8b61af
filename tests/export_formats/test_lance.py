"""Lance table: random access by row returns the right sample and its clip / reference bytes."""
from __future__ import annotations

import copy
import math

import pyarrow as pa
import pytest

from formats_fixture import kept_rows, samples_table
from s2vforge.stages.export.lance_table import write_lance

lance = pytest.importorskip("lance")


def nan_free(rows: list[dict]) -> list[dict]:
    """Rows with NaN as the string "nan" (NaN != NaN would fail an equality of equal tables)."""
    return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]


def open_table(export):
    return lance.dataset(str(export / "lance" / "samples.lance"))


def test_rows_sorted_with_every_column_and_no_dropped_sample(export_copy, format_cfg):
    export = export_copy()
    summary = write_lance(export, samples_table(export), format_cfg)
    ds = open_table(export)
    kept = kept_rows(export)
    assert summary["n_rows"] == ds.count_rows() == len(kept) == 6 and summary["skipped"] == []
    clip_field = ds.schema.field("clip_bytes")     # blob v2 (pylance >= 1x): an extension type; v1: the metadata
    assert "blob" in str(clip_field.type) or (clip_field.metadata or {}).get(b"lance-encoding:blob") == b"true"
    table_cols = [c for c in samples_table(export).column_names if c not in ("source_clip_path", "source_video_path")]
    assert ds.schema.names == table_cols + ["clip_bytes", "ref_png", "ref_mask_png"]
    light = ds.to_table(columns=table_cols)             # no media read
    assert light.column("sample_id").to_pylist() == [r["sample_id"] for r in kept]
    for got, want in zip(light.to_pylist(), kept):
        for k in table_cols:
            if isinstance(want[k], float) and math.isnan(want[k]):
                assert math.isnan(got[k]), k                # NaN kept as NaN (a table mirror, not JSON)
            else:
                assert got[k] == want[k], k


def test_take_returns_row_i_and_its_media(export_copy, format_cfg):
    export = export_copy()
    write_lance(export, samples_table(export), format_cfg)
    ds = open_table(export)
    kept = kept_rows(export)
    for i in [3, 0, len(kept) - 1, 1]:
        row = ds.take([i], columns=["sample_id", "n_refs", "ref_png", "ref_mask_png"]).to_pylist()[0]
        want = kept[i]
        assert row["sample_id"] == want["sample_id"] and row["n_refs"] == len(want["references"])
        assert row["ref_png"] == [(export / r["rgba_path"]).read_bytes() for r in want["references"]]
        assert row["ref_mask_png"] == [(export / r["mask_path"]).read_bytes() for r in want["references"]]
        blob = ds.take_blobs("clip_bytes", indices=[i])[0]      # the blob column: a lazy file per row
        assert blob.read() == (export / want["clip_path"]).read_bytes()
    # take of the blob column gives its descriptor, with the clip's true size
    desc = ds.take([2], columns=["clip_bytes"]).column("clip_bytes").to_pylist()[0]
    assert desc["size"] == (export / kept[2]["clip_path"]).stat().st_size


def test_without_blob_encoding_take_returns_the_bytes(export_copy, format_cfg):
    export = export_copy()
    cfg = copy.deepcopy(format_cfg)
    cfg["lance"].update(clip_blob=False, batch_rows=2)          # 3 batches of 2 rows
    write_lance(export, samples_table(export), cfg)
    ds = open_table(export)
    assert ds.schema.field("clip_bytes").type == pa.large_binary()
    kept = kept_rows(export)
    got = ds.take([4, 1], columns=["sample_id", "clip_bytes"]).to_pylist()
    assert [g["sample_id"] for g in got] == [kept[4]["sample_id"], kept[1]["sample_id"]]
    assert [g["clip_bytes"] for g in got] == [(export / kept[j]["clip_path"]).read_bytes() for j in (4, 1)]


def test_rewrite_gives_an_equal_table(export_copy, format_cfg):
    a, b = export_copy("a"), export_copy("b")
    write_lance(a, samples_table(a), format_cfg)
    write_lance(b, samples_table(b), format_cfg)
    write_lance(a, samples_table(a), format_cfg)          # over an existing table: replaced, not appended
    ta, tb = open_table(a), open_table(b)
    assert ta.count_rows() == tb.count_rows() == 6
    cols = [c for c in ta.schema.names if c != "clip_bytes"]
    ra, rb = ta.to_table(columns=cols).to_pylist(), tb.to_table(columns=cols).to_pylist()
    assert len(ra) == 6 and nan_free(ra) == nan_free(rb)
    n = ta.count_rows()
    assert [x.read() for x in ta.take_blobs("clip_bytes", indices=list(range(n)))] == \
        [x.read() for x in tb.take_blobs("clip_bytes", indices=list(range(n)))]


def test_mask_from_alpha_when_the_export_has_no_mask_file(export_copy, format_cfg):
    export = export_copy()
    table = samples_table(export)
    rows = table.to_pylist()
    target = next(r for r in rows if r["keep"] and r["n_refs"] == 1)
    target["references"][0]["mask_path"] = None
    missing = next(r for r in rows if r["keep"] and r["n_refs"] == 2)
    (export / missing["references"][1]["mask_path"]).unlink()
    summary = write_lance(export, pa.Table.from_pylist(rows, schema=table.schema), format_cfg)
    assert [s["sample_id"] for s in summary["skipped"]] == [missing["sample_id"]]
    assert "mask" in summary["skipped"][0]["reason"]
    ds = open_table(export)
    ids = ds.to_table(columns=["sample_id"]).column("sample_id").to_pylist()
    got = ds.take([ids.index(target["sample_id"])], columns=["ref_mask_png"]).to_pylist()[0]["ref_mask_png"]
    import io

    import numpy as np
    from PIL import Image
    with Image.open(io.BytesIO(got[0])) as im:
        derived = np.asarray(im)
    with Image.open(export / target["references"][0]["rgba_path"]) as im:
        alpha = np.asarray(im)[..., 3]
    assert derived.dtype == np.uint8 and np.array_equal(derived, np.where(alpha > 127, 255, 0))


def test_empty_export(export_copy, format_cfg):
    export = export_copy()
    table = samples_table(export)
    import pyarrow.compute as pc
    summary = write_lance(export, table.filter(pc.invert(table.column("keep"))), format_cfg)
    assert summary["n_rows"] == 0 and open_table(export).count_rows() == 0
