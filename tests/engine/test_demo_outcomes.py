"""The demo corpus through the default recipe: every clip is kept or rejected for the reason
its construction implies (ground_truth.json), with all embedded scorers and OCR on. (What the
pairs stage finds in it is tests/demo_pairs/.)"""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from s2vforge.cli import run_curate
from s2vforge.corpus.synth import CAST_VIDEOS, DEMO_TRUTH_NAME, build_demo_corpus

# ground-truth reason -> the reject reason prefix the default recipe must give
REASON_PREFIX = {"too_dark": "score_luminance<", "blurry": "score_blur_cpbd<", "static": "score_motion<",
                 "text_overlay": "score_ocr_area_in_crop>", "too_short": "too_short"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    build_demo_corpus(d / "corpus", size="small")
    code = run_curate([str(d / "corpus")], d / "ds", None, workers=2, as_json=False, quiet=True)
    truth = json.loads((d / "corpus" / DEMO_TRUTH_NAME).read_text())["videos"]
    videos = {v["path"].rsplit("/", 1)[-1]: v for v in pq.read_table(d / "ds" / "videos.parquet").to_pylist()}
    clips = pq.read_table(d / "ds" / "clips.parquet").to_pylist()
    return {"code": code, "truth": truth, "videos": videos, "clips": clips, "ds": d / "ds"}


def _clips_of(demo, file_name):
    vid = demo["videos"][file_name]["video_id"]
    return [c for c in demo["clips"] if c["video_id"] == vid]


def test_demo_runs_clean(demo):
    assert demo["code"] == 0
    assert all(v["status"] == "ok" for v in demo["videos"].values())
    run = json.loads((demo["ds"] / "curate_run.json").read_text())
    # the aesthetic reference model is absent here: recorded, not crashed, not filtered on
    assert "aesthetic" in run["summary"]["unavailable"]
    assert all(c["score_aesthetic"] is None for c in demo["clips"])


@pytest.mark.parametrize("name", ["dark", "blurry", "static", "title_card"])
def test_defect_variants_are_rejected_for_their_defect(demo, name):
    t = demo["truth"][name]
    prefix = REASON_PREFIX[t["expected"]["reasons"][0]]
    clips = _clips_of(demo, t["file"])
    assert clips and not any(c["keep"] for c in clips)
    assert all(any(r.startswith(prefix) for r in c["reject_reasons"]) for c in clips)


@pytest.mark.parametrize("name", ["bikes", "montage", "subtitled", "letterboxed", *CAST_VIDEOS])
def test_good_footage_is_kept(demo, name):
    t = demo["truth"][name]
    kept = [c for c in _clips_of(demo, t["file"]) if c["keep"]]
    assert kept, f"{name}: nothing kept"
    assert all((demo["ds"] / c["path"]).exists() for c in kept)


def test_crops_remove_bars_and_subtitles(demo):
    lb = demo["truth"]["letterboxed"]
    (clip,) = _clips_of(demo, lb["file"])
    assert clip["crop"] == pytest.approx(lb["expected"]["crop"], abs=2)
    (sub,) = _clips_of(demo, demo["truth"]["subtitled"]["file"])
    w, h = demo["truth"]["subtitled"]["size"]
    assert sub["crop"][3] < 0.8 * h and sub["crop"][3] > 0.6 * h        # band cut, picture kept
    assert sub["score_ocr_area"] > 0.02 and sub["score_ocr_area_in_crop"] < 0.005


def test_short_scenes_are_recorded_not_dropped(demo):
    t = demo["truth"]["bikes"]
    clips = _clips_of(demo, t["file"])
    boundaries = sorted({c["start_frame"] for c in clips} - {0})
    assert boundaries == t["cuts"]
    assert sum(c["reject_reasons"] == ["too_short"] for c in clips) == 3


@pytest.mark.parametrize("name", sorted(CAST_VIDEOS))
def test_cast_shots_are_kept_whole(demo, name):
    """The pairs stage needs every shot of a cast video as its own kept clip: the clips are
    exactly the truth's shots (hard cuts found at the true frames), none rejected."""
    t = demo["truth"][name]
    clips = sorted(_clips_of(demo, t["file"]), key=lambda c: c["start_frame"])
    shots = [(s["start_frame"], s["end_frame"]) for s in t["shots"]]
    assert [(c["start_frame"], c["end_frame"]) for c in clips] == shots
    assert all(c["keep"] and c["reject_reasons"] == [] for c in clips), [c["reject_reasons"] for c in clips]
    w, h = t["size"]
    assert all(c["crop"] == [0, 0, w, h] for c in clips)     # nothing to crop: truth boxes are clip pixels
