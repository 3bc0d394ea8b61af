"""Motion smoothness scorers (Q-Align ONNX, VLM, BRISQUE) and the aesthetic metric."""
from __future__ import annotations

import numpy as np
import pytest

from s2vforge.backends.errors import ModelNotFound
from s2vforge.backends.qalign import (LEVEL_WEIGHTS, BrisqueQuality, expand2square, expected_quality, owl2_pixels,
                                      window_indices)
from s2vforge.bench.opens2v.metrics.base import Sample
from s2vforge.bench.opens2v.metrics.smoothness import MotionSmoothness

from .conftest import read_frames, video_with_frames

SAMPLE = Sample(id="singleobj_1", prompt="p", ref_paths=[])


def test_windows_match_the_official_sliding_window():
    assert window_indices(5) == [[0, 0, 0], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 3, 4]]
    assert window_indices(1) == [[0, 0, 0]]
    # frames before the half-window repeat the window's first frame; later ones pad at the front
    assert window_indices(4, window=5) == [[0] * 5, [0] * 5, [0, 1, 2, 3, 3], [1, 1, 1, 2, 3]]


def test_expected_quality_and_owl2_preprocessing():
    assert expected_quality(np.array([[20.0, 0, 0, 0, 0]]))[0] == pytest.approx(1.0, abs=1e-6)
    assert expected_quality(np.zeros((1, 5)))[0] == pytest.approx(LEVEL_WEIGHTS.mean())
    assert expected_quality(np.array([[0, 0, 0, 0, 30.0]]))[0] == pytest.approx(0.0, abs=1e-6)
    img = np.full((40, 100, 3), 200, np.uint8)
    sq = expand2square(img, (1, 2, 3))
    assert sq.shape == (100, 100, 3) and (sq[0, 0] == [1, 2, 3]).all() and (sq[50, 50] == 200).all()
    px = owl2_pixels([img], size=64)
    assert px.shape == (1, 3, 64, 64) and px.dtype == np.float32
    assert abs(px[0, :, 0, 0]).max() < 0.02          # the mean-colour padding normalises to ~0


def test_brisque_smoothness_flags_a_degraded_frame(media):
    import cv2
    frames = read_frames(media["bikes"], n=7)[:, :, :480]
    scorer = BrisqueQuality()
    clean = MotionSmoothness(backend="brisque", scorer=scorer)
    assert clean.name == "smoothness_brisque" and not clean.comparable
    base = clean.compute_record(video_with_frames(media["bikes"], frames), SAMPLE)
    bad = frames.copy()
    bad[3] = cv2.GaussianBlur(bad[3], (0, 0), 6)
    hit = clean.compute_record(video_with_frames(media["bikes"], bad), SAMPLE)
    assert 0.0 <= hit["value"] <= base["value"] <= 1.0
    assert hit["details"]["artifact_frames"] >= base["details"]["artifact_frames"] + 2
    assert hit["details"]["quality_max_jump"] > 0.05


@pytest.mark.reference
def test_qalign_onnx_scorer_and_metric(tmp_path, media):
    pytest.importorskip("onnx")
    import onnxruntime as ort
    from .tiny_models import export_tiny_qalign
    path = export_tiny_qalign(tmp_path / "one-align.onnx")
    frames = read_frames(media["bikes"], n=5, step=2)
    m = MotionSmoothness(backend="onnx", model_dir=tmp_path)
    assert m.name == "motion_smoothness"
    rec = m.compute_record(video_with_frames(media["bikes"], frames), SAMPLE)
    assert rec["details"]["n_frames"] == 5 and 0.0 <= rec["value"] <= 1.0
    # per-frame scores are the level logits of each frame's window, in order
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    px = owl2_pixels(frames)
    want = expected_quality(sess.run(None, {"pixel_values": np.stack([px[g] for g in window_indices(5)])})[0])
    np.testing.assert_allclose(m.scorer.score_video(frames), want, atol=1e-6)


@pytest.mark.reference
def test_vlm_qalign_on_tiny_qwen2vl(tiny_dirs, media):
    from s2vforge.backends.qalign import VlmQAlign
    scorer = VlmQAlign.from_dir(tiny_dirs("gme"), max_image_tokens=8, batch_size=2)
    assert len(set(scorer.level_ids)) == 5
    frames = read_frames(media["bikes"], n=3, step=4)[:, ::4, ::4]
    q = scorer.score_video(frames)
    assert q.shape == (3,) and ((q >= 0) & (q <= 1)).all()
    m = MotionSmoothness(backend="vlm", scorer=scorer)
    assert m.name == "smoothness_vlm" and 0.0 <= m.compute(video_with_frames(media["bikes"], frames), SAMPLE) <= 1.0


def test_missing_qalign_onnx(no_model_dirs):
    with pytest.raises(ModelNotFound, match="one-align"):
        MotionSmoothness(backend="onnx").load()


@pytest.mark.reference
def test_aesthetic_metric_with_tiny_clip_and_mlp(tiny_dirs, media, tmp_path):
    import torch
    from safetensors.torch import save_file
    from s2vforge.backends.aesthetic import AestheticPredictor, build_aesthetic_mlp
    from s2vforge.bench.opens2v.metrics.aesthetic import AestheticScore
    torch.manual_seed(0)
    mlp = build_aesthetic_mlp(16)
    save_file({k: v.contiguous() for k, v in mlp.state_dict().items()}, str(tmp_path / "mlp.safetensors"))
    frames = read_frames(media["bikes"], n=6, step=3)
    video = video_with_frames(media["bikes"], frames)
    metric = AestheticScore(clip_dir=tiny_dirs("clip"), mlp_path=tmp_path / "mlp.safetensors", n_frames=4)
    rec = metric.compute_record(video, SAMPLE)
    direct = AestheticPredictor.from_dirs(tiny_dirs("clip"), tmp_path / "mlp.safetensors").predict(list(video.uniform(4)))
    assert metric.name == "aesthetic" and rec["details"]["n_frames"] == 4
    assert rec["value"] == pytest.approx(float(np.mean(direct)), abs=1e-5)


def test_missing_aesthetic_weights(no_model_dirs):
    from s2vforge.bench.opens2v.metrics.aesthetic import AestheticScore
    with pytest.raises(ModelNotFound, match="clip-vit-large-patch14"):
        AestheticScore().load()
