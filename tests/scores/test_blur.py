import dataclasses

import cv2
import numpy as np
import pytest

from s2vforge.recipes import load_recipe
from s2vforge.stages.scores.blur import cpbd, edge_widths, score_blur as _score_blur, sobel_vertical_edges

BLUR = load_recipe(None)["scorer_params"]["blur"]      # the default recipe's long_side 512, max_frames 8


def score_blur(frames):
    return _score_blur(frames, **BLUR)

SIGMAS = (0.5, 1.0, 2.0, 4.0)


@pytest.fixture(scope="module")
def bikes_blur_scores(bikes):
    blur = lambda s: (lambda f: cv2.GaussianBlur(f, (0, 0), s))  # noqa: E731
    original = score_blur(bikes)
    return original, [score_blur(dataclasses.replace(bikes, rgb=[blur(s)(f) for f in bikes.rgb])) for s in SIGMAS]


def test_cpbd_in_unit_range_and_sharp_clip_passes_recipe(bikes_blur_scores):
    original, _ = bikes_blur_scores
    assert 0.05 <= original["score_blur_cpbd"] < 1.0  # the recipe keeps [0.05, 1.0)
    assert original["score_blur_laplacian"] > 50


def test_blur_metrics_fall_monotonically_with_gaussian_sigma(bikes_blur_scores):
    original, blurred = bikes_blur_scores
    cpbds = [original["score_blur_cpbd"]] + [b["score_blur_cpbd"] for b in blurred]
    laps = [original["score_blur_laplacian"]] + [b["score_blur_laplacian"] for b in blurred]
    assert all(0.0 <= c <= 1.0 for c in cpbds)
    assert cpbds[0] > cpbds[1] > cpbds[2]          # strictly down while any edge is still sharp
    assert all(a >= b for a, b in zip(cpbds, cpbds[1:]))
    assert cpbds[-1] < 0.05                        # sigma 4 falls below the recipe floor
    assert all(a > b for a, b in zip(laps, laps[1:]))
    assert laps[-1] < 0.05 * laps[0]


def test_blurred_face_clip_scores_below_original(carphone, blurred):
    original = score_blur(carphone)
    soft = score_blur(dataclasses.replace(carphone, rgb=[blurred(2.0)(f) for f in carphone.rgb]))
    assert soft["score_blur_laplacian"] < 0.5 * original["score_blur_laplacian"]
    assert soft["score_blur_cpbd"] <= original["score_blur_cpbd"]


def test_cpbd_does_not_depend_on_analysis_size(bikes):
    """Frames are resized to the working size first, so 640- vs 800-wide inputs agree."""
    def at(width):
        return dataclasses.replace(bikes, rgb=[cv2.resize(f, (width, round(f.shape[0] * width / f.shape[1])),
                                                          interpolation=cv2.INTER_CUBIC) for f in bikes.rgb])
    a, b = score_blur(bikes), score_blur(at(800))
    assert b["score_blur_cpbd"] == pytest.approx(a["score_blur_cpbd"], abs=0.02)
    assert b["score_blur_laplacian"] == pytest.approx(a["score_blur_laplacian"], rel=0.1)
    assert BLUR["long_side"] == 512


def test_marziliano_width_of_synthetic_edges():
    """A hard step is 1 px wide; Gaussian blur widens it; a sharp high-contrast edge is 'sharp'."""
    step = np.full((128, 256), 60.0, np.float32)
    step[:, 160:] = 200.0
    widths = []
    for sigma in (0, 1.0, 2.0):
        g = np.rint(cv2.GaussianBlur(step, (0, 0), sigma)) if sigma else step
        edges, gx = sobel_vertical_edges(g)
        r, c = np.nonzero(edges)
        assert set(c) <= {159, 160}
        widths.append(int(np.median(edge_widths(g, r, c, gx[r, c] > 0))))
    assert widths[0] == 1 and widths[0] < widths[1] < widths[2]
    assert cpbd(step) == 1.0
    assert cpbd(np.rint(cv2.GaussianBlur(step, (0, 0), 2.0))) == 0.0
    # falling edges are measured the same way
    g = np.rint(cv2.GaussianBlur(255 - step, (0, 0), 1.0))
    edges, gx = sobel_vertical_edges(g)
    r, c = np.nonzero(edges)
    assert int(np.median(edge_widths(g, r, c, gx[r, c] > 0))) == widths[1]


def test_flat_clip_has_no_edges(carphone):
    flat = dataclasses.replace(carphone, rgb=[np.full_like(f, 90) for f in carphone.rgb])
    out = score_blur(flat)
    assert out["score_blur_cpbd"] == 0.0
    assert out["score_blur_laplacian"] == pytest.approx(0.0, abs=1e-6)
