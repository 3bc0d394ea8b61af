"""TorchBatchRunner on CPU: batched outputs equal an unbatched forward, uint8 normalisation, stats."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from s2vforge.backends.torch_batch import (TorchBatchRunner, frames_per_batch_for, probe_batch_frames,  # noqa: E402
                                           resolve_run_dtype)

pytestmark = pytest.mark.reference

# CUDA joins the device list where a GPU is visible (never a skip: CI has none and forbids skips)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)   # OpenAI CLIP preprocessing constants
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def real_frames(n: int, size: int = 32) -> np.ndarray:
    """n uint8 RGB crops (n, size, size, 3) cut from scikit-image's astronaut photo."""
    from PIL import Image
    data = Path(importlib.util.find_spec("skimage").origin).parent / "data" / "astronaut.png"
    img = np.asarray(Image.open(data).convert("RGB"))
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        y, x = rng.integers(0, img.shape[0] - 4 * size, 2)
        crop = Image.fromarray(img[y:y + 4 * size, x:x + 4 * size]).resize((size, size))
        out.append(np.asarray(crop))
    return np.stack(out)


def tiny_cnn() -> "torch.nn.Module":
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.GELU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()


@pytest.mark.parametrize("device", DEVICES)
def test_batched_equals_unbatched_fp32_for_ragged_n(device):
    model = tiny_cnn()
    hwc = real_frames(11)
    pixels = (hwc.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - 0.5) / 0.25
    with torch.inference_mode():
        expected = model(torch.from_numpy(pixels)).numpy()
    runner = TorchBatchRunner(model, device=device, dtype="float32", batch_frames=4)
    got = runner(pixels)
    assert got.dtype == np.float32 and got.shape == (11, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert runner.stats["frames"] == 11 and runner.stats["batches"] == 3 and runner.stats["calls"] == 1
    for key in ("wall_s", "compute_s", "host_prep_s", "d2h_s"):
        assert runner.stats[key] >= 0.0
    assert runner.stats["compute_s"] > 0.0
    assert runner.stats["timer"] == ("cuda_events" if device == "cuda" else "perf_counter")
    runner(pixels[:3])
    assert runner.stats["frames"] == 14 and runner.stats["batches"] == 4 and runner.stats["calls"] == 2
    runner.reset_stats()
    assert runner.stats["frames"] == 0


@pytest.mark.parametrize("device", DEVICES)
def test_uint8_normalised_with_mean_std_in_both_layouts(device):
    hwc = real_frames(6)
    chw = np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))
    mean = np.array(CLIP_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.array(CLIP_STD, np.float32).reshape(1, 3, 1, 1)
    expected = (chw.astype(np.float32) / 255.0 - mean) / std
    identity = TorchBatchRunner(lambda x: x, device=device, dtype="fp32", batch_frames=4, mean=CLIP_MEAN, std=CLIP_STD)
    np.testing.assert_allclose(identity(chw), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(identity(hwc), expected, rtol=1e-5, atol=1e-5)
    if device == "cuda":   # uint8 travels: a quarter of float32's bytes
        assert identity.stats["h2d_bytes"] == 2 * chw.nbytes
    plain = TorchBatchRunner(lambda x: x, device=device, dtype="fp32")
    np.testing.assert_allclose(plain(chw), chw.astype(np.float32) / 255.0, atol=1e-6)


def test_bf16_module_weights_cast_and_close_to_fp32():
    model = tiny_cnn()
    pixels = real_frames(5)
    ref = TorchBatchRunner(tiny_cnn(), device="cpu", dtype="float32", batch_frames=2, mean=(0.5,) * 3, std=(0.25,) * 3)
    runner = TorchBatchRunner(model, device="cpu", dtype="bf16", batch_frames=2, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert next(model.parameters()).dtype == torch.bfloat16
    got, want = runner(pixels), ref(pixels)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=0.05 * np.abs(want).max() + 1e-3)


def test_auto_device_dtype_on_cpu_and_errors():
    runner = TorchBatchRunner(lambda x: x.mean(dim=(1, 2, 3)), batch_frames=3)
    if not torch.cuda.is_available():
        assert runner.device == "cpu" and runner.dtype == torch.float32
    assert resolve_run_dtype("fp16", "cpu") == torch.float16
    with pytest.raises(ValueError):
        runner(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(TypeError):
        TorchBatchRunner(lambda x: (x,), device="cpu")(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError):
        TorchBatchRunner(lambda x: x[:1], device="cpu")(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError):
        TorchBatchRunner(lambda x: x, device="cpu", mean=(0.5,) * 3)


def test_run_device_and_batch_sizing():
    model = tiny_cnn()
    runner = TorchBatchRunner(model, device="cpu", dtype="float32", batch_frames=4, mean=(0.5,) * 3, std=(0.25,) * 3)
    hwc = real_frames(7)
    x = torch.from_numpy(np.ascontiguousarray(hwc.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(runner.run_device(x).numpy(), runner(hwc), rtol=1e-5, atol=1e-6)
    # CLIP ViT-L/14 at 224 is ~1.6e11 FLOPs a frame: 4 TFLOP batches -> 16 (power of two at or below 25)
    assert frames_per_batch_for(1.6e11, 80) == 16
    assert frames_per_batch_for(1.6e11, 0.5, activation_gb_per_frame=0.1) == 4
    assert frames_per_batch_for(1e6, 80, max_frames=64) == 64
    probe = probe_batch_frames(runner, (3, 32, 32), candidates=(2, 4), iters=1, min_gain=0.0)
    assert probe["batch_frames"] in (2, 4) and set(probe["frames_per_s"]) <= {2, 4}
    assert runner.batch_frames == probe["batch_frames"]


@pytest.mark.parametrize("device", DEVICES)
def test_resize_on_device_matches_torch_interpolate(device):
    hwc = real_frames(5, size=48)
    runner = TorchBatchRunner(lambda x: x, device=device, dtype="float32", batch_frames=2, resize=(24, 20),
                              mean=(0.5,) * 3, std=(0.25,) * 3)
    got = runner(hwc)
    x = torch.from_numpy(np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))).float() / 255.0
    want = (torch.nn.functional.interpolate(x, size=(24, 20), mode="bilinear", antialias=True,
                                            align_corners=False) - 0.5) / 0.25
    assert got.shape == (5, 3, 24, 20)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
