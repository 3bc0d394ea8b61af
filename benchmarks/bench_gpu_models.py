"""GPU throughput of the curation model stages through TorchBatchRunner (issue 6, GPU path).

Randomly initialised models of the real architectures (speed does not depend on weight values;
no download): CLIP ViT-L/14 vision tower + projection (224), DINOv2-L/14 (224), SAM 2.1
hiera-large image encoder at 1024 (+ a mask-decoder call with one box prompt), GroundingDINO
Swin-T + BERT-base at 750x1333 (a 16:9 frame after its 800/1333 resize) with a short text prompt.

For each model and batch size: frames/s (median per-iteration time after warm-up, with
torch.cuda.synchronize), model FLOPs per frame (torch.utils.flop_counter on one frame), achieved
TFLOP/s and the fraction of the GPU's dense bf16 peak, GPU busy % (torch.cuda.utilization or
nvidia-smi sampled in a thread during the timed loop) and peak memory. Then, at the best batch
size, the end-to-end path from uint8 numpy frames (host staging + pinned, overlapped H2D) against
device-resident frames, an NVDEC probe (PyAV hwaccel, torchcodec, torchvision; never fails) and a
projection: hours of video per GPU-hour for the recipe's model stages.

    python benchmarks/bench_gpu_models.py --json gpu_models.json            # H100: ~3-5 min
    python benchmarks/bench_gpu_models.py --tiny --device cpu --iters 1     # CPU smoke test, seconds

Prints the result JSON on stdout (and to --json OUT); a readable table goes to stderr.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from s2vforge.backends.torch_batch import TorchBatchRunner  # noqa: E402

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # OpenAI CLIP
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # DINOv2, SAM 2, GroundingDINO

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from NVIDIA's datasheets.
PEAKS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("H800", 989.0),
         ("GH200", 989.0), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("A10", 125.0), ("L4", 121.0)]

ALL_MODELS = ("clip_l", "dinov2_l", "sam2", "gdino")
DEFAULT_BATCHES = {"clip_l": (8, 32, 64, 128), "dinov2_l": (8, 32, 64, 128), "sam2": (1, 4, 8, 16),
                   "gdino": (1, 4, 8, 16)}
TEXT_PROMPT_IDS = [101, 2711, 1012, 3899, 1012, 2482, 1012, 102]   # "[CLS] person . dog . car . [SEP]" (BERT ids)


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- models

def build(cls, config, device: str, dtype):
    """Random init directly on the device in dtype (fast: no CPU fp32 copy of a 300M-param model)."""
    import torch
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = cls(config)
    finally:
        torch.set_default_dtype(prev)
    return model.to(device=device, dtype=dtype).eval()


def n_params(model) -> float:
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 1)


def clip_l(tiny: bool, device, dtype) -> list[dict]:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    if tiny:
        cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                               image_size=32, patch_size=8, projection_dim=16)
    else:   # openai/clip-vit-large-patch14 vision tower
        cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                               image_size=224, patch_size=14, projection_dim=768)
    m = build(CLIPVisionModelWithProjection, cfg, device, dtype)
    return [dict(name="clip_l", label="CLIP ViT-L/14 vision + projection", model=m, hw=(cfg.image_size,) * 2,
                 mean=CLIP_MEAN, std=CLIP_STD, forward=lambda x: m(pixel_values=x).image_embeds)]


def dinov2_l(tiny: bool, device, dtype) -> list[dict]:
    from transformers import Dinov2Config, Dinov2Model
    if tiny:
        cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, patch_size=8, image_size=32)
        hw = 32
    else:   # facebook/dinov2-large (position embeddings for 518, interpolated to the 224 input)
        cfg, hw = Dinov2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, patch_size=14,
                               image_size=518, mlp_ratio=4, layerscale_value=1e-5), 224
    m = build(Dinov2Model, cfg, device, dtype)
    return [dict(name="dinov2_l", label="DINOv2-L/14 (CLS embedding)", model=m, hw=(hw, hw), mean=IMAGENET_MEAN,
                 std=IMAGENET_STD, forward=lambda x: m(pixel_values=x).pooler_output)]


def sam2(tiny: bool, device, dtype) -> list[dict]:
    import torch
    import transformers as tf
    if tiny:   # the tiny config of tests/subjects_masks
        size = 128
        backbone = tf.Sam2HieraDetConfig(hidden_size=12, image_size=size, blocks_per_stage=[1, 2, 7, 2],
                                         embed_dim_per_stage=[12, 24, 48, 96])
        vision = tf.Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[96, 48, 24, 12],
                                     backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]], fpn_hidden_size=32)
        cfg = tf.Sam2Config(vision_config=vision,
                            prompt_encoder_config=tf.Sam2PromptEncoderConfig(image_size=size, patch_size=16,
                                                                             mask_input_channels=8, hidden_size=32),
                            mask_decoder_config=tf.Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64,
                                                                         num_hidden_layers=2, num_attention_heads=4,
                                                                         iou_head_hidden_dim=32))
    else:      # facebook/sam2.1-hiera-large
        size = 1024
        backbone = tf.Sam2HieraDetConfig(hidden_size=144, num_attention_heads=2, image_size=size,
                                         blocks_per_stage=[2, 6, 36, 4], embed_dim_per_stage=[144, 288, 576, 1152],
                                         num_attention_heads_per_stage=[2, 4, 8, 16],
                                         window_size_per_stage=[8, 4, 16, 8],
                                         global_attention_blocks=[23, 33, 43],
                                         window_positional_embedding_background_size=[7, 7])
        vision = tf.Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[1152, 576, 288, 144])
        cfg = tf.Sam2Config(vision_config=vision)
    m = build(tf.Sam2Model, cfg, device, dtype)
    box = torch.tensor([[[0.2 * size, 0.15 * size, 0.7 * size, 0.9 * size]]], device=device)   # one box, input pixels

    def encoder(x):
        return m.get_image_embeddings(x)[-1]            # lowest-resolution (B, 256, 64, 64) embedding

    def with_box(x):
        return m(pixel_values=x, input_boxes=box.expand(x.shape[0], 1, 4).to(x.dtype),
                 multimask_output=False).pred_masks

    def decoder_only(emb):
        return m(image_embeddings=emb, input_boxes=box.expand(emb[-1].shape[0], 1, 4).to(emb[-1].dtype),
                 multimask_output=False).pred_masks

    return [dict(name="sam2_encoder", label="SAM 2.1 hiera-large image encoder", model=m, hw=(size, size),
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, forward=encoder, decoder_only=decoder_only),
            dict(name="sam2_box", label="SAM 2.1 hiera-large encoder + mask decoder, 1 box", model=m, hw=(size, size),
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, forward=with_box)]


def gdino(tiny: bool, device, dtype) -> list[dict]:
    import torch
    from transformers import BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection
    text = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)   # bert-base-uncased
    if tiny:
        text = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64)
        cfg = GroundingDinoConfig(
            backbone_config=dict(model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                                 window_size=4, image_size=64, out_features=["stage2", "stage3", "stage4"],
                                 out_indices=[2, 3, 4]),
            text_config=text.to_dict(), d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64,
            decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20, max_text_len=32,
            num_feature_levels=4, encoder_n_points=2, decoder_n_points=2)
        hw = (64, 96)
    else:       # IDEA-Research/grounding-dino-tiny: the default config (Swin-T) with BERT-base text encoder
        cfg = GroundingDinoConfig(text_config=text.to_dict())
        hw = (750, 1333)
    m = build(GroundingDinoForObjectDetection, cfg, device, dtype)
    ids = torch.tensor([TEXT_PROMPT_IDS], device=device)
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)

    def forward(x):
        b = x.shape[0]
        return m(pixel_values=x, input_ids=ids.expand(b, -1), attention_mask=mask.expand(b, -1),
                 token_type_ids=types.expand(b, -1)).pred_boxes
    return [dict(name="gdino", label="GroundingDINO Swin-T + BERT-base, 3-phrase prompt", model=m, hw=hw,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, forward=forward,
                 flops_note="multi-scale deformable attention (grid_sample) is not counted by FlopCounterMode")]


BUILDERS = {"clip_l": clip_l, "dinov2_l": dinov2_l, "sam2": sam2, "gdino": gdino}


# ---------------------------------------------------------------------- measurement helpers

def sync(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class BusySampler:
    """GPU busy % sampled in a background thread (torch.cuda.utilization via NVML, else nvidia-smi)."""

    def __init__(self, device: str, interval_s: float = 0.1) -> None:
        self.device, self.interval_s, self.samples, self.source = device, interval_s, [], None
        self._stop = threading.Event()
        self._thread = None
        if device.startswith("cuda"):
            self.source = self._pick_source()

    @staticmethod
    def _pick_source():
        import torch
        try:
            torch.cuda.utilization()
            return "torch.cuda.utilization"
        except Exception:   # no pynvml / NVML
            pass
        exe = shutil.which("nvidia-smi")
        if exe:
            try:
                subprocess.run([exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                               capture_output=True, timeout=5, check=True)
                return "nvidia-smi"
            except Exception:
                return None
        return None

    def _read(self):
        import torch
        if self.source == "torch.cuda.utilization":
            return float(torch.cuda.utilization())
        idx = torch.cuda.current_device()
        out = subprocess.run([shutil.which("nvidia-smi"), f"--id={idx}", "--query-gpu=utilization.gpu",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
        return float(out.stdout.strip().splitlines()[0])

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.samples.append(self._read())
            except Exception:
                pass
            self._stop.wait(self.interval_s)

    def __enter__(self):
        if self.source:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=6)

    def result(self):
        if not self.source:
            return None
        # the first sample may cover the idle time before the loop; drop it when there are others
        s = self.samples[1:] if len(self.samples) > 2 else self.samples
        return round(float(np.mean(s)), 1) if s else None


def time_iterations(fn, device: str, iters: int, min_seconds: float, warmup: int = 2, max_iters: int = 500):
    """Median seconds per call after warm-up: at least `iters` calls and `min_seconds` of timed work."""
    for _ in range(warmup):
        fn()
    sync(device)
    ts = []
    start = time.perf_counter()
    while len(ts) < iters or (time.perf_counter() - start < min_seconds and len(ts) < max_iters):
        t = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t)
    return float(statistics.median(ts)), len(ts)


def flops_per_frame(runner: TorchBatchRunner, hw) -> float | None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.randint(0, 256, (1, 3, *hw), dtype=torch.uint8, device=runner.device)
    try:
        with FlopCounterMode(display=False) as counter:
            runner.run_device(x)
        return float(counter.get_total_flops())
    except Exception as exc:   # some ops may not be countable on some versions: report, don't fail
        log(f"  flop count failed: {type(exc).__name__}: {exc}")
        return None


def measured_gemm_tflops(device: str, n: int = 8192, iters: int = 20) -> float | None:
    """The dense bf16 GEMM rate this GPU actually sustains (n x n x n matmuls): the practical ceiling,
    beside the datasheet peak, for judging a model's fraction of bf16 throughput."""
    import torch
    if not device.startswith("cuda"):
        return None
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return round(2 * n ** 3 * iters / (time.perf_counter() - t) / 1e12, 1)


def gpu_info(device: str) -> dict:
    import torch
    info = {"device": device, "torch": torch.__version__}
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if not device.startswith("cuda"):
        info.update(name="cpu", peak_bf16_tflops=None, peak_source="no GPU: fraction of peak not computed")
        return info
    name = torch.cuda.get_device_name()
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    peak, which = None, "unknown GPU: fraction of peak not computed"
    for key, val in PEAKS:
        if key.lower() in name.lower():
            peak, which = val, f"{key} dense bf16 {val:g} TFLOP/s (datasheet, no sparsity)"
            break
    info.update(name=name, cuda=torch.version.cuda, capability=f"{props.major}.{props.minor}",
                memory_gib=round(props.total_memory / 2**30, 1), sm_count=props.multi_processor_count,
                bf16_supported=torch.cuda.is_bf16_supported(), peak_bf16_tflops=peak, peak_source=which)
    return info


def real_like_frames(n: int, hw, seed: int = 0) -> np.ndarray:
    """uint8 (n, H, W, 3) frames with image-like structure (smooth gradients + noise), as decoded."""
    rng = np.random.default_rng(seed)
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        base = np.stack([xx / w * 255, yy / h * 255, (xx + yy + 7 * i) % 255], -1)
        out[i] = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------------- per-model benchmark

def bench_variant(v: dict, batches, args, peak) -> dict:
    import torch
    device, dtype = args.device, args.dtype
    runner = TorchBatchRunner(v["forward"], device=device, dtype=dtype, batch_frames=batches[0],
                              mean=v["mean"], std=v["std"])
    res = {"label": v["label"], "params_m": n_params(v["model"]), "input_hw": list(v["hw"]),
           "dtype": str(runner.dtype).replace("torch.", ""), "batches": {}}
    flops = flops_per_frame(runner, v["hw"])
    res["gflops_per_frame"] = None if flops is None else round(flops / 1e9, 2)
    if args.compile:   # FLOPs are counted eagerly above; time the torch.compile'd forward
        runner = TorchBatchRunner(v["forward"], device=device, dtype=dtype, batch_frames=batches[0],
                                  mean=v["mean"], std=v["std"], compile=args.compile_mode or True)
        res["compiled"] = True
    if v.get("flops_note"):
        res["flops_note"] = v["flops_note"]
    best_b, best_fps = None, 0.0
    for b in batches:
        runner.batch_frames = b
        x = torch.randint(0, 256, (b, 3, *v["hw"]), dtype=torch.uint8, device=device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        try:
            sampler = BusySampler(device)
            with sampler:
                sec, n_it = time_iterations(lambda: runner.run_device(x), device, args.iters, args.min_seconds)
        except torch.cuda.OutOfMemoryError:
            res["batches"][str(b)] = {"error": "out of memory"}
            del x
            gc.collect()
            torch.cuda.empty_cache()
            break
        fps = b / sec
        row = {"frames_per_s": round(fps, 2), "ms_per_batch": round(sec * 1e3, 2), "timed_iters": n_it,
               "gpu_busy_pct": sampler.result()}
        if flops is not None:
            row["achieved_tflops"] = round(flops * fps / 1e12, 2)
            if peak:
                row["frac_of_peak"] = round(flops * fps / 1e12 / peak, 3)
            if getattr(args, "gemm_tflops", None):
                row["frac_of_measured_gemm"] = round(flops * fps / 1e12 / args.gemm_tflops, 3)
        if device.startswith("cuda"):
            row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        res["batches"][str(b)] = row
        log(f"  {v['name']:<13} b={b:<4} {fps:9.1f} frames/s  {row.get('achieved_tflops', '-')} TFLOP/s  "
            f"busy {row['gpu_busy_pct']}%  peak {row.get('peak_mem_gib', '-')} GiB")
        if fps > best_fps:
            best_b, best_fps = b, fps
        del x
    res["best_batch"], res["best_frames_per_s"] = best_b, round(best_fps, 2)
    if best_b is not None and args.e2e:
        res["end_to_end"] = bench_end_to_end(v, runner, best_b, args)
    if v.get("decoder_only") is not None and best_b is not None:
        res["mask_decoder_1box"] = bench_sam2_decoder(v, runner, best_b, args)
    return res


def bench_end_to_end(v: dict, runner: TorchBatchRunner, b: int, args) -> dict:
    """The same frames as uint8 numpy (host staging + pinned overlapped H2D), as pageable uint8, as
    host-normalised float32 (the classic path: 4x the bytes), against device-resident uint8."""
    import torch
    device = args.device
    n = b * args.e2e_batches
    frames = real_like_frames(min(n, 8), v["hw"])
    frames = np.concatenate([frames] * (n // len(frames) + 1))[:n]            # (n, H, W, 3) uint8 as decoded
    mean = np.asarray(v["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(v["std"], np.float32).reshape(1, 3, 1, 1)
    x_dev = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).contiguous()
    pageable = TorchBatchRunner(v["forward"], device=device, dtype=args.dtype, batch_frames=b, mean=v["mean"],
                                std=v["std"], pin_memory=False)
    plain = TorchBatchRunner(v["forward"], device=device, dtype=args.dtype, batch_frames=b)
    resizing = TorchBatchRunner(v["forward"], device=device, dtype=args.dtype, batch_frames=b, mean=v["mean"],
                                std=v["std"], resize=tuple(v["hw"]))
    src_hw = (48, 80) if args.tiny else (720, 1280)      # decoded 720p frames, resized on the device
    decoded = real_like_frames(min(n, 8), src_hw)
    decoded = np.concatenate([decoded] * (n // len(decoded) + 1))[:n]
    runner.batch_frames = b

    def host_float():
        chw = frames.transpose(0, 3, 1, 2).astype(np.float32)
        return plain((chw / 255.0 - mean) / std)

    modes = {"device_resident_uint8": lambda: runner.run_device(x_dev),
             "numpy_uint8_pinned": lambda: runner(frames),
             "numpy_uint8_pageable": lambda: pageable(frames),
             "numpy_float32_host_normalised": host_float,
             "numpy_uint8_decoded_device_resize": lambda: resizing(decoded)}
    out = {"frames": n, "batch": b}
    for name, fn in modes.items():
        for r in (runner, pageable, plain, resizing):
            r.reset_stats()
        sec, _ = time_iterations(fn, device, max(1, min(args.iters, 3)), 0.0, warmup=1)
        row = {"frames_per_s": round(n / sec, 2)}
        stats = {"numpy_uint8_pinned": runner, "numpy_uint8_pageable": pageable,
                 "numpy_float32_host_normalised": plain, "numpy_uint8_decoded_device_resize": resizing}.get(name)
        if stats is not None and stats.stats["calls"]:
            c = stats.stats["calls"]
            row.update({k: round(stats.stats[k] / c, 4) for k in ("host_prep_s", "h2d_s", "compute_s", "d2h_s",
                                                                  "wall_s")})
            row["h2d_mb"] = round(stats.stats["h2d_bytes"] / c / 1e6, 1)
        out[name] = row
    base = out["device_resident_uint8"]["frames_per_s"]
    for name in modes:
        out[name]["slowdown_vs_device"] = round(base / out[name]["frames_per_s"], 3)
    out["numpy_uint8_decoded_device_resize"]["from"] = f"{src_hw[0]}x{src_hw[1]}"
    out["host_resize_ms_per_frame"] = host_resize_ms(v["hw"])
    log(f"  {v['name']:<13} e2e  " + "  ".join(f"{k}={out[k]['frames_per_s']}" for k in modes))
    del x_dev, resizing, pageable, plain
    return out


def host_resize_ms(hw, src_hw=(720, 1280), n: int = 16) -> dict:
    """Host cost of resizing decoded 720p frames to the model input (what a CPU preprocessor pays)."""
    frames = real_like_frames(2, src_hw)
    try:
        import cv2
        fn, lib = (lambda f: cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)), "cv2 INTER_AREA"
    except ImportError:
        from PIL import Image
        fn, lib = (lambda f: np.asarray(Image.fromarray(f).resize((hw[1], hw[0]), Image.BILINEAR))), "PIL bilinear"
    t = time.perf_counter()
    for i in range(n):
        fn(frames[i % 2])
    return {"ms": round((time.perf_counter() - t) / n * 1e3, 3), "from": f"{src_hw[0]}x{src_hw[1]}", "lib": lib}


def bench_sam2_decoder(v: dict, runner: TorchBatchRunner, b: int, args) -> dict:
    import torch
    x = torch.randint(0, 256, (b, 3, *v["hw"]), dtype=torch.uint8, device=args.device)
    with torch.inference_mode(), torch.autocast(device_type="cuda" if args.device.startswith("cuda") else "cpu",
                                                dtype=runner.dtype, enabled=runner.dtype != torch.float32):
        emb = v["model"].get_image_embeddings(runner._prepare(x))
        sec, _ = time_iterations(lambda: v["decoder_only"](emb), args.device, args.iters, args.min_seconds / 2)
    return {"batch": b, "ms_per_image": round(sec / b * 1e3, 3), "images_per_s": round(b / sec, 1)}


# ---------------------------------------------------------------------- NVDEC

def _err(exc) -> str:
    return f"unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def make_test_video(path: Path, hw, n: int) -> str:
    """Encode a short synthetic clip: PyAV (h264 if the build has an encoder, else mpeg4), else
    OpenCV's VideoWriter (mp4v). Returns the codec used."""
    frames = real_like_frames(min(n, 8), hw)
    last = None
    try:
        import av
        for codec in ("libx264", "h264", "mpeg4"):
            try:
                with av.open(str(path), "w") as out:
                    st = out.add_stream(codec, rate=25)
                    st.width, st.height, st.pix_fmt = hw[1], hw[0], "yuv420p"
                    for i in range(n):
                        for pkt in st.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")):
                            out.mux(pkt)
                    for pkt in st.encode():
                        out.mux(pkt)
                return f"{codec} (PyAV)"
            except Exception as exc:
                last = exc
    except ImportError as exc:
        last = exc
    try:
        import cv2
        for fourcc in ("avc1", "mp4v"):
            wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (hw[1], hw[0]))
            if wr.isOpened():
                for i in range(n):
                    wr.write(frames[i % len(frames)][:, :, ::-1])
                wr.release()
                if path.exists() and path.stat().st_size > 0:
                    return f"{fourcc} (OpenCV)"
    except Exception as exc:
        last = exc
    raise RuntimeError(f"no usable encoder: {last}")


def nvdec_probe(tiny: bool, device: str) -> dict:
    out: dict = {}
    hw, n = ((64, 96), 8) if tiny else ((720, 1280), 120)
    tmp = Path(tempfile.mkdtemp(prefix="s2v_nvdec_"))
    path = tmp / "probe.mp4"
    try:
        try:
            out["codec"] = make_test_video(path, hw, n)
            out["video"] = f"{n} frames {hw[0]}x{hw[1]}"
        except Exception as exc:
            out["test_video"] = _err(exc)
            return out
        out["pyav_cpu"] = _pyav_cpu(path)
        out["pyav_hwaccel"] = _pyav_hwaccel(path, device)
        out["torchcodec"] = _torchcodec(path, device)
        out["torchvision"] = _torchvision(path, device)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _pyav_cpu(path: Path):
    try:
        import av
        t = time.perf_counter()
        with av.open(str(path)) as c:
            k = sum(1 for f in c.decode(video=0) if f.to_ndarray(format="rgb24") is not None)
        return {"version": av.__version__, "fps_rgb": round(k / (time.perf_counter() - t), 1), "frames": k}
    except Exception as exc:
        return _err(exc)


def _pyav_hwaccel(path: Path, device: str):
    if not device.startswith("cuda"):
        return "unavailable: no CUDA device"
    try:
        import av
        from av.codec.hwaccel import HWAccel, hwdevices_available
        devices = list(hwdevices_available())
        if "cuda" not in devices:
            return f"unavailable: PyAV's FFmpeg has no cuda hwdevice (has {devices})"
        t = time.perf_counter()
        with av.open(str(path), hwaccel=HWAccel(device_type="cuda", allow_software_fallback=False)) as c:
            k = 0
            for f in c.decode(video=0):
                f.to_ndarray(format="rgb24")
                k += 1
        return {"fps_incl_download_rgb": round(k / (time.perf_counter() - t), 1), "frames": k}
    except Exception as exc:
        return _err(exc)


def _torchcodec(path: Path, device: str):
    if not device.startswith("cuda"):
        return "unavailable: no CUDA device"
    try:
        from torchcodec.decoders import VideoDecoder
        dec = VideoDecoder(str(path), device="cuda")
        t = time.perf_counter()
        batch = dec.get_frames_in_range(0, len(dec))
        sync(device)
        return {"fps_on_device": round(batch.data.shape[0] / (time.perf_counter() - t), 1),
                "frames": int(batch.data.shape[0])}
    except Exception as exc:
        return _err(exc)


def _torchvision(path: Path, device: str):
    if not device.startswith("cuda"):
        return "unavailable: no CUDA device"
    try:
        import torchvision
        reader_cls = getattr(torchvision.io, "VideoReader", None)
        if reader_cls is None:
            return f"unavailable: torchvision {torchvision.__version__} has no io.VideoReader"
        t = time.perf_counter()
        k = sum(1 for _ in reader_cls(str(path), device="cuda"))
        return {"fps_on_device": round(k / (time.perf_counter() - t), 1), "frames": k}
    except Exception as exc:
        return _err(exc)


# ---------------------------------------------------------------------- projection

def recipe_subject_frames(default: int = 3) -> int:
    """Frames per clip of the subjects stage from the opens2v recipe (Phantom-Data's 5/50/95%)."""
    try:
        import yaml
        rec = yaml.safe_load((ROOT / "src/s2vforge/recipes/opens2v.yaml").read_text())
        return len(rec["subjects"]["frames"]["fractions"])
    except Exception:
        return default


def project(results: dict, args) -> dict:
    """GPU-seconds per clip of the model stages -> hours of video per GPU-hour.

    subjects: GroundingDINO + SAM 2 (encoder once, decoder per box) on each subject frame;
    pairs: DINOv2-L on each kept instance's crop and on its background (diversity);
    aesthetic: CLIP ViT-L/14 on the clip's scored frames and on each kept crop (subject quality).
    Uses end-to-end numpy->pinned frames/s where measured, else device-resident frames/s."""
    def fps(name):
        r = results.get(name) or {}
        e2e = (r.get("end_to_end") or {}).get("numpy_uint8_pinned", {}).get("frames_per_s")
        return e2e or r.get("best_frames_per_s")

    w = {"clip_seconds": args.clip_seconds, "subject_frames": recipe_subject_frames(),
         "boxes_per_frame": args.boxes_per_frame, "kept_instances": args.kept_instances,
         "aesthetic_frames": args.aesthetic_frames}
    sec, missing = {}, []
    gd, enc, clipf, dino = fps("gdino"), fps("sam2_encoder"), fps("clip_l"), fps("dinov2_l")
    dec = (results.get("sam2_encoder") or {}).get("mask_decoder_1box", {}).get("ms_per_image")
    if gd and enc:
        sec["subjects"] = w["subject_frames"] * (1 / gd + 1 / enc + w["boxes_per_frame"] * (dec or 0) / 1e3)
    else:
        missing.append("subjects (needs gdino, sam2)")
    if dino:
        sec["pairs"] = 2 * w["kept_instances"] / dino
    else:
        missing.append("pairs (needs dinov2_l)")
    if clipf:
        sec["aesthetic"] = (w["aesthetic_frames"] + w["kept_instances"]) / clipf
    else:
        missing.append("aesthetic (needs clip_l)")
    total = sum(sec.values())
    out = {"workload_per_clip": w, "gpu_ms_per_clip": {k: round(v * 1e3, 2) for k, v in sec.items()},
           "gpu_ms_per_clip_total": round(total * 1e3, 2)}
    if total > 0:
        out["clips_per_gpu_hour"] = round(3600 / total)
        out["video_hours_per_gpu_hour"] = round(w["clip_seconds"] / total, 1)
    if missing:
        out["not_included"] = missing
    return out


# ---------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(ALL_MODELS), help=f"comma list of {','.join(ALL_MODELS)}")
    p.add_argument("--batch-sizes", default=None, help="comma list overriding every model's default batch sizes")
    p.add_argument("--iters", type=int, default=5, help="minimum timed iterations per batch size")
    p.add_argument("--min-seconds", type=float, default=1.0, help="minimum timed seconds per batch size")
    p.add_argument("--json", dest="json_out", default=None, help="also write the result JSON here")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU) | bfloat16 | float16 | float32")
    p.add_argument("--tiny", action="store_true", help="tiny configs (CPU smoke test)")
    p.add_argument("--compile", action="store_true", help="time torch.compile'd forwards (max-autotune-no-cudagraphs)")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode with --compile (e.g. max-autotune)")
    p.add_argument("--no-e2e", dest="e2e", action="store_false", help="skip the numpy end-to-end comparison")
    p.add_argument("--e2e-batches", type=int, default=4, help="batches per end-to-end run (overlap needs several)")
    p.add_argument("--no-nvdec", dest="nvdec", action="store_false", help="skip the NVDEC probe")
    # projection workload (ours: assumptions, override per corpus)
    p.add_argument("--clip-seconds", type=float, default=8.0, help="mean kept clip length (ours; split keeps 2-20 s)")
    p.add_argument("--boxes-per-frame", type=float, default=2.0, help="SAM 2 boxes per subject frame (ours)")
    p.add_argument("--kept-instances", type=float, default=4.0, help="kept subject instances per clip (ours)")
    p.add_argument("--aesthetic-frames", type=int, default=4,
                   help="CLIP frames per clip (the default recipe's scorer_params.aesthetic.n_frames = 4)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    import torch
    args = parse_args(argv)
    from s2vforge.backends.torch_batch import resolve_device, resolve_run_dtype
    args.device = resolve_device(args.device)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        log("CUDA requested but not available")
        return 2
    dtype = resolve_run_dtype(args.dtype, args.device)
    if args.tiny and not args.device.startswith("cuda"):
        torch.set_num_threads(1)      # tiny models gain nothing from threads; on a busy CI box they thrash
    args.dtype = str(dtype).replace("torch.", "")
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    info = gpu_info(args.device)
    args.gemm_tflops = measured_gemm_tflops(args.device)
    info["measured_gemm_bf16_tflops"] = args.gemm_tflops
    log(f"device: {info.get('name')}  peak: {info.get('peak_source')}  measured GEMM: {args.gemm_tflops} TFLOP/s  "
        f"dtype: {args.dtype}")
    t_start = time.perf_counter()
    results, models = {}, [m.strip() for m in args.models.split(",") if m.strip()]
    for name in models:
        if name not in BUILDERS:
            log(f"unknown model {name!r}; choose from {ALL_MODELS}")
            return 2
    for name in models:
        t0 = time.perf_counter()
        batches = ([int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes
                   else list((2, 4) if args.tiny else DEFAULT_BATCHES[name]))
        try:
            torch.manual_seed(0)
            variants = BUILDERS[name](args.tiny, args.device, dtype)
        except Exception as exc:
            results[name] = {"error": f"build failed: {type(exc).__name__}: {exc}"}
            log(f"{name}: {results[name]['error']}")
            continue
        log(f"{name}: built in {time.perf_counter() - t0:.1f}s")
        for v in variants:
            try:
                results[v["name"]] = bench_variant(v, batches, args, info.get("peak_bf16_tflops"))
            except Exception as exc:
                results[v["name"]] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"{v['name']}: {results[v['name']]['error']}")
            results.get(v["name"], {})["model_seconds"] = round(time.perf_counter() - t0, 1)
        del variants
        gc.collect()
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    report = {"gpu": info, "settings": {k: getattr(args, k) for k in ("models", "batch_sizes", "iters", "min_seconds",
                                                                      "dtype", "tiny", "e2e", "e2e_batches")},
              "models": results, "projection": project(results, args)}
    report["nvdec"] = nvdec_probe(args.tiny, args.device) if args.nvdec else "skipped (--no-nvdec)"
    report["total_seconds"] = round(time.perf_counter() - t_start, 1)
    text = json.dumps(report, indent=2, default=str)
    if args.json_out:
        Path(args.json_out).write_text(text)
    print(text)
    p = report["projection"]
    log(f"projection: {p.get('gpu_ms_per_clip_total')} GPU-ms per {args.clip_seconds:g}s clip -> "
        f"{p.get('video_hours_per_gpu_hour')} h of video per GPU-hour ({p.get('gpu_ms_per_clip')})")
    log(f"total {report['total_seconds']}s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
