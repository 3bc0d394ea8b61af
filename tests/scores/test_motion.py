import dataclasses

import pytest

from s2vforge.recipes import load_recipe
from s2vforge.stages.scores.motion import score_motion as _score_motion

MOTION = load_recipe(None)["scorer_params"]["motion"]      # the default recipe's width 320, max_pairs 8


def score_motion(frames):
    return _score_motion(frames, **MOTION)


def test_real_clip_moves_and_static_variant_does_not(clip):
    original = score_motion(clip)["score_motion"]
    static = score_motion(dataclasses.replace(clip, next_rgb=list(clip.rgb)))["score_motion"]
    assert original > 0.3
    assert static < 0.05
    assert static < original / 10


@pytest.mark.parametrize("k", [4, 16])
def test_synthetic_pan_reads_its_shift_at_working_width(clip, k):
    """Content moving right by k analysis px per frame reads k * 320 / width."""
    panned = dataclasses.replace(clip, rgb=[f[:, k:] for f in clip.rgb], next_rgb=[f[:, :-k] for f in clip.rgb])
    width = clip.rgb[0].shape[1] - k
    assert score_motion(panned)["score_motion"] == pytest.approx(k * MOTION["width"] / width, rel=0.15)


def test_flow_is_per_nominal_frame_interval(bikes):
    """A pair two frame intervals apart moves twice as far, and is scaled back to one interval."""
    k = 8
    base = dataclasses.replace(bikes, rgb=[f[:, k:] for f in bikes.rgb], next_rgb=[f[:, :-k] for f in bikes.rgb])
    doubled = dataclasses.replace(base, next_dt=[2 * dt for dt in base.next_dt])
    assert score_motion(doubled)["score_motion"] == pytest.approx(score_motion(base)["score_motion"] / 2, rel=1e-6)


def test_crop_applies_to_both_frames_of_a_pair(carphone, few_frames):
    """Left half pans by k px, right half is still: each crop sees only its own half, and a
    crop scores exactly like frames cut by hand."""
    carphone = few_frames(carphone, 3)
    h, w = carphone.rgb[0].shape[:2]
    k, half, margin = 8, w // 2, 24

    def left_half_panned(f):
        g = f.copy()
        g[:, k:half] = f[:, :half - k]
        return g

    moving = dataclasses.replace(carphone, next_rgb=[left_half_panned(f) for f in carphone.rgb], source_size=(w, h))
    left = dataclasses.replace(moving, crop=(margin, 0, half - margin, h))
    right = dataclasses.replace(moving, crop=(half + margin, 0, w, h))
    by_hand = dataclasses.replace(moving, rgb=[f[:, margin:half - margin] for f in moving.rgb],
                                  next_rgb=[f[:, margin:half - margin] for f in moving.next_rgb],
                                  source_size=(half - 2 * margin, h))
    assert score_motion(right)["score_motion"] < 0.05
    assert score_motion(left)["score_motion"] > 2.0
    assert score_motion(left)["score_motion"] == pytest.approx(score_motion(by_hand)["score_motion"], rel=1e-9)


def test_no_pairs_gives_none(carphone):
    assert score_motion(dataclasses.replace(carphone, next_rgb=[], next_dt=[])) == {"score_motion": None}
