"""The embedded facts captioner (stages/caption/facts.py) on frames of known truth built from
packaged photos (s2vforge.corpus.synth): who is there, where, and how the camera moves."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from s2vforge.corpus.synth import darken, load_photo, moving_shot
from s2vforge.recipes import load_recipe
from s2vforge.stages.caption.base import STRUCTURED_FIELDS, ClipInput
from s2vforge.stages.caption.facts import FACTS_MODEL, FactsCaptioner, camera_label
from s2vforge.stages.recipe_keys import MissingRecipeKey

pytest.importorskip("mediapipe")
RECIPE = load_recipe(None)
FACTS = RECIPE["caption"]["facts"]
N_FRAMES, LONG_SIDE, SECONDS, FPS = 8, 448, 4.0, 10.0     # the recipe's caption.frames: 8 frames, 448 px


def _resize(f: np.ndarray, long_side: int = LONG_SIDE) -> np.ndarray:
    h, w = f.shape[:2]
    s = long_side / max(h, w)
    return cv2.resize(f, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def clip_of(frames: list[np.ndarray], measured: dict | None = None, clip_id: str = "c0") -> ClipInput:
    """8 frames evenly over the shot, at the captioner's 448 px, as the caption stage samples them."""
    idx = np.linspace(0, len(frames) - 1, N_FRAMES).round().astype(int)
    h, w = frames[0].shape[:2]
    return ClipInput(clip_id, Path(f"{clip_id}.mp4"), [_resize(frames[i]) for i in idx], [i / FPS for i in idx],
                     SECONDS, FPS, (w, h), measured=dict(measured or {}))


def shot(photo: str, motion: str, size=(480, 270), direction: int = 1) -> list[np.ndarray]:
    return list(moving_shot(load_photo(photo), SECONDS, FPS, size=size, motion=motion, direction=direction))


@pytest.fixture(scope="module")
def facts():
    fc = FactsCaptioner.from_recipe(RECIPE)
    fc.setup()
    assert fc.unavailable == {}, fc.unavailable
    return fc


def test_pan_left_of_the_astronaut(facts):
    # a portrait crop sliding right-to-left over the photo: the picture moves right = the camera pans left
    cap = facts.caption(clip_of(shot("astronaut", "pan", size=(270, 480), direction=-1)))
    assert cap.error is None, cap.error
    assert cap.captioner == "facts" and cap.model == FACTS_MODEL and cap.prompt_id is None
    assert cap.short.startswith("1 person, 1 face, camera panning left"), cap.short
    assert cap.short.endswith("bright, 4.0 s")
    assert cap.structured["camera"] == "pan left"
    assert cap.structured["subjects"].startswith("1 person (")
    assert "1 face (" in cap.structured["subjects"]
    assert cap.structured["face_motion"] == "still"          # only the camera moves
    assert cap.structured["appearance"] is None and cap.structured["action"] is None
    assert set(cap.structured) == set(STRUCTURED_FIELDS)
    assert cap.subject_tags == ["person", "face"] and cap.object_tags == [] and cap.background_tags == []
    assert cap.face_caption is None and cap.score is None and cap.verdicts == []
    assert "The camera pans left." in cap.long and "1 person is visible" in cap.long


def test_pan_right_and_tilt(facts):
    f = facts.measure(clip_of(shot("astronaut", "pan", size=(270, 480), direction=1)))
    assert f["camera"]["label"] == "pan right"
    # truth (synth.moving_shot): a 230.4 px wide crop (80% of the 288 x 512 box) crosses the 281.6 px of slack
    # at 0.25 of it per second, so the picture moves 0.25 * 281.6 / 230.4 = 0.306 frame widths a second
    assert f["camera"]["tx"] == pytest.approx(-0.25 * 281.6 / 230.4, rel=0.05)
    f = facts.measure(clip_of(shot("astronaut", "pan", size=(480, 270), direction=-1)))   # mostly vertical slack
    assert f["camera"]["label"] == "tilt up"


def test_static_coffee_has_no_person(facts):
    cap = facts.caption(clip_of(shot("coffee", "static")))
    assert cap.error is None
    assert cap.structured["camera"] == "static"
    assert cap.short.startswith("no people, ")
    assert "static camera" in cap.short and "salient object" in cap.short
    assert "No person is detected." in cap.long and "salient object" in cap.long
    assert cap.subject_tags == [] and cap.object_tags == []      # saliency has no classes
    assert cap.structured["face_motion"] is None


def test_darkened_shot_is_dark(facts):
    cap = facts.caption(clip_of(list(darken(shot("coffee", "static")))))
    assert ", dark, " in cap.short and cap.structured["environment"].startswith("dark lighting")
    # the clip's measured luminance (the curation stage's score_luminance) wins over the frames'
    cap = facts.caption(clip_of(shot("coffee", "static"), measured={"score_luminance": 60.0}))
    assert ", dim, " in cap.short


def test_zoom_in_and_out(facts):
    cap = facts.caption(clip_of(shot("astronaut", "zoom", direction=1)))
    assert cap.structured["camera"] == "zoom in" and "camera zooming in" in cap.short
    assert "The camera zooms in." in cap.long and cap.subject_tags == ["person", "face"]
    assert facts.measure(clip_of(shot("astronaut", "zoom", direction=-1)))["camera"]["label"] == "zoom out"


def test_a_face_moving_over_a_still_background(facts):
    # Grace Hopper's portrait slides across a still coffee photo: the camera is static, the face moves
    bg = _resize(load_photo("coffee"))
    bg = bg[:252]
    fg = _resize(load_photo("grace_hopper"), 170)
    frames = []
    for i in range(int(SECONDS * FPS)):
        f = bg.copy()
        x = 10 + round(i * (bg.shape[1] - fg.shape[1] - 20) / (SECONDS * FPS - 1))
        f[40:40 + fg.shape[0], x:x + fg.shape[1]] = fg
        frames.append(f)
    cap = facts.caption(clip_of(frames))
    assert cap.structured["camera"] == "static"
    assert "face" in cap.subject_tags and cap.structured["face_motion"] == "moving"


def test_measured_sharpness_and_determinism(facts):
    clip = clip_of(shot("astronaut", "zoom"), measured={"score_blur_cpbd": 0.2, "score_luminance": 120.0})
    a, b = facts.caption(clip), facts.caption(clip)
    assert a.row("c0") == b.row("c0")
    assert a.structured["environment"] == "bright lighting, sharp picture"
    assert "the picture is sharp" in a.long
    blurry = facts.caption(clip_of(shot("astronaut", "zoom"), measured={"score_blur_cpbd": 0.01}))
    assert "blurry picture" in blurry.structured["environment"]


def test_bad_clips_are_rows_not_crashes(facts):
    empty = ClipInput("e", Path("e.mp4"), [], [], 0.0, 25.0, (0, 0))
    cap = facts.caption(empty)
    assert cap.error and cap.captioner == "facts" and cap.short is None
    one = clip_of(shot("coffee", "static"))
    one.frames, one.times = one.frames[:1], one.times[:1]
    cap = facts.caption(one)                         # a single frame: no camera motion, still a caption
    assert cap.error is None and cap.structured["camera"] is None and "camera" not in cap.short


def test_settings_come_from_the_recipe():
    with pytest.raises(MissingRecipeKey, match="caption.facts.pan_min"):
        FactsCaptioner({k: v for k, v in FACTS.items() if k != "pan_min"}, RECIPE["subjects"]["detect"])
    fc = FactsCaptioner.from_recipe(RECIPE)
    cfg = fc.config()
    # the stage's form (pipeline.make_captioner): the caption section; subjects.detect is the default recipe's
    assert FactsCaptioner(RECIPE["caption"]).config() == cfg
    assert cfg["name"] == "facts" and cfg["model"] == FACTS_MODEL and cfg["facts"]["pan_min"] == FACTS["pan_min"]
    assert camera_label(0.0, 0.0, 0.0, FACTS) == "static"
    assert camera_label(-0.2, 0.15, 0.0, FACTS) == "pan right, tilt up"
    assert camera_label(0.0, -0.2, 0.01, FACTS) == "tilt down"
