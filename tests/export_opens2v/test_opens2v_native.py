"""write_opens2v over a dataset our own stages made (curate, caption, subjects, pair on the demo's
two cast videos: Grace Hopper in two hard-cut shots and a coffee cup in two videos, so there are
cross_clip face/person pairs and a cross_video object pair): records in the published shape,
scores and pairs where they belong, and export -> import -> export byte-identical."""
from __future__ import annotations

import filecmp
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from s2vforge.stages.export.import_opens2v import import_opens2v
from s2vforge.stages.export.opens2v_json import cluster_of_key, native_key, record_problems

from .test_opens2v_roundtrip import export, files_of

pytestmark = pytest.mark.slow          # ~30 s: four stages over two short videos


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    from s2vforge.corpus.synth import _write_cast_videos
    from s2vforge.engine.driver import run_stage
    from s2vforge.inputs import expand_inputs
    from s2vforge.recipes import load_recipe
    from s2vforge.stages.caption.pipeline import CaptionStage, caption_items
    from s2vforge.stages.curate import CurateStage, assign_ids
    from s2vforge.stages.pairs.pipeline import run_pairs
    from s2vforge.stages.subjects.pipeline import run_subjects

    root = tmp_path_factory.mktemp("opens2v_native")
    videos = root / "videos"
    videos.mkdir()
    _write_cast_videos(videos, (480, 270), 25.0)
    ds = root / "dataset"
    rec = load_recipe(None)
    run_stage(CurateStage(rec), assign_ids(expand_inputs([str(videos / "interview.mp4"),
                                                          str(videos / "still_life.mp4")])), ds)
    run_stage(CaptionStage(rec), caption_items(ds), ds)
    run_subjects(ds, rec)
    run_pairs(ds, rec)
    e1 = root / "e1"
    s1, samples = export(ds, e1)
    o = e1 / "opens2v"
    d2 = root / "d2"
    imp = import_opens2v(sorted(o.glob("Jsons/**/*.json")), o / "Videos", d2)
    e2 = root / "e2"
    s2, _ = export(d2, e2)
    return {"ds": ds, "e1": e1, "e2": e2, "s1": s1, "s2": s2, "imp": imp, "samples": samples}


def _records(e: Path) -> dict:
    out = {}
    for f in sorted((e / "opens2v" / "Jsons" / "mask_and_bbox").glob("*.json")):
        out.update(json.loads(f.read_text()))
    return out


def test_records_and_what_they_hold(native):
    ds, recs = native["ds"], _records(native["e1"])
    clips = {c["clip_id"]: c for c in pq.read_table(ds / "clips.parquet").to_pylist()}
    subjects = [s for s in pq.read_table(ds / "subjects.parquet").to_pylist() if s["keep"]]
    kept = [s for s in native["samples"] if s["keep"]]
    assert recs and len(recs) <= len(kept)
    for s in kept:
        key = native_key(s["clip_id"], s["group_id"])
        if key not in recs:
            continue
        rec = recs[key]
        assert record_problems(rec) == [], key
        assert cluster_of_key(key) == s["group_id"]
        m, c = rec["metadata"], clips[s["clip_id"]]
        assert m["num_frames"] == s["n_frames"] and m["cut"] == [0, s["n_frames"]]
        assert m["resolution"] == {"height": s["height"], "width": s["width"]}
        assert m["motion"] == c["score_motion"] and m["tech"] == c["score_brisque"]    # no published score here
        fd = rec["annotation"]["ann_frame_data"]
        mine = [x for x in subjects if x["clip_id"] == s["clip_id"] and x["frame_idx"] == fd["ann_frame_idx"]]
        assert sorted(a["class_name"] for a in fd["annotations"]) == sorted(x["phrase"] for x in mine)
        assert sorted(a["bbox"] for a in fd["annotations"]) == sorted([float(v) for v in x["bbox"]] for x in mine)
        counts = {v["counts"] for v in rec["annotation"]["mask_annotation"][str(fd["ann_frame_idx"])].values()}
        assert counts == {json.loads(x["mask_rle"])["counts"] for x in mine}


def test_cross_pairs(native):
    ds, e1, s1 = native["ds"], native["e1"], native["s1"]
    pairs = [p for p in pq.read_table(ds / "pairs.parquet").to_pylist()
             if p["keep"] and p["kind"] in ("cross_clip", "cross_video")]
    assert {p["kind"] for p in pairs} == {"cross_clip", "cross_video"}
    written = []
    for f in (e1 / "opens2v" / "Jsons" / "cross_video_pairs").glob("*.json"):
        if f.name != "cluster_videos.json":
            written += json.loads(f.read_text())
    n_refs = sum(len(p["reference_subject_ids"]) for p in pairs)
    assert len(written) == s1["n_pair_records"] >= 1
    assert s1["n_pair_records"] + s1["skipped"].get("pair_subject_not_exported", 0) == n_refs
    recs = _records(e1)
    sims = Counter(p["similarity"] for p in pairs)
    for r in written:
        cur, aft = recs[r["cur_id"].split("/", 1)[1]], recs[r["aft_id"].split("/", 1)[1]]
        assert r["cur_frame_idx"] == cur["annotation"]["ann_frame_data"]["ann_frame_idx"]
        assert r["aft_frame_idx"] == aft["annotation"]["ann_frame_data"]["ann_frame_idx"]
        assert r["cur_class_name"] in {m["class_name"] for m in cur["annotation"]["mask_map"].values()}
        assert r["aft_class_name"] in {m["class_name"] for m in aft["annotation"]["mask_map"].values()}
        assert sims[r["image_similarity"]] > 0 and r["text_similarity"] is None


def test_native_round_trip(native):
    a, b = files_of(native["e1"] / "opens2v"), files_of(native["e2"] / "opens2v")
    assert set(a) == set(b) and a
    for name in a:
        assert filecmp.cmp(a[name], b[name], shallow=False), name
    assert native["imp"]["n_error"] == 0
