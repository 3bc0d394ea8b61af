"""run_subjects end to end on a dataset curated by run_curate from real clips with captions."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from s2vforge.recipes import load_recipe
from s2vforge.stages.subjects.boxrules import box_iou
from s2vforge.stages.subjects.pipeline import SUBJECT_SCHEMA, process_clip, run_subjects, subjects_config


def _clip_of(ds: Path, name: str) -> dict:
    videos = {v["video_id"]: v for v in pq.read_table(ds / "videos.parquet").to_pylist()}
    for c in pq.read_table(ds / "clips.parquet").to_pylist():
        if videos[c["video_id"]]["path"].endswith(name) and c["keep"]:
            return c
    raise AssertionError(f"no kept clip of {name}")


@pytest.fixture(scope="module")
def run(curated, fast_recipe, tmp_path_factory):
    """One subjects run on a copy of the curated dataset whose grace clip file was deleted
    (its frames must then come from the source video)."""
    ds = tmp_path_factory.mktemp("subjects_run") / "ds"
    shutil.copytree(curated, ds)
    grace = _clip_of(ds, "grace.mp4")
    (ds / grace["path"]).unlink()
    metas = []
    summary = run_subjects(ds, load_recipe(str(fast_recipe)), workers=1, progress=metas.append)
    return {"ds": ds, "summary": summary, "metas": metas, "recipe": load_recipe(str(fast_recipe)),
            "table": pq.read_table(ds / "subjects.parquet")}


def _rows(run, name):
    cid = _clip_of(run["ds"], name)["clip_id"]
    return [r for r in run["table"].to_pylist() if r["clip_id"] == cid]


def test_table_schema_ids_and_every_clip_has_rows(run):
    t = run["table"]
    assert t.schema.equals(SUBJECT_SCHEMA)
    ids = t.column("subject_id").to_pylist()
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    clips = {c["clip_id"] for c in pq.read_table(run["ds"] / "clips.parquet").to_pylist() if c["keep"]}
    assert set(t.column("clip_id").to_pylist()) == clips and len(clips) == 4
    s = run["summary"]
    assert s["n_clips"] == 4 and s["n_error"] == 0 and s["n_kept"] == sum(t.column("keep").to_pylist())
    assert s["detectors"]["face"] == "mediapipe-blazeface"
    assert json.loads((run["ds"] / "subjects_run.json").read_text())["summary"]["n_kept"] == s["n_kept"]


def test_faces_and_people_are_found_at_the_phantom_frames(run):
    rows = _rows(run, "astro.mp4")
    kept = [r for r in rows if r["keep"]]
    assert {r["frame_idx"] for r in rows} == {3, 30, 56}        # 0.05, 0.5, 0.95 of 60 frames
    assert {r["category"] for r in kept} >= {"face", "person"}
    assert {r["caption_phrases"][0] for r in rows} == {"person"} and "astronaut" in rows[0]["caption_phrases"]
    seg = json.loads(rows[0]["face_segment"])
    assert seg["n_face_frames"] >= 4 and seg["start_s"] == 0.0 and seg["end_s"] >= 2.0
    # the face box agrees with an independent detector (dlib HOG) on the same decoded frame
    import av
    import dlib
    with av.open(str(run["ds"] / _clip_of(run["ds"], "astro.mp4")["path"])) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    face = next(r for r in kept if r["category"] == "face" and r["frame_idx"] == 30)
    rects = dlib.get_frontal_face_detector()(frames[30], 0)
    assert rects and max(box_iou(face["bbox"], (r.left(), r.top(), r.right(), r.bottom())) for r in rects) >= 0.5
    person = next(r for r in kept if r["category"] == "person" and r["frame_idx"] == 30)
    fb, pb = face["bbox"], person["bbox"]
    assert pb[0] <= fb[0] and pb[2] >= fb[2] and pb[3] >= fb[3]


def test_crops_are_rgba_cut_outs_matching_the_masks(run):
    from s2vforge.stages.subjects.rle import rle_to_mask
    kept = [r for r in run["table"].to_pylist() if r["keep"]]
    assert kept
    for r in kept:
        x0, y0, x1, y1 = r["bbox"]
        img = cv2.imread(str(run["ds"] / r["crop_path"]), cv2.IMREAD_UNCHANGED)
        assert img.shape == (y1 - y0, x1 - x0, 4)
        mask = rle_to_mask(json.loads(r["mask_rle"]))
        assert mask.shape == (540, 960)
        assert np.array_equal(img[:, :, 3] > 0, mask[y0:y1, x0:x1])
        assert 0.05 < mask[y0:y1, x0:x1].mean() < 1.0, "background must be removed, not the whole box kept"
        assert r["checks"] == [] and r["quality"] and "sharpness" in json.loads(r["quality"])
    assert not list(run["ds"].rglob(".*.tmp"))


def test_objects_come_from_class_agnostic_saliency_and_say_so(run):
    rows = _rows(run, "coffee.mp4")
    kept = [r for r in rows if r["keep"]]
    assert kept and all(r["category"] == "object" and r["phrase"] == "salient object" for r in kept)
    assert all(r["backend"].startswith("saliency-") for r in kept)
    assert "cup" in rows[0]["caption_phrases"]
    rejected = [r for r in rows if not r["keep"]]
    assert all(r["checks"] for r in rejected)


def test_bad_captions_and_empty_clips_are_recorded(run):
    grace = _rows(run, "grace.mp4")
    assert all(r["caption_verdicts"][0].startswith("caption_not_english") for r in grace)
    assert any(r["keep"] and r["category"] == "face" for r in grace), "fixed categories still looked for"
    brick = _rows(run, "brick.mp4")
    assert len(brick) == 1 and brick[0]["category"] == "none" and not brick[0]["keep"]
    assert brick[0]["checks"] == ["no_subjects_detected", "caption_missing"]
    assert brick[0]["caption_verdicts"] == ["caption_missing"]


def test_missing_clip_file_falls_back_to_the_source_video(run):
    grace_id = _clip_of(run["ds"], "grace.mp4")["clip_id"]
    meta = next(m for m in run["metas"] if m["clip_id"] == grace_id)
    assert meta["frames_from"] == "source"
    assert {r["frame_idx"] for r in _rows(run, "grace.mp4")} == {3, 30, 56}


def test_unreadable_clip_becomes_a_verdict_row(run, tmp_path):
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"not a video" * 100)
    clip = {"clip_id": "vbad-0000000-0000050", "video_id": "vbad", "group_id": None, "start_s": 0.0, "end_s": 2.0,
            "start_frame": 0, "end_frame": 50, "path": str(bad), "caption": "A dog.", "crop": [0, 0, 10, 10]}
    rows, meta, crops = process_clip(clip, None, subjects_config(run["recipe"]), tmp_path)
    assert crops == {}
    assert meta["status"] == "error" and len(rows) == 1
    assert rows[0]["category"] == "none" and rows[0]["checks"][0].startswith("clip_unreadable: clip file: cannot open")
    assert "source video missing" in rows[0]["checks"][0]


def test_rerun_skips_finished_clips_and_resume_rebuilds_identical_tables(run):
    ds = run["ds"]
    before = pq.read_table(ds / "subjects.parquet")
    metas = []
    again = run_subjects(ds, run["recipe"], progress=metas.append)
    assert again["n_skipped_done"] == 4 and len(metas) == 4
    assert pq.read_table(ds / "subjects.parquet").equals(before)
    # a run killed mid-way: one clip's marker never written, the table gone, temporary files left
    astro = _clip_of(ds, "astro.mp4")["clip_id"]
    (ds / ".work" / "subjects" / f"{astro}.json").unlink()
    (ds / "subjects.parquet").unlink()
    (ds / ".work" / "subjects" / f".{astro}.parquet.999.tmp").write_bytes(b"partial")
    (ds / "subjects" / ".x.png.999.tmp").write_bytes(b"partial")
    resumed = run_subjects(ds, run["recipe"])
    assert resumed["n_skipped_done"] == 3
    assert pq.read_table(ds / "subjects.parquet").equals(before)
    assert not list(ds.rglob(".*.tmp"))
    # a changed subjects recipe is not mistaken for finished work
    changed = {**run["recipe"], "subjects": {**run["recipe"]["subjects"], "boxes": {"min_side_px": 96}}}
    from s2vforge.engine.driver import stage_stamp
    from s2vforge.engine.journal import Journal
    from s2vforge.stages.subjects.pipeline import SubjectsStage
    stage = SubjectsStage(changed)
    assert not Journal(ds, "subjects", stage_stamp(stage), stage.tables).is_done(astro)
    assert Journal(ds, "subjects", stage_stamp(SubjectsStage(run["recipe"])), stage.tables).is_done(astro)


def test_report_section_shows_crops_and_verdicts(run):
    from s2vforge.report.subjects import subjects_section
    html = subjects_section(run["ds"])
    assert "Kept subject crops" in html
    overlays, crops = html.split("Kept subject crops")
    assert crops.count("data:image/jpeg;base64,") == run["summary"]["n_kept"]
    # every frame that holds a kept subject is shown with its boxes and mask outlines drawn
    assert "Subjects on frames" in overlays and overlays.count("data:image/jpeg;base64,") >= 1
    assert "caption_not_english" in html and "class-agnostic" in html
    assert subjects_section(run["ds"] / "nowhere") == ""


def test_importing_the_stage_loads_no_heavy_backend():
    code = ("import sys; from s2vforge.stages.subjects import run_subjects; import s2vforge.stages.subjects.pipeline; "
            "bad = [m for m in ('torch', 'transformers', 'mediapipe', 'spacy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
