import dataclasses

import numpy as np
import pytest

from s2vforge.stages.scores.luminance import frame_luminance, score_luminance


def test_luminance_is_rec709_mean_of_real_frames(carphone):
    expected = np.mean([(f.astype(np.float64) @ [0.2126, 0.7152, 0.0722]).mean() for f in carphone.rgb])
    assert score_luminance(carphone)["score_luminance"] == pytest.approx(expected, rel=1e-9)
    assert 10 < expected < 210  # an ordinary, well exposed clip


def test_luminance_orders_dark_original_bright(clip, make_variant):
    dark = make_variant(clip, lambda f: (f * 0.15).astype(np.uint8))
    bright = make_variant(clip, lambda f: np.clip(f.astype(np.int16) + 80, 0, 255).astype(np.uint8))
    d, o, b = (score_luminance(c)["score_luminance"] for c in (dark, clip, bright))
    assert d < 0.2 * o < o < b
    assert d < 20  # ~15: a 0.15 gain takes a normal clip down to the recipe floor (10)


def test_luminance_honours_crop(carphone, make_variant):
    """A black border around the picture must not count once the crop removes it."""
    pad = 60  # analysis px
    bordered = make_variant(carphone, lambda f: np.pad(f, ((pad, pad), (pad, pad), (0, 0))))
    h, w = carphone.rgb[0].shape[:2]
    big_h, big_w = bordered.rgb[0].shape[:2]
    # the crop is in source pixels: pretend the source is twice the analysis size
    bordered = dataclasses.replace(bordered, source_size=(2 * big_w, 2 * big_h))
    cropped = dataclasses.replace(bordered, crop=(2 * pad, 2 * pad, 2 * (pad + w), 2 * (pad + h)))
    assert cropped.cropped()[0].shape[:2] == (h, w)
    original = score_luminance(carphone)["score_luminance"]
    assert score_luminance(bordered)["score_luminance"] < 0.8 * original
    assert score_luminance(cropped)["score_luminance"] == pytest.approx(original, rel=1e-9)


def test_frame_luminance_extremes():
    assert frame_luminance(np.zeros((4, 4, 3), np.uint8)) == 0
    assert frame_luminance(np.full((4, 4, 3), 255, np.uint8)) == pytest.approx(255)


def test_no_frames_gives_none(carphone):
    assert score_luminance(dataclasses.replace(carphone, rgb=[], next_rgb=[])) == {"score_luminance": None}
