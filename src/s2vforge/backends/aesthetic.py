"""Aesthetic score, reference backend: LAION improved-aesthetic predictor on CLIP ViT-L/14.

This is the model OpenS2V-Nexus (curation) and OpenS2V-Eval (the aesthetic metric) use: the
"sac+logos+ava1-l14-linearMSE" MLP of christophschuhmann/improved-aesthetic-predictor, fed
the L2-normalised CLIP ViT-L/14 image embedding (the projected 768-d `image_embeds`).
Scores are on the AVA-like 1..10 scale (most photos land in 4..7).

Weights are only read from disk (nothing is downloaded):
- CLIP: `openai/clip-vit-large-patch14` (transformers format) from an explicit dir,
  $S2VFORGE_MODELS/clip-vit-large-patch14, ~/.cache/s2vforge/models/clip-vit-large-patch14
  or the Hugging Face cache. Only the vision tower and its projection are loaded.
- MLP: `sac+logos+ava1-l14-linearMSE.safetensors` (preferred) or the original `.pth` (read
  with torch.load(weights_only=True), never unpickling code) from an explicit file or dir,
  $S2VFORGE_MODELS/laion-aesthetic or ~/.cache/s2vforge/models/laion-aesthetic.

torch and transformers are imported only when a predictor is built.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import BackendUnavailable, ModelNotFound
from .hf import import_first, quiet_transformers, resolve_torch_dtype
from .paths import find_model_dir, model_search_dirs

CLIP_HF_REPO = "openai/clip-vit-large-patch14"
CLIP_LOCAL_NAME = "clip-vit-large-patch14"
CLIP_LABEL = f"CLIP ViT-L/14 ({CLIP_HF_REPO})"
MLP_LOCAL_NAME = "laion-aesthetic"
MLP_STEM = "sac+logos+ava1-l14-linearMSE"
MLP_FILES = (f"{MLP_STEM}.safetensors", f"{MLP_STEM}.pth")
MLP_LABEL = f"LAION improved-aesthetic MLP ({MLP_STEM})"
MLP_SOURCE = "https://github.com/christophschuhmann/improved-aesthetic-predictor"


def build_aesthetic_mlp(input_size: int = 768):
    """The predictor's MLP with the original module layout, so state-dict keys match
    (`layers.0.weight` ... `layers.7.bias`). Dropouts are inactive in eval mode."""
    from torch import nn

    class AestheticMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input_size = input_size
            self.layers = nn.Sequential(
                nn.Linear(input_size, 1024), nn.Dropout(0.2),
                nn.Linear(1024, 128), nn.Dropout(0.2),
                nn.Linear(128, 64), nn.Dropout(0.1),
                nn.Linear(64, 16),
                nn.Linear(16, 1),
            )

        def forward(self, x):
            return self.layers(x)

    return AestheticMLP()


def find_clip_dir(clip_dir: str | os.PathLike | None = None) -> Path:
    return find_model_dir(CLIP_LOCAL_NAME, CLIP_HF_REPO, explicit=clip_dir, model_label=CLIP_LABEL)


def find_mlp_file(mlp_path: str | os.PathLike | None = None) -> Path:
    """The MLP weights file: an explicit file, or the first known file name in the search dirs."""
    dirs: list[Path] = []
    if mlp_path:
        p = Path(mlp_path)
        if p.is_file():
            return p
        dirs.append(p)
    dirs.extend(model_search_dirs(MLP_LOCAL_NAME))
    tried: list[str] = []
    for d in dirs:
        for name in MLP_FILES:
            if (d / name).is_file():
                return d / name
        tried.append(str(d))
    raise ModelNotFound(
        MLP_LABEL, tried,
        f"Put {MLP_FILES[0]} (or the original {MLP_FILES[1]} from {MLP_SOURCE}) in one of these "
        "directories, or pass the file explicitly.")


def load_mlp_state(path: str | os.PathLike) -> dict:
    """State dict of the MLP from .safetensors, or from the original .pth without unpickling code."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    import torch
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _clip_image_processor(clip_dir: Path):
    """CLIP preprocessing (shortest side 224 bicubic, centre crop, OpenAI mean/std) with the
    PIL backend, as the original predictor used; defaults if the dir has no processor config."""
    processor_cls = import_first("CLIP image processor (PIL)", "transformers:CLIPImageProcessorPil",
                                 "transformers:CLIPImageProcessor")        # 5.x name, then 4.x
    if (clip_dir / "preprocessor_config.json").is_file():
        return processor_cls.from_pretrained(str(clip_dir))
    return processor_cls()


class AestheticPredictor:
    """predict(list of HxWx3 uint8 RGB frames) -> aesthetic score per frame (float32)."""

    def __init__(self, vision_model, processor, mlp, device: str = "cpu", dtype=None) -> None:
        self.vision_model = vision_model.eval()
        self.processor = processor
        self.mlp = mlp.eval()
        self.device = device
        self.dtype = dtype

    @classmethod
    def from_dirs(cls, clip_dir: str | os.PathLike | None = None, mlp_path: str | os.PathLike | None = None,
                  device: str = "cpu", dtype=None) -> "AestheticPredictor":
        """Find both weights (ModelNotFound names the model and every dir tried), then load."""
        clip_root = find_clip_dir(clip_dir)
        mlp_file = find_mlp_file(mlp_path)
        try:
            import torch
            from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
        except ImportError as exc:
            raise BackendUnavailable.missing_extra(
                "reference", "aesthetic reference backend (torch + transformers)", exc) from None

        dtype = resolve_torch_dtype(dtype, device, cuda_default="float16")
        config = json.loads((clip_root / "config.json").read_text())
        if config.get("model_type") == "clip":  # full CLIPModel checkpoint, as openai/clip-vit-large-patch14
            vision_config = CLIPVisionConfig(**{**config.get("vision_config", {}),
                                                "projection_dim": config.get("projection_dim", 768)})
        else:
            vision_config = CLIPVisionConfig.from_pretrained(str(clip_root))
        with quiet_transformers():
            vision = CLIPVisionModelWithProjection.from_pretrained(str(clip_root), config=vision_config)
        vision = vision.to(device=device, dtype=dtype).eval()

        state = load_mlp_state(mlp_file)
        input_size = int(state["layers.0.weight"].shape[1])
        if input_size != vision_config.projection_dim:
            raise ValueError(f"{mlp_file} expects {input_size}-d embeddings but {clip_root} projects to "
                             f"{vision_config.projection_dim}-d; the LAION MLP needs CLIP ViT-L/14 (768-d).")
        mlp = build_aesthetic_mlp(input_size)
        mlp.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        mlp = mlp.to(device=device, dtype=torch.float32).eval()
        return cls(vision, _clip_image_processor(clip_root), mlp, device=device, dtype=dtype)

    def embed(self, images: list[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """L2-normalised CLIP image embeddings, (N, 768) float32."""
        import torch
        from PIL import Image

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = [Image.fromarray(np.ascontiguousarray(im, dtype=np.uint8))
                         for im in images[start:start + batch_size]]
                pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
                emb = self.vision_model(pixel_values=pixels.to(self.device, self.dtype)).image_embeds.float()
                out.append(torch.nn.functional.normalize(emb, dim=-1).cpu().numpy())
        dim = self.vision_model.config.projection_dim
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)

    def predict(self, images: list[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """Aesthetic score of each image, (N,) float32 (LAION scale, ~1..10)."""
        import torch

        emb = self.embed(images, batch_size)
        if len(emb) == 0:
            return np.zeros(0, np.float32)
        with torch.inference_mode():
            scores = self.mlp(torch.from_numpy(emb).to(self.device)).squeeze(-1)
        return scores.float().cpu().numpy().astype(np.float32)
