"""GME (Qwen2-VL) and CLIP stand-in embedders, and the GmeScore metric, on tiny real-architecture models."""
from __future__ import annotations

import numpy as np
import pytest

from s2vforge.backends.errors import ModelNotFound
from s2vforge.backends.gme import GME_QUERY_INSTRUCTION, gme_smart_resize

from .conftest import read_frames, video_with_frames


def test_smart_resize_matches_qwen_rules():
    # fetch_image snapping: 832x480 (OpenS2V's usual size) -> multiples of 28 nearest
    assert gme_smart_resize(480, 832) == (476, 840)
    # processor bounds (256..1280 tokens of 28x28): a small crop is upscaled to >= 256 tokens
    h, w = gme_smart_resize(60, 100, min_pixels=256 * 28 * 28, max_pixels=1280 * 28 * 28)
    assert h % 28 == 0 and w % 28 == 0 and h * w >= 256 * 28 * 28
    h, w = gme_smart_resize(4000, 6000, min_pixels=256 * 28 * 28, max_pixels=1280 * 28 * 28)
    assert h * w <= 1280 * 28 * 28 and abs(w / h - 1.5) < 0.1
    with pytest.raises(ValueError):
        gme_smart_resize(2, 1000)


@pytest.mark.reference
def test_gme_embeddings_follow_the_gme_recipe(tiny_dirs, media):
    import torch
    from s2vforge.backends.gme import GmeEmbedder, gme_message, model_kwargs, qwen2vl_inputs_embeds
    # small visual-token budget keeps the CPU test fast; the defaults (256..1280) are the recipe's
    gme = GmeEmbedder.from_dir(tiny_dirs("gme"), batch_size=4, min_image_tokens=4, max_image_tokens=64)
    texts = ["a man playing with his dog in front of the house", "a dog"]
    t = gme.embed_texts(texts, instruction=GME_QUERY_INSTRUCTION)
    assert t.shape == (2, 32) and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    # right padding + last-token pooling: a short text alone == the same text padded in a batch
    alone = gme.embed_texts(texts[1:], instruction=GME_QUERY_INSTRUCTION)
    np.testing.assert_allclose(alone[0], t[1], atol=1e-5)
    # the instruction is part of the query
    assert not np.allclose(gme.embed_texts(texts[1:])[0], alone[0], atol=1e-4)

    frames = read_frames(media["bikes"], n=2, step=10)
    small = frames[0][100:160, 200:300]
    imgs = gme.embed_images([frames[0], small])
    assert np.allclose(gme.embed_images([small])[0], imgs[1], atol=1e-5)     # batching invariance across sizes
    assert not np.allclose(imgs[0], imgs[1], atol=1e-3)

    # gme_inference.py calls the decoder with position_ids=None (1-D positions on every rope section):
    # our explicit positions reproduce that, and differ from Qwen2-VL's 3-D multimodal rope.
    from s2vforge.backends.gme import gme_fetch_image
    batch = gme.inputs([gme_message(None, True, "You are a helpful assistant.")], [gme_fetch_image(frames[0])])
    with torch.inference_mode():
        lm, ids, emb = qwen2vl_inputs_embeds(gme.model, batch, "cpu", gme.dtype)
        h_none = lm(inputs_embeds=emb, attention_mask=batch["attention_mask"]).last_hidden_state[0, -1]
        full = gme.model.model(**model_kwargs(gme.model.model, batch, "cpu", gme.dtype)).last_hidden_state[0, -1]
    ref = torch.nn.functional.normalize(h_none.float(), dim=-1).numpy()
    np.testing.assert_allclose(imgs[0], ref, atol=1e-5)
    assert not np.allclose(torch.nn.functional.normalize(full.float(), dim=-1).numpy(), ref, atol=1e-4)


@pytest.mark.reference
def test_gmescore_metric_on_real_video(tiny_dirs, media):
    from s2vforge.bench.opens2v.metrics.base import Sample
    from s2vforge.backends.gme import GmeEmbedder
    from s2vforge.bench.opens2v.metrics.gme import GmeScore
    frames = read_frames(media["bikes"], n=8, step=5)
    video = video_with_frames(media["bikes"], frames)
    sample = Sample(id="singleobj_1", prompt="a man riding a bike on a street", ref_paths=[])
    m = GmeScore(model_dir=tiny_dirs("gme"), n_frames=4,
                 embedder=GmeEmbedder.from_dir(tiny_dirs("gme"), min_image_tokens=4, max_image_tokens=64))
    m.load()
    rec = m.compute_record(video, sample)
    q = m.embedder.embed_texts([sample.prompt], instruction=GME_QUERY_INSTRUCTION)[0]
    expected = float(np.mean(m.embedder.embed_images(list(video.uniform(4))) @ q))
    assert m.name == "gme" and rec["details"]["n_frames"] == 4
    assert rec["value"] == pytest.approx(expected, abs=1e-6) and -1 <= rec["value"] <= 1

    clip = GmeScore(backend="clip", model_dir=tiny_dirs("clip"), n_frames=4)
    assert clip.name == "gme_clip" and not clip.comparable
    v = clip.compute(video, sample)
    assert -1 <= v <= 1 and v != pytest.approx(rec["value"])


def test_missing_gme_weights_say_where_and_how(no_model_dirs):
    from s2vforge.backends.gme import ClipEmbedder, GmeEmbedder
    with pytest.raises(ModelNotFound) as e:
        GmeEmbedder.from_dir(variant="7b")
    msg = str(e.value)
    assert "Alibaba-NLP/gme-Qwen2-VL-7B-Instruct" in msg and str(no_model_dirs / "models") in msg
    assert "huggingface-cli download" in msg
    with pytest.raises(ModelNotFound, match="clip-vit-large-patch14"):
        ClipEmbedder.from_dir()
