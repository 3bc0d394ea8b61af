import dataclasses

import cv2
import numpy as np
import pytest

from s2vforge.stages.scores import brisque
from s2vforge.recipes import load_recipe
from s2vforge.stages.scores.brisque import score_brisque as _score_brisque

BRISQUE = load_recipe(None)["scorer_params"]["brisque"]


def score_brisque(frames):
    return _score_brisque(frames, **BRISQUE)


N_TEST_FRAMES = 2  # BRISQUE costs ~0.2 s a frame; two frames per variant keep the test short


def _only_picked(frames, n=N_TEST_FRAMES):
    """Keep just the frames BRISQUE will look at, so variants are cheap to build and score."""
    idx = frames.pick(n)
    return dataclasses.replace(frames, rgb=[frames.rgb[i] for i in idx], next_rgb=[], next_dt=[],
                               times=[frames.times[i] for i in idx])


def _impulse_noise(f, fraction=0.02, seed=0):
    rng = np.random.default_rng(seed)
    g = f.copy()
    hit = rng.random(f.shape[:2]) < fraction
    g[hit] = rng.choice(np.array([0, 255], np.uint8), size=(int(hit.sum()), 1))
    return g


@pytest.mark.parametrize("name", ["bikes", "carphone"])
def test_brisque_worse_for_heavy_blur_and_noise(request, name):
    """Heavy blur and impulse noise raise BRISQUE. (Moderate Gaussian noise is not a reliable
    probe on these clips: after the downscale to the working size it can even lower BRISQUE on
    the over-smooth, upscaled carphone frames, a known trait of the statistics it fits.)"""
    clip = _only_picked(request.getfixturevalue(name))
    original = score_brisque(clip)["score_brisque"]
    blurred = score_brisque(dataclasses.replace(clip, rgb=[cv2.GaussianBlur(f, (0, 0), 4.0) for f in clip.rgb]))
    noisy = score_brisque(dataclasses.replace(clip, rgb=[_impulse_noise(f) for f in clip.rgb]))
    assert 0 < original < 70
    assert blurred["score_brisque"] > original + 10
    assert noisy["score_brisque"] > original + 15


def test_brisque_model_loaded_once(bikes):
    assert brisque.load_brisque() is brisque.load_brisque()


def test_brisque_no_frames_gives_none(bikes):
    assert score_brisque(dataclasses.replace(bikes, rgb=[], next_rgb=[])) == {"score_brisque": None}
