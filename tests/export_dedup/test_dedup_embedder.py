"""ClipEmbedder: the embedded descriptor's properties, undecodable clips, the reference backend."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2vforge.stages.export.dedup import (EMBEDDED_DIM, ClipDecodeError, ClipEmbedder, sample_frames,
                                          trim_bars)


def test_embedded_vectors_are_unit_float32_and_deterministic(small_corpus, dedup_cfg):
    truth, root = small_corpus
    emb = ClipEmbedder(dedup_cfg)
    path = root / truth["clips"][0]["path"]
    v = emb.embed(path)
    assert v.dtype == np.float32 and v.shape == (EMBEDDED_DIM,)
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    assert emb.embed(path).tobytes() == v.tobytes()
    frames = sample_frames(path, dedup_cfg["step_s"], dedup_cfg["max_frames"], 128)
    assert emb.embed_frames(frames).tobytes() == v.tobytes()
    assert emb.config() == {"backend": "embedded", "step_s": dedup_cfg["step_s"], "max_frames": dedup_cfg["max_frames"],
                            "version": emb.config()["version"], "dim": EMBEDDED_DIM}


def test_frames_are_sampled_every_step_seconds(small_corpus):
    truth, root = small_corpus
    row = next(r for r in truth["clips"] if r["transform"] == "original" and r["footage"] == "astronaut_pan")
    frames = sample_frames(root / row["path"], 0.5, 32, 128)
    assert len(frames) == int(row["duration_s"] / 0.5 - 1e-9) + 1           # 3 s -> 0, 0.5, ..., 2.5 s
    assert max(frames[0].shape[:2]) == 128
    assert len(sample_frames(root / row["path"], 0.5, 3, 128)) == 3          # max_frames caps (spread wider)


def test_letterbox_bars_are_trimmed_but_a_dark_edge_object_is_not():
    rng = np.random.default_rng(0)
    picture = rng.integers(40, 255, size=(60, 100, 3), dtype=np.uint8)
    boxed = np.zeros((90, 100, 3), np.uint8)
    boxed[15:75] = picture
    out = trim_bars([boxed, boxed])
    assert out[0].shape == picture.shape and np.array_equal(out[0], picture)
    one_side = picture.copy()
    one_side[:, :20] = 5                                                     # a dark object at the left only
    assert trim_bars([one_side])[0].shape == one_side.shape
    dark = np.full((60, 100, 3), 10, np.uint8)                               # a dark picture, not bars
    assert trim_bars([dark])[0].shape == dark.shape


def test_a_flat_clip_gets_a_zero_vector_not_nan():
    emb = ClipEmbedder({"backend": "embedded", "step_s": 0.5, "max_frames": 32})
    v = emb.embed_frames([np.full((72, 128, 3), 77, np.uint8)] * 3)
    assert v.shape == (EMBEDDED_DIM,) and not np.any(v)


@pytest.mark.parametrize("content", [None, b"", b"\x00\x01 this is not a video " * 50])
def test_a_clip_that_does_not_decode_raises_clip_decode_error(tmp_path, content):
    p = tmp_path / "broken.mp4"
    if content is not None:
        p.write_bytes(content)
    emb = ClipEmbedder({"backend": "embedded", "step_s": 0.5, "max_frames": 32})
    with pytest.raises(ClipDecodeError) as info:
        emb.embed(p)
    assert info.value.path == str(p) and info.value.reason
    assert str(p) in str(info.value) and "cannot decode clip" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_truncated_clip_raises_clip_decode_error(small_corpus, tmp_path):
    truth, root = small_corpus
    data = (root / truth["clips"][0]["path"]).read_bytes()
    p = tmp_path / "truncated.mp4"
    p.write_bytes(data[: len(data) // 3])          # the moov atom is at the end: nothing decodes
    with pytest.raises(ClipDecodeError):
        ClipEmbedder({"backend": "embedded", "step_s": 0.5, "max_frames": 32}).embed(p)


def test_bad_embedder_settings():
    from s2vforge.stages.recipe_keys import MissingRecipeKey
    with pytest.raises(MissingRecipeKey, match="export.dedup.step_s"):
        ClipEmbedder({"backend": "embedded", "max_frames": 32})
    with pytest.raises(ValueError, match="backend"):
        ClipEmbedder({"backend": "phash", "step_s": 0.5, "max_frames": 32})


REFERENCE = {"backend": "reference", "step_s": 0.5, "max_frames": 6, "reference_kind": "clip", "device": "cpu",
             "batch_size": 4}


@pytest.mark.reference
def test_reference_backend_loads_a_tiny_random_clip_and_returns_unit_vectors(small_corpus, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch
    from bench_models.tiny_models import save_tiny_clip
    torch.set_num_threads(1)
    model_dir = save_tiny_clip(tmp_path / "tiny-clip")
    emb = ClipEmbedder({**REFERENCE, "reference_model": str(model_dir)})
    before = emb.config()
    emb.setup()
    assert emb.config() == before and before["model"] == str(model_dir) and before["kind"] == "clip"
    truth, root = small_corpus
    paths = [root / r["path"] for r in truth["clips"][:3]]
    vecs = [emb.embed(p) for p in paths]
    for v in vecs:
        assert v.dtype == np.float32 and v.shape == (16,)                    # the tiny model's projection_dim
        assert np.all(np.isfinite(v)) and abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    assert emb.embed(paths[0]).tobytes() == vecs[0].tobytes()


@pytest.mark.reference
def test_reference_backend_without_weights_names_the_model_and_where_it_looked(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from s2vforge.backends.errors import ModelNotFound
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("S2VFORGE_MODELS", str(tmp_path / "models"))
    for var in ("HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    emb = ClipEmbedder({**REFERENCE, "reference_model": None})
    with pytest.raises(ModelNotFound) as info:
        emb.setup()
    msg = str(info.value)
    assert "openai/clip-vit-large-patch14" in msg and "near-duplicate" in msg
    assert str(Path(tmp_path) / "models" / "clip-vit-large-patch14") in msg
    assert "export.dedup.reference_model" in msg and "backend: embedded" in msg
