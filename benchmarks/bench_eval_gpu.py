"""Throughput of the OpenS2V-Eval model-backed metrics, per model, with random weights of the
real architectures' sizes (no checkpoint needed: speed does not depend on the weight values).

Each measurement goes through the project's own backend classes where they exist (so
preprocessing is included): AestheticPredictor (CLIP ViT-L/14 + LAION MLP), GmeEmbedder
(GME-Qwen2-VL-2B / 7B), Owlv2Detector (OWLv2 base/16 at 960, image- and text-prompted),
GroundingDinoDetector (Swin-B + BERT-base), and the IR-101 face embedder (torch on GPU;
onnxruntime on CPU). Q-Align (mPLUG-Owl2) is not in transformers: `qalign_proxy` times a
LLaMA-2-7B-sized decoder on a 3-frame window's ~225 tokens plus a CLIP ViT-L/14-448 tower on its
3 frames, which is what one-align spends per frame.

Inputs are random 832x480 RGB frames (the usual OpenS2V-Eval generation size), OpenS2V-sized
prompts (~110 words) and 112x112 face crops.

    python benchmarks/bench_eval_gpu.py --device cuda --dtype bfloat16 --out gpu.json
    python benchmarks/bench_eval_gpu.py --device cpu --dtype float32 --models clip_l,ir101,owlv2 --iters 1

Prints one table (items/s per model) and the projection for the Open domain (180 videos).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

FRAME_HW = (480, 832)
PROMPT = ("A man in a dark jacket walks his golden retriever along a sunlit park path lined with tall "
          "trees, the dog sniffing the grass while the man glances at the camera and smiles. ") * 4

# Open domain workload (from Open-Domain_Eval.json): 180 videos, 90 FaceSim ids, 242 (video, reference)
# pairs for NexusScore over 141 videos; 32 frames per video for aesthetic/GME/FaceSim/Nexus.
OPEN = {"videos": 180, "facesim_videos": 90, "nexus_videos": 141, "nexus_pairs": 242, "frames": 32}


def sync(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, iters: int, warmup: int = 1) -> float:
    """Median seconds per call after warm-up."""
    for _ in range(warmup):
        fn()
    sync(device)
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


SMOKE = False   # --smoke: same code paths, one layer per stack (checks the script, times nothing real)


def _shrink(config) -> None:
    for sub in ("text_config", "vision_config", "backbone_config"):
        if getattr(config, sub, None) is not None:
            _shrink(getattr(config, sub))
    for key, val in (("num_hidden_layers", 1), ("depth", 1), ("encoder_layers", 1), ("decoder_layers", 2)):
        if hasattr(config, key):
            setattr(config, key, val)
    if hasattr(config, "depths"):
        config.depths = [1] * len(config.depths)


def build(cls, config, device: str, dtype):
    """Randomly initialised model directly on the device, in dtype (fast init on GPU)."""
    import torch
    if SMOKE:
        _shrink(config)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = cls(config)
    finally:
        torch.set_default_dtype(prev)
    return model.to(device).eval()         # buffers some modules create on the CPU regardless


def n_params(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e9


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (n, *FRAME_HW, 3), dtype=np.uint8)
    return list(base)


# ------------------------------------------------------------------ models

def bench_clip_l(device, dtype, iters, batch):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    from s2vforge.backends.aesthetic import AestheticPredictor, _clip_image_processor, build_aesthetic_mlp
    cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=224, patch_size=14, projection_dim=768)
    vision = build(CLIPVisionModelWithProjection, cfg, device, dtype)
    pred = AestheticPredictor(vision, _clip_image_processor(Path("/nonexistent")), build_aesthetic_mlp().to(device),
                              device=device, dtype=dtype)
    fr = frames(batch)
    s = timed(lambda: pred.predict(fr, batch_size=batch), device, iters)
    return {"model": "CLIP ViT-L/14 + LAION MLP (aesthetic)", "unit": "frames", "per_s": batch / s, "batch": batch,
            "params_b": 0.30}


def qwen2vl_real_config(size: str, tok):
    from transformers import Qwen2VLConfig
    ids = tok.convert_tokens_to_ids
    if size == "7b":
        text = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                    num_key_value_heads=4, vocab_size=152064)
    else:
        text = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                    num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)
    text.update(rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, max_position_embeddings=32768,
                rope_theta=1000000.0, rms_norm_eps=1e-6)
    vision = dict(depth=32, embed_dim=1280, hidden_size=text["hidden_size"], num_heads=16, mlp_ratio=4,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids("<|image_pad|>"),
                         video_token_id=ids("<|video_pad|>"), vision_start_token_id=ids("<|vision_start|>"),
                         vision_end_token_id=ids("<|vision_end|>"))


def bench_gme(size, device, dtype, iters, batch):
    from transformers import Qwen2VLForConditionalGeneration
    from s2vforge.backends.gme import GME_QUERY_INSTRUCTION, GmeEmbedder, Qwen2VLInputs, _qwen2vl_image_processor
    from tests.bench_models.tiny_models import qwen_like_tokenizer
    tok = qwen_like_tokenizer()
    model = build(Qwen2VLForConditionalGeneration, qwen2vl_real_config(size, tok), device, dtype)
    fr = frames(batch)
    crops = [f[100:260, 200:420] for f in fr]                 # Nexus box crops: upscaled to >= 256 tokens
    out = {"model": f"GME-Qwen2-VL-{size.upper()} (GmeScore, Nexus crops)", "unit": "frames", "batch": batch,
           "params_b": round(n_params(model), 2)}
    for tag, fast in (("", False), ("_fast", True)):         # PIL processor (reference) / torchvision on device
        if fast and not device.startswith("cuda"):
            continue
        ip = _qwen2vl_image_processor(Path("/nonexistent"), 256 * 28 * 28, 1280 * 28 * 28, fast=fast)
        inputs = Qwen2VLInputs(tok, ip, device=device)
        gme = GmeEmbedder(model, inputs, device=device, dtype=dtype, batch_size=batch)
        from s2vforge.backends.gme import gme_fetch_image, gme_message
        msgs = [gme_message(None, True, "x")] * len(fr)
        out["preprocess_s" + tag] = timed(lambda: inputs(msgs, [gme_fetch_image(f) for f in fr]), device, iters)
        out["per_s" + tag] = batch / timed(lambda: gme.embed_images(fr), device, iters)
        out["crops_per_s" + tag] = batch / timed(lambda: gme.embed_images(crops), device, iters)
        out["processor" + tag] = type(ip).__name__
    out["prompt_s"] = timed(lambda: gme.embed_texts([PROMPT], instruction=GME_QUERY_INSTRUCTION), device, iters)
    return out


def bench_owlv2(device, dtype, iters, _batch):
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    from s2vforge.backends.detection import Owlv2Detector
    from tests.bench_models.tiny_models import clip_like_tokenizer
    procs = []
    try:
        from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil
        procs.append(("", Owlv2ImageProcessorPil))
    except ImportError:
        pass
    try:
        import torchvision  # noqa: F401  (the torchvision-backed processor needs it)
        from transformers import Owlv2ImageProcessor
        if not procs or Owlv2ImageProcessor is not procs[0][1]:
            procs.append(("_fast", Owlv2ImageProcessor))
    except ImportError:
        pass
    cfg = Owlv2Config(text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                                       num_attention_heads=8, max_position_embeddings=16),
                      vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                         num_attention_heads=12, image_size=960, patch_size=16), projection_dim=512)
    model = build(Owlv2ForObjectDetection, cfg, device, dtype)
    tok = clip_like_tokenizer(Path(tempfile.mkdtemp()))
    fr = frames(32)
    refs = [fr[1][50:400, 100:500], fr[2][0:300, 300:800], fr[3][100:480, 0:380]]
    out = {"model": "OWLv2 base/16 @960 (Nexus detector)", "unit": "detections (frame x ref)", "batch": 1,
           "params_b": round(n_params(model), 2)}
    for tag, ip_cls in procs:
        det = Owlv2Detector(model, Owlv2Processor(image_processor=ip_cls(), tokenizer=tok), device=device, dtype=dtype)
        out["processor" + tag] = ip_cls.__name__
        out["per_s" + tag] = 1 / timed(lambda: det.detect(fr[0], prompt_image=refs[0]), device, iters)
        out["text_per_s" + tag] = 1 / timed(lambda: det.detect(fr[0], text="a dog"), device, iters)
        if device.startswith("cuda") or tag == "":
            n = 32 if device.startswith("cuda") else 2
            t1 = timed(lambda: det.detect_frames(fr[:n], refs[:1]), device, max(1, iters - 1))
            t3 = timed(lambda: det.detect_frames(fr[:n], refs[:3]), device, max(1, iters - 1))
            out["video_1ref_s" + tag] = t1 * 32 / n          # one video = 32 frames
            out["video_extra_ref_s" + tag] = (t3 - t1) / 2 * 32 / n
    return out


def bench_gdino(device, dtype, iters, _batch):
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoProcessor
    from s2vforge.backends.detection import GroundingDinoDetector
    from tests.bench_models.tiny_models import bert_like_tokenizer
    try:
        from transformers.models.grounding_dino.image_processing_pil_grounding_dino import \
            GroundingDinoImageProcessorPil as ip_cls
    except ImportError:
        from transformers import GroundingDinoImageProcessor as ip_cls
    cfg = GroundingDinoConfig(backbone_config=dict(model_type="swin", embed_dim=128, depths=[2, 2, 18, 2],
                                                   num_heads=[4, 8, 16, 32], window_size=12, image_size=384,
                                                   out_features=["stage2", "stage3", "stage4"], out_indices=[2, 3, 4]))
    model = build(GroundingDinoForObjectDetection, cfg, device, dtype)
    tok = bert_like_tokenizer(Path(tempfile.mkdtemp()))
    det = GroundingDinoDetector(model, GroundingDinoProcessor(image_processor=ip_cls(), tokenizer=tok), device=device,
                                dtype=dtype)
    fr = frames(1)
    s = timed(lambda: det.detect(fr[0], text="dog"), device, iters)
    out = {"model": "Grounding DINO base (Swin-B, text prompt)", "unit": "detections (frame x ref)", "per_s": 1 / s,
           "batch": 1, "params_b": round(n_params(model), 2)}
    return out


def bench_ir101(device, dtype, iters, batch):
    import torch
    from s2vforge.backends.face import build_ir_backbone
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (batch, 112, 112, 3), dtype=np.uint8)
    if device.startswith("cuda"):
        model = build_ir_backbone().to(device=device, dtype=dtype).eval()
        x = torch.from_numpy(((crops.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)).to(device, dtype)

        def run():
            with torch.inference_mode():
                model(x)
        s = timed(run, device, iters)
        backend = "torch"
    else:                                   # the reference path on CPU is onnxruntime
        from s2vforge.backends.face import OnnxFaceEmbedder, export_module_onnx
        model = build_ir_backbone().eval()
        path = export_module_onnx(model, Path(tempfile.mkdtemp()) / "ir101.onnx")
        emb = OnnxFaceEmbedder.from_path(path)
        s = timed(lambda: emb.embed_crops(list(crops)), device, iters)
        backend = "onnxruntime"
    out = {"model": f"IR-101 CurricularFace ({backend}, FaceSim)", "unit": "faces", "per_s": batch / s, "batch": batch,
           "params_b": round(n_params(model), 3)}
    return out


def bench_qalign_proxy(device, dtype, iters, batch):
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaModel
    lm = build(LlamaModel, LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                       num_attention_heads=32, num_key_value_heads=32, vocab_size=32000), device, dtype)
    vit = build(CLIPVisionModel, CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                                  num_attention_heads=16, image_size=448, patch_size=14), device, dtype)
    ids = torch.randint(0, 32000, (batch, 225), device=device)
    px = torch.randn(batch * 3, 3, 448, 448, device=device, dtype=dtype)

    def run():
        with torch.inference_mode():
            vit(pixel_values=px)
            lm(input_ids=ids)
    s = timed(run, device, iters)
    from s2vforge.backends.qalign import owl2_pixels
    fr = frames(8)
    pre = timed(lambda: owl2_pixels(fr), "cpu", 1) / len(fr)
    out = {"model": "Q-Align proxy (LLaMA-2-7B + ViT-L/14@448 x3)", "unit": "frames (3-frame windows)",
           "per_s": 1 / (s / batch + pre), "model_only_per_s": batch / s, "preprocess_s_per_frame": pre,
           "batch": batch, "params_b": round(n_params(lm) + n_params(vit), 2)}
    return out


BENCHES = {
    "clip_l": (bench_clip_l, 32),
    "gme2b": (lambda d, t, i, b: bench_gme("2b", d, t, i, b), 32),
    "gme7b": (lambda d, t, i, b: bench_gme("7b", d, t, i, b), 32),
    "owlv2": (bench_owlv2, 1),
    "gdino": (bench_gdino, 1),
    "ir101": (bench_ir101, 32),
    "qalign_proxy": (bench_qalign_proxy, 32),
}


def project_open_domain(res: dict, frames_per_video: int = 81, boxes_per_detection: float = 1.0,
                        fast: bool = False) -> dict:
    """Seconds per metric for the Open domain (180 videos) from measured rates (unmeasured: left out).

    fast=False: reference preprocessing (PIL processors on the CPU) and Nexus as the original loops
    (one detector call per frame x reference). fast=True: torchvision processors on the GPU and
    Nexus through detect_frames (each frame and reference embedded once, frames batched)."""
    f = OPEN["frames"]
    tag = "_fast" if fast else ""

    def rate(k, key="per_s"):
        r = res.get(k)
        if not r or "error" in r:
            return None
        return r.get(key + tag) or r.get(key)
    gme = "gme7b" if rate("gme7b") else "gme2b"
    out = {}
    if rate("clip_l"):
        out["aesthetic"] = OPEN["videos"] * f / rate("clip_l")
    if rate(gme):
        out["gme"] = OPEN["videos"] * (f / rate(gme) + res[gme]["prompt_s"])
    if rate("ir101"):
        out["facesim (embedding only)"] = OPEN["facesim_videos"] * (f + 1) / rate("ir101")
    if rate(gme, "crops_per_s"):
        crops = OPEN["nexus_pairs"] * f * boxes_per_detection / rate(gme, "crops_per_s")
        if fast and rate("owlv2", "video_1ref_s"):
            det = OPEN["nexus_videos"] * rate("owlv2", "video_1ref_s") + \
                (OPEN["nexus_pairs"] - OPEN["nexus_videos"]) * rate("owlv2", "video_extra_ref_s")
            out["nexus (owlv2 batched + gme crops)"] = det + crops
        elif rate("owlv2"):
            out["nexus (owlv2 per call + gme crops)"] = OPEN["nexus_pairs"] * f / rate("owlv2") + crops
    if rate("qalign_proxy"):
        out["smoothness (q-align proxy)"] = OPEN["videos"] * frames_per_video / rate("qalign_proxy")
    out["total"] = sum(out.values())
    out["assumptions"] = {"frames_per_video_for_smoothness": frames_per_video, "boxes_per_detection": boxes_per_detection,
                          "gme_size": gme, "preprocessing": "torchvision on device" if fast else "reference (PIL, CPU)"}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--models", default=",".join(BENCHES))
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None, help="override the per-model batch")
    ap.add_argument("--out", default=None)
    ap.add_argument("--smoke", action="store_true", help="one layer per stack: check the script quickly")
    args = ap.parse_args()
    global SMOKE
    SMOKE = args.smoke
    import torch
    import transformers
    dtype = getattr(torch, args.dtype)
    env = {"torch": torch.__version__, "transformers": transformers.__version__, "device": args.device,
           "dtype": args.dtype, "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
           "cpu_threads": torch.get_num_threads()}
    print(json.dumps(env), flush=True)
    res: dict = {}
    for name in [m for m in args.models.split(",") if m]:
        fn, batch = BENCHES[name]
        t0 = time.perf_counter()
        try:
            res[name] = fn(args.device, dtype, args.iters, args.batch or batch)
        except Exception as e:  # noqa: BLE001 - one failing model must not lose the others' numbers
            res[name] = {"error": f"{type(e).__name__}: {e}"}
        res[name]["wall_s"] = round(time.perf_counter() - t0, 1)
        if args.device.startswith("cuda"):
            res[name]["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
            torch.cuda.reset_peak_memory_stats()
        gc.collect()
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        print(name, json.dumps(res[name]), flush=True)
        if args.out:                        # keep partial results if the run is cut short
            Path(args.out).write_text(json.dumps({"env": env, "results": res}, indent=2))
    proj = {"reference": project_open_domain(res), "fast": project_open_domain(res, fast=True)}
    if args.out:
        Path(args.out).write_text(json.dumps({"env": env, "results": res, "open_domain_projection_s": proj}, indent=2))
    print(f"\n{'model':48s} {'rate':>14s}  unit")
    for name, r in res.items():
        if "error" in r:
            print(f"{name:48s} ERROR {r['error'][:80]}")
            continue
        extra = "".join(f"  {k}={r[k]:.3g}" for k in r if k not in ("model", "unit", "per_s", "batch", "params_b")
                        and isinstance(r[k], float))
        print(f"{r['model']:48s} {r['per_s']:10.2f}/s  {r['unit']}{extra}")
    for k, p in proj.items():
        print(f"\nOpen domain projection, {k} (s):", json.dumps({m: (round(v, 1) if isinstance(v, float) else v)
                                                                for m, v in p.items()}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
