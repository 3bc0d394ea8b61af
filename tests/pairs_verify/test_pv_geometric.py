"""verify_geometric on real objects composited onto real backgrounds."""
from __future__ import annotations

import numpy as np
import pytest

from verify_media import composite, transform, paste, cutout
from s2vforge.recipes import load_recipe
from s2vforge.stages.pairs.verify import Verdict, verify_geometric

GEO = load_recipe(None)["pairs"]["verify"]["geometric"]      # min_inliers, ratio, max_side of the default recipe


@pytest.mark.parametrize("name,bg,params", [
    ("coffee", "grass", dict(scale=0.7, flip=False, gain=0.6, angle=8)),
    ("chelsea", "hubble_deep_field", dict(scale=1.3, flip=True, gain=0.8, angle=0)),
    ("rocket", "brick", dict(scale=0.8, flip=True, gain=0.5, angle=-10)),
    ("minduka", "motorcycle_right", dict(scale=1.4, flip=False, gain=0.55, angle=5)),
])
def test_same_object_other_scale_flip_darker_background(objs, bgs, name, bg, params):
    tgt, _ = composite(objs[name], bgs[bg], np.random.default_rng(3), **params)
    v = verify_geometric(objs[name], tgt, **GEO)
    assert v.check == "geometric"
    assert v.ok is True, str(v)
    assert v.score >= GEO["min_inliers"]
    if params["flip"]:
        assert ",flipped" in v.detail    # the mirrored reference explained the matches


def test_mirrored_instance_needs_the_flip(objs, bgs):
    """A mirrored cat: the flipped reference gives many more inliers than the unflipped one."""
    tgt, _ = composite(objs["chelsea"], bgs["gravel"], np.random.default_rng(5), scale=0.9, flip=True, gain=0.9, angle=0)
    v = verify_geometric(objs["chelsea"], tgt, **GEO)
    assert v.ok and "flipped" in v.detail
    unflipped = verify_geometric(objs["chelsea"][:, ::-1].copy(), tgt, **GEO)
    assert unflipped.ok and "flipped" not in unflipped.detail   # same answer, found without mirroring


@pytest.mark.parametrize("ref,tgt_name,bg", [
    ("coffee", "chelsea", "grass"), ("rocket", "motorcycle", "brick"), ("astronaut", "grace_hopper", "coffee"),
    ("minduka", "logo", "retina"), ("chelsea", "coffee", "motorcycle_right"),
])
def test_different_objects_fail(objs, bgs, ref, tgt_name, bg):
    tgt, _ = composite(objs[tgt_name], bgs[bg], np.random.default_rng(7), scale=0.9, flip=False, gain=0.8, angle=3)
    v = verify_geometric(objs[ref], tgt, **GEO)
    assert v.ok is False, str(v)
    assert v.score < GEO["min_inliers"]


def test_rgb_crops_without_alpha(objs, bgs):
    """Plain RGB crops (no mask) still verify: the whole crop is used."""
    ref = objs["coffee"][..., :3].copy()
    frame, mask = paste(transform(objs["coffee"], scale=0.8, gain=0.7), bgs["gravel"], (100, 60))
    tgt = cutout(frame, mask)[..., :3].copy()
    assert verify_geometric(ref, tgt, **GEO).ok is True
    assert verify_geometric(objs["chelsea"][..., :3].copy(), tgt, **GEO).ok is False


def test_textureless_crop_is_undecided(objs):
    flat = np.full((120, 160, 4), 255, np.uint8)
    v = verify_geometric(objs["coffee"], flat, **GEO)
    assert v.ok is None and v.score is None and "keypoints" in v.detail
    assert str(v).startswith("geometric:unknown:")


def test_verdict_strings():
    assert str(Verdict("geometric", True, 23.0, "inliers=23")) == "geometric:ok:inliers=23"
    assert str(Verdict("face_agreement", False, 0.71, "dist=0.710")) == "face_agreement:fail:dist=0.710"
    assert str(Verdict("vlm_identity", None, None, "endpoint error x")) == "vlm_identity:unknown:endpoint error x"
    assert str(Verdict("text_match", True, 0.8)) == "text_match:ok:score=0.8"
