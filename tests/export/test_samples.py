"""The reference rule of export samples (stages/export/samples.py) on hand-built tables with
known truth: which references a clip gets, in what order, and why a sample is dropped."""
from __future__ import annotations

import copy
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from s2vforge.recipes import load_recipe
from s2vforge.schema import (CAPTION_SCHEMA, PAIR_SCHEMA, SUBJECT_SCHEMA, TableSpec, clip_schema)
from s2vforge.stages.export.samples import build_samples, one_line
from s2vforge.stages.subjects.rle import mask_to_rle

H, W = 40, 60


def _rle(x0, y0, x1, y1) -> str:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return json.dumps(mask_to_rle(m))


def _subject(sid, clip, cat, phrase, frame, box, det=0.9, keep=True, video=None):
    return {"subject_id": sid, "clip_id": clip, "video_id": video or clip[:3], "group_id": video or clip[:3],
            "frame_idx": frame, "phrase": phrase, "category": cat, "bbox": list(box), "mask_rle": _rle(*box),
            "crop_path": f"subjects/{sid}.png", "det_score": det, "keep": keep, "checks": []}


def _write(d, name, spec, rows):
    pq.write_table(spec.table(rows), d / f"{name}.parquet")


@pytest.fixture
def dataset(tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    clips = []
    for cid, vid in (("vA-1", "vA"), ("vA-2", "vA"), ("vB-1", "vB"), ("vC-1", "vC")):
        clips.append({"clip_id": cid, "video_id": vid, "group_id": vid, "start_frame": 0, "end_frame": 50,
                      "start_s": 0.0, "end_s": 2.0, "duration_s": 2.0, "crop": [0, 0, W, H], "keep": True,
                      "path": f"clips/{cid}.mp4", "score_motion": 1.5})
    clips.append({"clip_id": "vC-2", "video_id": "vC", "group_id": "vC", "keep": False, "path": None})
    _write(d, "clips", TableSpec(clip_schema(["score_motion"]), "clip_id"), clips)
    subs = [
        # vA-1: a person (two frames: one track), a face, a cup, and the sky (a background tag)
        _subject("vA-1-p0", "vA-1", "person", "woman", 0, (0, 0, 30, 40), det=0.8),
        _subject("vA-1-p1", "vA-1", "person", "woman", 25, (2, 0, 32, 40), det=0.95),
        _subject("vA-1-f", "vA-1", "face", "face", 25, (5, 0, 15, 10), det=0.7),
        _subject("vA-1-cup", "vA-1", "object", "cup", 25, (40, 20, 50, 30), det=0.99),
        _subject("vA-1-sky", "vA-1", "object", "sky", 25, (0, 0, 60, 5), det=0.99),
        _subject("vA-1-cup2", "vA-1", "object", "mug", 25, (40, 20, 50, 30), det=0.5),   # the same mask as the cup
        # vA-2: the same woman (cross_clip reference for vA-1's person)
        _subject("vA-2-p", "vA-2", "person", "woman", 10, (10, 0, 40, 40), det=0.9),
        # vB-1: the cup in another video (cross_video reference for vA-1's cup)
        _subject("vB-1-cup", "vB-1", "object", "cup", 5, (10, 10, 20, 20), det=0.9, video="vB"),
        _subject("vB-1-x", "vB-1", "object", "dog", 5, (30, 10, 40, 20), keep=False, video="vB"),
        # vC-1: nothing kept
    ]
    _write(d, "subjects", TableSpec(SUBJECT_SCHEMA, "subject_id"), subs)
    caps = [{"clip_id": "vA-1", "video_id": "vA", "short": "A woman.", "long": "A woman\n holds a cup\tunder the sky.",
             "background_tags": ["sky"], "captioner": "facts"},
            {"clip_id": "vA-2", "video_id": "vA", "short": "A woman walks.", "long": "A woman walks.",
             "captioner": "facts"},
            {"clip_id": "vB-1", "video_id": "vB", "short": "A cup.", "long": "A cup on a table.", "captioner": "facts"},
            {"clip_id": "vC-1", "video_id": "vC", "error": "endpoint down", "captioner": "endpoint"}]
    _write(d, "captions", TableSpec(CAPTION_SCHEMA, "clip_id"), caps)
    return d


def _pairs(d, rows):
    _write(d, "pairs", TableSpec(PAIR_SCHEMA, "pair_id"), rows)


def _cfg(**refs):
    cfg = copy.deepcopy(load_recipe()["export"])
    cfg["refs"].update(refs)
    return cfg


def _by_id(table):
    return {r["sample_id"]: r for r in table.to_pylist()}


def test_self_references_one_per_subject_best_instance_in_category_order(dataset):
    s = _by_id(build_samples(dataset, _cfg(mode="self")))
    refs = s["vA-1"]["references"]
    # face first, then person (its best instance: det 0.95 at frame 25), then the cup;
    # the sky (a background tag) and the mug (the cup's mask again) are not subjects
    assert [r["subject_id"] for r in refs] == ["vA-1-f", "vA-1-p1", "vA-1-cup"]
    assert all(r["kind"] == "self" and r["similarity"] is None for r in refs)
    assert refs[0]["frame_size"] == [W, H] and refs[0]["bbox"] == [5, 0, 15, 10]
    assert s["vA-1"]["n_refs"] == 3 and s["vA-1"]["keep"]
    # the caption is one line: newlines and tabs collapsed
    assert s["vA-1"]["caption"] == "A woman holds a cup under the sky."
    assert s["vA-1"]["score_motion"] == 1.5


def test_dropped_samples_say_why_and_non_kept_clips_have_no_sample(dataset):
    s = _by_id(build_samples(dataset, _cfg(mode="self")))
    assert set(s) == {"vA-1", "vA-2", "vB-1", "vC-1"}          # vC-2 was not kept by curate
    assert not s["vC-1"]["keep"]
    assert any(r.startswith("no_caption: endpoint down") for r in s["vC-1"]["drop_reasons"])
    assert any(r.startswith("too_few_refs: 0 < 1") for r in s["vC-1"]["drop_reasons"])
    s0 = _by_id(build_samples(dataset, _cfg(mode="self", min_refs=0)))
    assert s0["vC-1"]["drop_reasons"] == ["no_caption: endpoint down"]


def test_max_refs_caps_in_rule_order(dataset):
    s = _by_id(build_samples(dataset, _cfg(mode="self", max_refs=2)))
    assert [r["subject_id"] for r in s["vA-1"]["references"]] == ["vA-1-f", "vA-1-p1"]


def _pair(pid, target, track, kind, ref, sim, keep=True, cat="person"):
    return {"pair_id": pid, "target_clip_id": target, "target_subject_id": track[0], "target_video_id": target[:2],
            "category": cat, "kind": kind, "reference_subject_ids": [ref] if ref else [],
            "reference_clip_ids": [ref.rsplit("-", 1)[0]] if ref else [], "similarity": sim, "keep": keep,
            "track_subject_ids": track, "cluster_id": "c-" + pid}


def test_cross_and_both_modes_follow_pairs(dataset):
    _pairs(dataset, [
        _pair("p1", "vA-1", ["vA-1-p1", "vA-1-p0"], "cross_clip", "vA-2-p", 0.93),
        _pair("p2", "vA-1", ["vA-1-cup"], "cross_video", "vB-1-cup", 0.81, cat="object"),
        _pair("p3", "vA-1", ["vA-1-f"], "none", None, None, keep=False, cat="face"),
        _pair("p4", "vA-1", ["vA-1-sky"], "none", None, None, keep=False, cat="object"),
        _pair("p5", "vA-2", ["vA-2-p"], "cross_clip", "vA-1-p1", 0.93, keep=False),   # not kept: never used
    ])
    cross = _by_id(build_samples(dataset, _cfg(mode="cross")))
    refs = cross["vA-1"]["references"]
    assert [(r["subject_id"], r["kind"], r["target_subject_id"]) for r in refs] == [
        ("vA-2-p", "cross_clip", "vA-1-p1"), ("vB-1-cup", "cross_video", "vA-1-cup")]
    assert refs[0]["similarity"] == 0.93 and refs[0]["pair_id"] == "p1" and refs[0]["source_clip_id"] == "vA-2"
    assert not cross["vA-2"]["keep"]                   # its pair was not kept: no cross reference
    both = _by_id(build_samples(dataset, _cfg(mode="both")))
    # tracks from pairs.parquet: the face has no cross pair -> its own crop; the others -> cross
    assert [(r["subject_id"], r["kind"]) for r in both["vA-1"]["references"]] == [
        ("vA-1-f", "self"), ("vA-2-p", "cross_clip"), ("vB-1-cup", "cross_video")]
    assert [(r["subject_id"], r["kind"]) for r in both["vA-2"]["references"]] == [("vA-2-p", "self")]


def test_rows_are_sorted_and_identical_whatever_the_table_order(dataset):
    a = build_samples(dataset, _cfg())
    t = pq.read_table(dataset / "subjects.parquet")
    pq.write_table(t.take(list(reversed(range(t.num_rows)))), dataset / "subjects.parquet")
    b = build_samples(dataset, _cfg())
    assert a.equals(b)
    assert a.column("sample_id").to_pylist() == sorted(a.column("sample_id").to_pylist())


def test_bad_mode_is_a_clear_error(dataset):
    with pytest.raises(ValueError, match="export.refs.mode must be one of self, cross, both"):
        build_samples(dataset, _cfg(mode="all"))


def test_one_line():
    assert one_line(" a\n\nb\r\n c ") == "a b c"
    assert one_line("   ") is None and one_line(None) is None


def test_a_format_whose_package_is_missing_fails_first_naming_the_extra(monkeypatch):
    import importlib.util

    from s2vforge.stages.export.formats import check_formats
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lance" else real(name, *a))
    with pytest.raises(ValueError, match=r"--format lance needs the export extra: pip install 's2vforge\[export\]'"):
        check_formats("webdataset,lance")
    assert check_formats("hf,samples,webdataset") == ["webdataset", "hf"]
    with pytest.raises(ValueError, match="unknown export format 'tar'"):
        check_formats("tar")
