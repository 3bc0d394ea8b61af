"""Aesthetic reference backend: a tiny random CLIP (the real CLIPModel layout, 768-d projection)
and a random LAION-layout MLP, saved to disk and loaded through the public code path."""
from __future__ import annotations

import numpy as np
import pytest

from s2vforge.backends.aesthetic import MLP_FILES, AestheticPredictor, find_mlp_file
from s2vforge.backends.errors import ModelNotFound
from s2vforge.recipes import load_recipe
from s2vforge.stages.scores import aesthetic as aesthetic_scorer
from s2vforge.stages.scores import run_scorers

PARAMS = load_recipe(None)["scorer_params"]           # the default recipe's scorer settings
AESTHETIC = PARAMS["aesthetic"]
WEIGHTS = {k: AESTHETIC[k] for k in ("clip_dir", "mlp_path", "device", "dtype")}

MLP_KEYS = [f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """models/clip-vit-large-patch14 (tiny CLIPModel + processor) and models/laion-aesthetic (MLP)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import save_file

    from s2vforge.backends.aesthetic import build_aesthetic_mlp

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        projection_dim=768,
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                         vocab_size=64, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
    )
    transformers.CLIPModel(config).eval().save_pretrained(root / "clip-vit-large-patch14")
    processor_cls = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    processor_cls(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        root / "clip-vit-large-patch14")
    mlp = build_aesthetic_mlp(768)
    (root / "laion-aesthetic").mkdir()
    save_file({k: v.contiguous() for k, v in mlp.state_dict().items()}, str(root / "laion-aesthetic" / MLP_FILES[0]))
    return root


def _numpy_mlp(state: dict, x: np.ndarray) -> np.ndarray:
    for i in (0, 2, 4, 6, 7):
        x = x @ state[f"layers.{i}.weight"].T + state[f"layers.{i}.bias"]
    return x[:, 0]


@pytest.mark.reference
def test_predictor_loads_tiny_clip_and_mlp(tiny_weights, carphone, bikes):
    import torch
    from PIL import Image
    from safetensors.numpy import load_file
    from transformers import CLIPModel

    predictor = AestheticPredictor.from_dirs(tiny_weights / "clip-vit-large-patch14", tiny_weights / "laion-aesthetic")
    images = [carphone.rgb[0], carphone.rgb[5], bikes.rgb[4]]
    scores = predictor.predict(images)
    assert scores.shape == (3,) and scores.dtype == np.float32 and np.isfinite(scores).all()
    assert np.array_equal(scores, predictor.predict(images))                      # deterministic (eval mode)
    np.testing.assert_allclose(predictor.predict(images, batch_size=1), scores, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(scores, 6))) == 3                                     # depends on the image

    emb = predictor.embed(images)
    assert emb.shape == (3, 768)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)     # L2-normalised
    # the vision-only load equals the full CLIPModel's image features
    full = CLIPModel.from_pretrained(tiny_weights / "clip-vit-large-patch14").eval()
    pixels = predictor.processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        feats = full.get_image_features(pixel_values=pixels)
    feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
    feats = torch.nn.functional.normalize(feats, dim=-1).numpy()
    np.testing.assert_allclose(emb, feats, rtol=1e-4, atol=1e-5)
    # and the MLP is the original layout applied to those embeddings
    state = load_file(str(tiny_weights / "laion-aesthetic" / MLP_FILES[0]))
    assert sorted(state) == sorted(MLP_KEYS)
    np.testing.assert_allclose(_numpy_mlp(state, emb.astype(np.float64)), scores, rtol=1e-4, atol=1e-5)


@pytest.mark.reference
def test_original_pth_loads_with_weights_only(tiny_weights, tmp_path, carphone):
    import torch
    from safetensors.torch import load_file

    pth = tmp_path / MLP_FILES[1]
    torch.save(load_file(str(tiny_weights / "laion-aesthetic" / MLP_FILES[0])), pth)
    clip_dir = tiny_weights / "clip-vit-large-patch14"
    from_pth = AestheticPredictor.from_dirs(clip_dir, tmp_path).predict(carphone.rgb[:2])
    from_st = AestheticPredictor.from_dirs(clip_dir, tiny_weights / "laion-aesthetic").predict(carphone.rgb[:2])
    np.testing.assert_allclose(from_pth, from_st, rtol=1e-6)


@pytest.mark.reference
def test_scorer_finds_weights_under_s2vforge_models(tiny_weights, carphone, isolated_models, monkeypatch):
    monkeypatch.setenv("S2VFORGE_MODELS", str(tiny_weights))
    values, unavailable, failed = run_scorers(carphone, ["aesthetic"], PARAMS)
    assert unavailable == {}
    predictor = aesthetic_scorer.load_predictor(**WEIGHTS)
    assert predictor is aesthetic_scorer.load_predictor(**WEIGHTS)                 # loaded once
    picked = [carphone.rgb[i] for i in carphone.pick(AESTHETIC["n_frames"])]
    assert len(picked) == 4
    assert values["score_aesthetic"] == pytest.approx(float(np.mean(predictor.predict(picked))), rel=1e-6)


def test_missing_clip_names_model_and_dirs(isolated_models, tmp_path):
    with pytest.raises(ModelNotFound) as err:
        AestheticPredictor.from_dirs(clip_dir=tmp_path / "nowhere")
    msg = str(err.value)
    assert "openai/clip-vit-large-patch14" in msg
    for d in (tmp_path / "nowhere", isolated_models / "clip-vit-large-patch14",
              tmp_path / "home" / ".cache" / "s2vforge" / "models" / "clip-vit-large-patch14",
              tmp_path / "hub" / "models--openai--clip-vit-large-patch14"):
        assert str(d) in msg


def test_missing_mlp_names_file_and_dirs(isolated_models, tmp_path):
    (isolated_models / "clip-vit-large-patch14").mkdir()
    (isolated_models / "clip-vit-large-patch14" / "config.json").write_text("{}")
    with pytest.raises(ModelNotFound) as err:
        AestheticPredictor.from_dirs()
    msg = str(err.value)
    assert "sac+logos+ava1-l14-linearMSE" in msg and "improved-aesthetic-predictor" in msg
    assert str(isolated_models / "laion-aesthetic") in msg
    with pytest.raises(ModelNotFound):
        find_mlp_file(tmp_path / "no-such-dir")


def test_missing_weights_failure_is_remembered(isolated_models, carphone, monkeypatch):
    calls = []
    real = AestheticPredictor.from_dirs.__func__

    def counting(cls, *args, **kwargs):
        calls.append(args)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(AestheticPredictor, "from_dirs", classmethod(counting))
    for _ in range(3):
        values, unavailable, failed = run_scorers(carphone, ["aesthetic"], PARAMS)
        assert values == {"score_aesthetic": None} and "clip-vit-large-patch14" in unavailable["aesthetic"]
    assert len(calls) == 1
