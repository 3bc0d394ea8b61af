"""Context diversity: subject removed, only the surroundings compared."""
from __future__ import annotations

import numpy as np
import pytest

from verify_media import paste, transform
from s2vforge.backends.errors import ModelNotFound
from s2vforge.recipes import load_recipe
from s2vforge.stages.pairs.diversity import (BackgroundEmbedder, background_embedder, bbox_mask, context_diversity,
                                             remove_subject, scene_dim)

CONTEXT = load_recipe(None)["pairs"]["context"]      # the default recipe's context embedder (scene)


def _frame(objs, bgs, obj, bg, xy=(150, 80), scale=1.0):
    return paste(transform(objs[obj], scale=scale), bgs[bg], xy)


def test_same_background_different_subjects_is_low(objs, bgs):
    emb = background_embedder(CONTEXT)
    assert isinstance(emb, BackgroundEmbedder) and emb.name == "scene"
    for bg, (a, xa, sa), (b, xb, sb) in (("motorcycle_right", ("coffee", (150, 80), 1.0), ("chelsea", (300, 150), 1.0)),
                                          ("grass", ("rocket", (50, 20), 0.9), ("minduka", (400, 300), 1.0))):
        f1, m1 = _frame(objs, bgs, a, bg, xa, sa)
        f2, m2 = _frame(objs, bgs, b, bg, xb, sb)
        e = emb.embed([f1, f2], [m1, m2])
        assert e.shape == (2, scene_dim()) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
        assert context_diversity(e[0], e[1]) < 0.12, bg


def test_different_backgrounds_same_subject_is_high(objs, bgs):
    emb = background_embedder(CONTEXT)
    for obj, b1, b2 in (("coffee", "motorcycle_right", "hubble_deep_field"), ("chelsea", "brick", "retina"),
                        ("chelsea", "coffee", "motorcycle_right")):
        f1, m1 = _frame(objs, bgs, obj, b1)
        f2, m2 = _frame(objs, bgs, obj, b2)
        e = emb.embed([f1, f2], [m1, m2])
        assert context_diversity(e[0], e[1]) > 0.25, (obj, b1, b2)


def test_removing_the_subject_matters(objs, bgs):
    """A big subject on the same background: with its mask the frames look alike; without it
    the subject itself makes them look different. And the masked descriptor ignores what is
    under the mask entirely (pixels inside it are inpainted away)."""
    emb = background_embedder(CONTEXT)
    f1, m1 = _frame(objs, bgs, "rocket", "grass", (50, 20), 0.9)
    f2, m2 = _frame(objs, bgs, "minduka", "grass", (400, 300))
    masked = emb.embed([f1, f2], [m1, m2])
    bare = emb.embed([f1, f2], [None, None])
    assert context_diversity(*bare) > 2 * context_diversity(*masked)
    scrambled = f1.copy()
    scrambled[m1] = np.random.default_rng(0).integers(0, 256, (int(m1.sum()), 3), dtype=np.uint8)
    e = emb.embed([f1, scrambled], [m1, m1])
    assert context_diversity(e[0], e[1]) < 1e-3


def test_bbox_mask_and_remove_subject(bgs):
    bg = bgs["astronaut"]
    m = bbox_mask(bg.shape, [100.4, 50, 300, 420])
    assert m.shape == bg.shape[:2] and m.sum() == 200 * 370
    small, removed = remove_subject(bg, m)
    assert max(small.shape[:2]) == 160 and removed.shape == small.shape[:2] and removed.mean() > 0.2
    with pytest.raises(ValueError):
        remove_subject(bg, m[:10])


def test_context_diversity_range():
    a = np.array([1.0, 0, 0])
    assert context_diversity(a, a) == 0.0
    assert context_diversity(a, -a) == 1.0            # clipped
    assert context_diversity(a, np.array([0, 1.0, 0])) == 1.0
    assert np.isnan(context_diversity(a, np.zeros(3)))


def test_unknown_backend():
    with pytest.raises(ValueError):
        background_embedder({**CONTEXT, "backend": "nope"})


@pytest.mark.reference
def test_dinov2_tiny_random_model_through_public_path(tmp_path, objs, bgs, monkeypatch):
    pytest.importorskip("torch")
    from transformers import Dinov2Config, Dinov2Model
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=56, patch_size=14)
    Dinov2Model(cfg).eval().save_pretrained(tmp_path / "dinov2-tiny")
    emb = background_embedder({**CONTEXT, "backend": "dinov2", "model": str(tmp_path / "dinov2-tiny")})
    assert emb.name == "dinov2"
    f1, m1 = _frame(objs, bgs, "coffee", "motorcycle_right")
    f2, m2 = _frame(objs, bgs, "coffee", "hubble_deep_field")
    e = emb.embed([f1, f2, f1], [m1, m2, None])
    assert e.shape == (3, 32) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert context_diversity(e[0], e[1]) > 0.0
    scrambled = f1.copy()
    scrambled[m1] = 0
    e2 = emb.embed([scrambled], [m1])
    assert context_diversity(e[0], e2[0]) < 1e-4          # the subject never reaches the model
    # missing weights: ModelNotFound naming where it looked
    monkeypatch.setenv("S2VFORGE_MODELS", str(tmp_path / "none"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelNotFound) as err:
        background_embedder({**CONTEXT, "backend": "dinov2", "model": str(tmp_path / "absent")})
    assert "absent" in str(err.value)
