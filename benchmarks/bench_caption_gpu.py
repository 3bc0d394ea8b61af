"""Throughput of the reference captioner (stages/caption/reference.py) with the real Qwen2.5-VL-7B architecture.

The model is Qwen2_5_VLForConditionalGeneration built from Qwen/Qwen2.5-VL-7B-Instruct's published
config.json values (below), with random bf16 weights (nothing downloaded; speed does not depend on
the weight values). It runs through ReferenceCaptioner.from_model -> generate_raw: the same
preprocessing (uint8 frames to the GPU, bicubic resize to the paper's pixel budget, patching) and the
same left-padded greedy generate() the stage uses. The tokenizer is the tests' tiny byte-level BPE
with Qwen's special tokens (tests/caption/tiny_qwen.py): the special token ids are set to its ids, the
embedding keeps the real 152064 rows.

Each clip: `--frames` frames (default 8) of a `--src` frame (default 1280x720) resized with
OpenS2V-Nexus' video pixel budget (min 16*28*28, max 768*28*28 per frame -> 560x1008 for 720p =
720 merged tokens per 2 frames), one video input; the prompt is the packaged `opens2v` caption prompt
when stages/caption/prompts.py loads it. Generation is forced to exactly `--max-new-tokens` (512,
OpenS2V-Nexus step3-1's max_tokens) with min_new_tokens, so tokens/s is defined for random weights.
Per batch size: one full-length warm-up call, then the median of `--iters` timed calls (torch.cuda.synchronize around
each); prefill (vision tower + prompt) is timed the same way with max_new_tokens=1, decode = the rest.

    python benchmarks/bench_caption_gpu.py --json caption_gpu.json                  # H200: ~4 min
    python benchmarks/bench_caption_gpu.py --tiny --device cpu --iters 1 --max-new-tokens 8 --batch-sizes 1,2
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "caption"))

# Qwen/Qwen2.5-VL-7B-Instruct config.json (Hugging Face model card files), the values that shape compute.
QWEN25_VL_7B_TEXT = dict(
    vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
    num_key_value_heads=4, hidden_act="silu", max_position_embeddings=128000, rms_norm_eps=1e-6,
    rope_theta=1000000.0, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
    sliding_window=32768, max_window_layers=28, use_sliding_window=False, tie_word_embeddings=False,
)
QWEN25_VL_7B_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, hidden_act="silu", in_channels=3,
    out_hidden_size=3584, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2,
)


def build_model(tok, tiny: bool, device: str, dtype, attn: str):
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    ids = tok.convert_tokens_to_ids
    text, vision = dict(QWEN25_VL_7B_TEXT), dict(QWEN25_VL_7B_VISION)
    if tiny:
        text.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=1024,
                    rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
        vision.update(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                      fullatt_block_indexes=[1])
    text.update(bos_token_id=None, eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"))
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ids("<|image_pad|>"),
                           video_token_id=ids("<|video_pad|>"), vision_start_token_id=ids("<|vision_start|>"),
                           vision_end_token_id=ids("<|vision_end|>"))
    cfg._attn_implementation = attn
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):          # random init directly on the GPU
            model = Qwen2_5_VLForConditionalGeneration(cfg)
    finally:
        torch.set_default_dtype(prev)
    return model.to(device=device, dtype=dtype).eval()


def caption_prompt():
    try:
        from s2vforge.stages.caption.prompts import load_prompt
        return load_prompt("opens2v")
    except Exception as e:  # noqa: BLE001 - the module may be missing: a stand-in prompt of similar length
        print(f"(opens2v prompt not loaded: {type(e).__name__}: {e}; using a stand-in)", flush=True)
        return None


def make_clips(n_clips: int, n_frames: int, w: int, h: int, seed: int = 0):
    import numpy as np

    from s2vforge.stages.caption.base import ClipInput
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n_clips):
        frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n_frames)]
        clips.append(ClipInput(clip_id=f"c{i}", path=Path(f"c{i}.mp4"), frames=frames,
                               times=[j * 8.0 / n_frames for j in range(n_frames)], duration_s=8.0, fps=30.0,
                               size=(w, h)))
    return clips


def timed(fn, sync, iters: int) -> tuple[float, list[float], object]:
    out, ts = None, []
    for _ in range(iters):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--tiny", action="store_true", help="a tiny config of the same architecture (CPU smoke test)")
    ap.add_argument("--batch-sizes", default="1,4,8")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--src", default="1280x720", help="WxH of the decoded frames before the model's resize")
    ap.add_argument("--min-pixels", type=int, default=16 * 28 * 28)
    ap.add_argument("--max-pixels", type=int, default=768 * 28 * 28)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", choices=["full", "short"], default="full",
                    help="full = one untimed call of max_new_tokens first; short = 4 tokens")
    ap.add_argument("--no-prefill", action="store_true", help="skip the separate prefill timing")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import torch
    import transformers

    from s2vforge.stages.caption.reference import ReferenceCaptioner, smart_resize
    from tiny_qwen import qwen_vl_tokenizer

    dtype = getattr(torch, args.dtype)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    tok = qwen_vl_tokenizer()
    t0 = time.perf_counter()
    model = build_model(tok, args.tiny, args.device, dtype, args.attn)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    prompt = caption_prompt()
    ref = {"device": args.device, "min_pixels": args.min_pixels, "max_pixels": args.max_pixels,
           "max_new_tokens": args.max_new_tokens, "batch_size": 1024, "input": "video"}
    kw = {"prompt": prompt} if prompt is not None else {
        "prompt_text": " ".join(["Describe the main subject, its appearance, motion, the objects, the background "
                                 "and the camera motion of the video in chronological order."] * 8)}
    cap = ReferenceCaptioner.from_model(model, tok, {"reference": ref}, name="Qwen2.5-VL-7B (random weights)", **kw)
    w, h = (int(v) for v in args.src.lower().split("x"))
    rh, rw = smart_resize(h, w, 28, args.min_pixels, args.max_pixels)
    vis_tokens = ((args.frames + 1) // 2) * (rh // 28) * (rw // 28)
    prompt_tokens = len(tok(cap._render([{"type": "video"}, {"type": "text", "text": cap.prompt[0]}]),
                            add_special_tokens=False)["input_ids"]) - 1
    dev_name = torch.cuda.get_device_name(0) if cuda else "cpu"
    print(f"{dev_name} torch {torch.__version__} transformers {transformers.__version__} {args.dtype} attn={args.attn}")
    print(f"model: {n_params / 1e9:.2f} B params (built in {build_s:.1f} s); clip: {args.frames} frames {w}x{h} -> "
          f"{rw}x{rh}, {vis_tokens} visual tokens + {prompt_tokens} prompt tokens; {args.max_new_tokens} new tokens",
          flush=True)
    rows = []
    for bs in [int(b) for b in args.batch_sizes.split(",") if b.strip()]:
        clips = make_clips(bs, args.frames, w, h, seed=bs)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        gen = lambda clips=clips: cap.generate_raw(clips, max_new_tokens=args.max_new_tokens,  # noqa: E731
                                       min_new_tokens=args.max_new_tokens)
        # warm-up: a full-length call (the first call at a new batch shape is ~3x slower: the caching
        # allocator meets every KV-cache size once; measured on the H200, docs/gpu.md)
        first, _, _ = timed(gen if args.warmup == "full" else
                            (lambda clips=clips: cap.generate_raw(clips, max_new_tokens=4, min_new_tokens=4)), sync, 1)
        total, ts, out = timed(gen, sync, args.iters)
        assert all(n == args.max_new_tokens for _t, _f, n in out), [n for _t, _f, n in out]
        prefill = None
        if not args.no_prefill:
            prefill, _, _ = timed(lambda clips=clips: cap.generate_raw(clips, max_new_tokens=1, min_new_tokens=1),
                                  sync, args.iters)
        new = bs * args.max_new_tokens
        row = {"batch": bs, "frames": args.frames, "src": f"{w}x{h}", "resized": f"{rw}x{rh}",
               "visual_tokens": vis_tokens, "prompt_tokens": prompt_tokens, "new_tokens": args.max_new_tokens,
               "seconds_median": round(total, 3), "seconds_all": [round(t, 3) for t in ts],
               "warmup_s": round(first, 3), "warmup": args.warmup,
               "clips_per_s": round(bs / total, 4), "gen_tokens_per_s": round(new / total, 1),
               "prefill_s": None if prefill is None else round(prefill, 3),
               "decode_ms_per_step": None if prefill is None else
               round(1000 * (total - prefill) / max(1, args.max_new_tokens - 1), 2),
               "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"device": dev_name, "torch": torch.__version__, "transformers": transformers.__version__,
              "dtype": args.dtype, "attn": args.attn, "params_b": round(n_params / 1e9, 3), "tiny": args.tiny,
              "argv": sys.argv[1:], "rows": rows}
    print("\n| batch | s / call (median of %d) | clips/s | generated tokens/s | prefill s | decode ms/step | peak GiB |"
          % args.iters)
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['seconds_median']} | {r['clips_per_s']} | {r['gen_tokens_per_s']} | "
              f"{r['prefill_s']} | {r['decode_ms_per_step']} | {r['peak_mem_gib']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
