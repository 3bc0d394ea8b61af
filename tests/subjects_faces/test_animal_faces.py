"""Cat faces are not human faces (issue 12): the human-face check on known-truth photos and clips.

MediaPipe's BlazeFace boxes Chelsea the cat (skimage.data.chelsea() == skimage.data.cat()),
often a single eye filling the frame; `HumanFaceCheck` (backends/facedet.py) must reject every
such box and confirm the faces of the astronaut, Grace Hopper, the carphone man and, when
face_recognition's sdist photos are on this machine ($S2VFORGE_FACE_PHOTOS, default
.venv/face_photos), Obama and Biden. The subjects stage must then keep no face on a cat clip
and still keep Grace Hopper's, with the verdict in subjects.parquet.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import faceviews  # noqa: E402

from s2vforge.recipes import load_recipe, section  # noqa: E402
from s2vforge.reasons import verdict_code  # noqa: E402
from s2vforge.stages.subjects.detect import HUMAN_FACE_CHECK  # noqa: E402

pytest.importorskip("mediapipe")
pytest.importorskip("dlib")


def _check_cfg(**over) -> dict:
    cfg = dict(section(None, "subjects")["detect"]["human_face"])
    cfg.pop("enabled")
    return {**cfg, **over}


@pytest.fixture(scope="module")
def check():
    from s2vforge.backends.facedet import HumanFaceCheck
    return HumanFaceCheck(**_check_cfg())


@pytest.fixture(scope="module")
def mediapipe():
    from s2vforge.backends.facedet import load_face_detector
    return load_face_detector("mediapipe")


@pytest.fixture(scope="module")
def srcs():
    return {s.name: s for s in faceviews.sources(bunny_every=48)}


def test_the_recipe_turns_the_check_on():
    hf = section(None, "subjects")["detect"]["human_face"]
    assert hf["enabled"] is True and hf["cnn_min_score"] is not None


def test_cat_views_yield_no_confirmed_face(check, mediapipe, srcs):
    import skimage.data as sd
    assert np.array_equal(sd.cat(), sd.chelsea())          # one photo under two names
    dets = faceviews.collect(mediapipe, [srcs["chelsea"]], seed=0, views_per_photo=24)
    assert len(dets) >= 5, "MediaPipe should box the cat in some views (what the check is for)"
    verdicts = [check.check(d.frame, d.box) for d in dets]
    assert [v.ok for v in verdicts] == [False] * len(dets)
    assert all(v.ran_cnn for v in verdicts)                  # HOG said no, so the CNN had its say too


def test_bunny_views_are_mostly_rejected(check, mediapipe, srcs):
    bunnies = [s for n, s in srcs.items() if n.startswith("bunny")]
    dets = faceviews.collect(mediapipe, bunnies, seed=0, views_per_bunny_frame=4)
    assert dets
    kept = sum(check.check(d.frame, d.box).ok for d in dets)
    assert kept <= 0.1 * len(dets)


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper", "carphone0", "carphone1", "carphone2",
                                  "obama", "obama2", "obama3", "biden"])
def test_human_photos_keep_their_faces(check, mediapipe, srcs, name):
    if name not in srcs:
        pytest.skip(f"{name}: face_recognition 1.3.0's test photos are not in {faceviews.FACE_PHOTOS}")
    src = srcs[name]
    faces = [d for d in mediapipe.detect(src.rgb) if faceviews._iou(d.box, src.face) >= 0.3]
    assert len(faces) == 1
    v = check.check(src.rgb, faces[0].box)
    assert v.ok, v.detail()
    # whole faces in framed, rescaled, flipped views are confirmed too
    dets = [d for d in faceviews.collect(mediapipe, [src], seed=1, views_per_photo=8)
            if d.kind == "human" and d.inside >= 0.9]
    assert dets
    assert all(check.check(d.frame, d.box).ok for d in dets)


def test_non_face_boxes_on_people_photos_are_rejected(check, mediapipe, srcs):
    humans = [s for s in srcs.values() if s.kind == "human"]
    others = [d for d in faceviews.collect(mediapipe, humans, seed=2, views_per_photo=12) if d.kind == "other"]
    assert others
    assert sum(check.check(d.frame, d.box).ok for d in others) <= 0.1 * len(others)


def test_verdict_detail_and_hog_only_mode(srcs):
    from s2vforge.backends.facedet import HumanFaceCheck
    hog_only = HumanFaceCheck(**_check_cfg(cnn_min_score=None))
    src = srcs["grace_hopper"]
    v = hog_only.check(src.rgb, src.face)
    assert v.ok and not v.ran_cnn and v.detail().endswith("cnn=skipped")
    grey = np.full((300, 300, 3), 128, np.uint8)
    v = hog_only.check(grey, (50, 50, 250, 250))
    assert not v.ok and v.detail() == "hog=none,cnn=skipped"


# ------------------------------------------------------------------ the subjects stage

@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A curated dataset of two clips: the demo's 5 s Chelsea pan (480x270, where the demo kept
    cat eyes as faces) and a static Grace Hopper shot."""
    from s2vforge.cli import run_curate
    from s2vforge.corpus.synth import load_photo, moving_shot, write_video
    d = tmp_path_factory.mktemp("animal_faces")
    write_video(d / "cat.mp4", moving_shot(load_photo("chelsea"), 5.0, 25.0, (480, 270), "pan", direction=1),
                25.0, preset="ultrafast")
    write_video(d / "grace.mp4", moving_shot(load_photo("grace_hopper"), 2.4, 25.0, (960, 540), "static"),
                25.0, preset="ultrafast")
    with open(d / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "caption"])
        w.writerow(["cat.mp4", "A tabby cat looks into the camera."])
        w.writerow(["grace.mp4", "A woman in a navy uniform looks at the camera."])
    recipe = d / "fast.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "animal-faces", "crop": {"enabled": True, "ocr": False}, "scorers": ["luminance"],
        "filters": {"score_luminance": {"min": 10, "max": 230}}, "write": {"preset": "ultrafast"},
        "subjects": {"quality": {"brisque": False, "aesthetic": None}, "detect": {"objects": "none"}}}))
    ds = d / "ds"
    assert run_curate([str(d / "manifest.csv")], ds, str(recipe), 1, False, True) == 0
    return ds


def _clips(ds: Path) -> dict[str, dict]:
    videos = {v["video_id"]: v for v in pq.read_table(ds / "videos.parquet").to_pylist()}
    out = {}
    for c in pq.read_table(ds / "clips.parquet").to_pylist():
        if c["keep"]:
            out[Path(videos[c["video_id"]]["path"]).stem] = c
    return out


def _face_rows(ds: Path, recipe: dict) -> dict[str, list[dict]]:
    from s2vforge.stages.subjects.pipeline import process_clip, subjects_config
    cfg = subjects_config(recipe)
    out = {}
    for name, clip in _clips(ds).items():
        rows, meta, _ = process_clip(clip, None, cfg, ds)
        assert meta["status"] == "ok"
        out[name] = [r for r in rows if r["category"] == "face"]
    return out


def test_subjects_keep_no_cat_face_and_keep_hopper(dataset):
    from s2vforge.stages.subjects.pipeline import run_subjects
    clips = _clips(dataset)
    assert set(clips) == {"cat", "grace"}
    recipe = load_recipe(None, {"subjects": {"quality": {"brisque": False, "aesthetic": None},
                                             "detect": {"objects": "none"}}})
    summary = run_subjects(dataset, recipe, workers=1)
    rows = pq.read_table(dataset / "subjects.parquet").to_pylist()
    cat = [r for r in rows if r["clip_id"] == clips["cat"]["clip_id"] and r["category"] == "face"]
    grace = [r for r in rows if r["clip_id"] == clips["grace"]["clip_id"] and r["category"] == "face"]
    assert cat, "MediaPipe boxes the cat here (the demo's failure); the check must reject it"
    assert not any(r["keep"] for r in cat)
    assert any(c.startswith(HUMAN_FACE_CHECK + ":") for r in cat for c in r["checks"])
    assert sum(r["keep"] for r in grace) == 3                # one face at each Phantom-Data frame
    assert summary["check_counts"].get(HUMAN_FACE_CHECK, 0) >= 1
    assert summary["detectors"]["human_face"] == "dlib-hog+mmod"
    assert {verdict_code(c) for r in cat for c in r["checks"]} <= {HUMAN_FACE_CHECK, "min_side", "area_frac"}
    # no face segment is made of the cat
    import json
    seg = [json.loads(r["face_segment"]) for r in rows if r["clip_id"] == clips["cat"]["clip_id"] and r["face_segment"]]
    assert all(s["n_face_frames"] == 0 for s in seg)


def test_without_the_check_the_cat_face_is_kept(dataset):
    """The check, not some other rule, is what removes the cat (issue 12's failure, reproduced)."""
    recipe = load_recipe(None, {"subjects": {"quality": {"brisque": False, "aesthetic": None},
                                             "detect": {"objects": "none", "human_face": {"enabled": False}},
                                             "face_track": {"enabled": False}}})
    faces = _face_rows(dataset, recipe)
    assert any(r["keep"] for r in faces["cat"])
    assert not any(c.startswith(HUMAN_FACE_CHECK) for r in faces["cat"] for c in r["checks"])
