"""Text/image embeddings for GmeScore and NexusScore: GME (reference) and a CLIP stand-in.

Reference backend: GME (`Alibaba-NLP/gme-Qwen2-VL-7B-Instruct`, or the 2B) is a Qwen2-VL
checkpoint used as an embedder. We load it with transformers' `Qwen2VLForConditionalGeneration`
and reproduce the embedding recipe of the model card's `gme_inference.py`, which OpenS2V-Eval
calls through `GmeQwen2VL`:

- every input becomes one chat message
  `<|im_start|>system\\n{instruction}<|im_end|>\\n<|im_start|>user\\n{<image>}{text}<|im_end|>\\n<|im_start|>assistant\\n<|endoftext|>`;
  text queries use the caller's instruction (OpenS2V-Eval: "Find an image that matches the
  given text."), images ("corpus" side, `is_query=False`) use "You are a helpful assistant.";
- images are first snapped to multiples of 28 px (`fetch_image`), then the Qwen2-VL image
  processor resizes them to 256..1280 visual tokens (min/max_pixels = tokens x 28 x 28);
- the image features replace the `<|image_pad|>` embeddings and the *text decoder* runs on
  `inputs_embeds` with plain 1-D positions (gme_inference.py passes `position_ids=None` to the
  decoder, which then uses arange(L) for all three M-RoPE sections; we pass exactly that, not
  Qwen2-VL's 3-D multimodal rope index);
- right padding, the embedding is the last hidden state at the last non-pad token (the
  appended `<|endoftext|>`), then L2-normalised. Similarity = dot product = cosine.

The official scripts run the model in float16; pass dtype="float16" on GPU to match.

Stand-in backend `clip`: any transformers CLIPModel directory (e.g. openai/clip-vit-large-patch14).
CLIP cosines live on a different scale (~0.2-0.35 for matching pairs) and truncate prompts to
77 tokens: its numbers are NOT comparable to GmeScore and are reported under other names.

torch/transformers are imported only when a backend is built.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .hf import import_first, quiet_transformers, require_torch_transformers, resolve_torch_dtype  # noqa: F401 (re-exported)
from .paths import find_model_dir

# OpenS2V-Eval get_gmescore.py / get_nexusscore.py: the query instruction for text.
GME_QUERY_INSTRUCTION = "Find an image that matches the given text."
# gme_inference.py: instruction for corpus items (images) and for queries without one.
GME_DEFAULT_INSTRUCTION = "You are a helpful assistant."
# gme_inference.py GmeQwen2VL defaults (min_image_tokens=256, max_image_tokens=1280, max_length=1800).
GME_MIN_IMAGE_TOKENS = 256
GME_MAX_IMAGE_TOKENS = 1280
GME_MAX_LENGTH = 1800
# qwen_vl_utils constants used by gme_inference.fetch_image.
_FACTOR = 28
_FETCH_MIN_PIXELS = 4 * 28 * 28
_FETCH_MAX_PIXELS = 16384 * 28 * 28
_MAX_RATIO = 200

GME_MODELS = {
    "7b": ("gme-Qwen2-VL-7B-Instruct", "Alibaba-NLP/gme-Qwen2-VL-7B-Instruct"),  # OpenS2V-Eval default
    "2b": ("gme-Qwen2-VL-2B-Instruct", "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct"),
}
CLIP_DEFAULT = ("clip-vit-large-patch14", "openai/clip-vit-large-patch14")


class ImageTextEmbedder(Protocol):
    backend: str            # "gme" | "clip"
    comparable: bool        # True only when numbers match the official GmeScore/NexusScore scale

    def embed_texts(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray: ...

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


def gme_smart_resize(height: int, width: int, factor: int = _FACTOR,
                     min_pixels: int = _FETCH_MIN_PIXELS, max_pixels: int = _FETCH_MAX_PIXELS) -> tuple[int, int]:
    """qwen_vl_utils.smart_resize: sides multiple of `factor`, area within [min, max] pixels."""
    if max(height, width) / max(1, min(height, width)) > _MAX_RATIO:
        raise ValueError(f"aspect ratio of {width}x{height} exceeds {_MAX_RATIO}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def gme_fetch_image(image):
    """gme_inference.fetch_image: RGB PIL image snapped to multiples of 28 px (bicubic)."""
    from PIL import Image
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    img = img.convert("RGB")
    h, w = gme_smart_resize(img.height, img.width)
    return img.resize((w, h), resample=Image.BICUBIC)


def gme_message(text: str | None, with_image: bool, instruction: str) -> str:
    body = ("<|vision_start|><|image_pad|><|vision_end|>" if with_image else "") + (text or "")
    return (f"<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{body}<|im_end|>\n"
            f"<|im_start|>assistant\n<|endoftext|>")


def _qwen2vl_image_processor(model_dir: Path, min_pixels: int, max_pixels: int, fast: bool = False):
    """The PIL ("slow") Qwen2-VL image processor by default, as the 2024 GME release used (it also
    works without torchvision). `fast=True` takes the torchvision one, which can run on the GPU
    (bicubic resize in torch: embeddings differ slightly from the PIL path)."""
    if fast:    # transformers 4.x name, then 5.x (where the default class is the torchvision one)
        cls = import_first("Qwen2-VL image processor (torchvision)", "transformers:Qwen2VLImageProcessorFast",
                           "transformers:Qwen2VLImageProcessor")
    else:       # transformers 5.x name, then 4.x (where the default class is the PIL one)
        cls = import_first("Qwen2-VL image processor (PIL)",
                           "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl:Qwen2VLImageProcessorPil",
                           "transformers:Qwen2VLImageProcessor")
    if (model_dir / "preprocessor_config.json").is_file():
        return cls.from_pretrained(str(model_dir), min_pixels=min_pixels, max_pixels=max_pixels)
    return cls(min_pixels=min_pixels, max_pixels=max_pixels)


class Qwen2VLInputs:
    """Tokenizer + image processor for Qwen2-VL prompts, expanding `<|image_pad|>` to the number
    of merged visual tokens ourselves (what Qwen2VLProcessor does, minus its video processor,
    which needs torchvision)."""

    def __init__(self, tokenizer, image_processor, max_length: int = GME_MAX_LENGTH, device: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"      # gme_inference.py
        self.image_processor = image_processor
        self.max_length = max_length
        self.merge = int(getattr(image_processor, "merge_size", 2))
        # torchvision-backed processors can preprocess on the GPU (others ignore or refuse `device`)
        on_gpu = device is not None and str(device) != "cpu" and not type(image_processor).__name__.endswith("Pil")
        self.ip_kwargs = {"device": device} if on_gpu else {}

    @classmethod
    def from_dir(cls, model_dir: Path, min_image_tokens: int = GME_MIN_IMAGE_TOKENS,
                 max_image_tokens: int = GME_MAX_IMAGE_TOKENS, max_length: int = GME_MAX_LENGTH,
                 fast_preprocess: bool = False, device: str | None = None):
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(str(model_dir))
        ip = _qwen2vl_image_processor(model_dir, min_image_tokens * 28 * 28, max_image_tokens * 28 * 28, fast_preprocess)
        return cls(tok, ip, max_length, device)

    def __call__(self, messages: list[str], images: list | None):
        """Batch tensors: input_ids, attention_mask and, with images, pixel_values + image_grid_thw."""
        out: dict = {}
        if images:
            try:
                px = self.image_processor(images=images, return_tensors="pt", **self.ip_kwargs)
            except (TypeError, ValueError):
                if not self.ip_kwargs:
                    raise
                self.ip_kwargs = {}
                px = self.image_processor(images=images, return_tensors="pt")
            out["pixel_values"], out["image_grid_thw"] = px["pixel_values"], px["image_grid_thw"]
            counts = iter(int(g.prod()) // (self.merge ** 2) for g in px["image_grid_thw"])
            # images are consumed in order, one per placeholder, across all messages
            messages = ["".join(part + ("<|image_pad|>" * next(counts) if i < m.count("<|image_pad|>") else "")
                                for i, part in enumerate(m.split("<|image_pad|>"))) for m in messages]
        enc = self.tokenizer(messages, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        out["input_ids"], out["attention_mask"] = enc["input_ids"], enc["attention_mask"]
        # transformers >= 5.2x computes M-RoPE from per-token modality ids (1 = image token)
        image_id = self.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        out["mm_token_type_ids"] = (enc["input_ids"] == image_id).int()
        return out


def model_kwargs(model, batch: dict, device, dtype) -> dict:
    """The batch entries `model.forward` accepts (older transformers have no mm_token_type_ids), on device."""
    import inspect
    accepted = set(inspect.signature(model.forward).parameters)
    out = {}
    for k, v in batch.items():
        if k == "mm_token_type_ids" and k not in accepted:
            continue
        out[k] = v.to(device, dtype) if v.is_floating_point() else v.to(device)
    return out


def qwen2vl_parts(model):
    """(text decoder, vision tower, image token id) across transformers 4.x/5.x layouts."""
    inner = getattr(model, "model", model)
    lm = getattr(inner, "language_model", inner)
    visual = getattr(inner, "visual", None)
    if visual is None:
        visual = model.visual
    return lm, visual, model.config.image_token_id


def qwen2vl_inputs_embeds(model, batch: dict, device, dtype):
    """Token embeddings with the visual features written over the `<|image_pad|>` positions."""
    lm, visual, image_token_id = qwen2vl_parts(model)
    input_ids = batch["input_ids"].to(device)
    embeds = lm.embed_tokens(input_ids)
    if "pixel_values" in batch:
        feats = visual(batch["pixel_values"].to(device, dtype), grid_thw=batch["image_grid_thw"].to(device))
        if not hasattr(feats, "shape"):          # transformers 5.x returns an output object
            feats = feats.pooler_output
        mask = input_ids == image_token_id
        if int(mask.sum()) != feats.shape[0]:
            raise ValueError(f"{int(mask.sum())} image tokens but {feats.shape[0]} visual features "
                             "(prompt truncated at max_length?)")
        embeds = embeds.masked_scatter(mask[..., None].expand_as(embeds), feats.to(embeds.dtype))
    return lm, input_ids, embeds


class GmeEmbedder:
    """GME (Qwen2-VL) embeddings with the gme_inference.py recipe; rows are L2-normalised float32."""
    backend = "gme"
    comparable = True

    def __init__(self, model, inputs: Qwen2VLInputs, device: str = "cpu", dtype=None, batch_size: int = 8,
                 label: str = "gme") -> None:
        self.model = model.eval()
        self.inputs = inputs
        self.device = device
        self.dtype = dtype if dtype is not None else next(model.parameters()).dtype
        self.batch_size = batch_size
        self.label = label

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike | None = None, variant: str = "7b", device: str = "cpu",
                 dtype=None, batch_size: int = 8, min_image_tokens: int = GME_MIN_IMAGE_TOKENS,
                 max_image_tokens: int = GME_MAX_IMAGE_TOKENS, attn_implementation: str | None = "sdpa",
                 fast_preprocess: bool = False) -> "GmeEmbedder":
        local, repo = GME_MODELS[variant.lower()]
        root = find_model_dir(local, repo, explicit=model_dir, model_label=f"GME {repo}")
        require_torch_transformers(f"GME {repo} (torch + transformers)")
        from transformers import Qwen2VLForConditionalGeneration
        torch_dtype = resolve_torch_dtype(dtype, device)
        kwargs = {"dtype": torch_dtype}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        with quiet_transformers():
            model = Qwen2VLForConditionalGeneration.from_pretrained(str(root), **kwargs)
        model = model.to(device).eval()
        inputs = Qwen2VLInputs.from_dir(root, min_image_tokens, max_image_tokens, fast_preprocess=fast_preprocess,
                                        device=device)
        return cls(model, inputs, device, torch_dtype, batch_size, label=repo)

    def _forward(self, messages: list[str], images: list | None) -> np.ndarray:
        import torch
        batch = self.inputs(messages, images)
        with torch.inference_mode():
            lm, input_ids, embeds = qwen2vl_inputs_embeds(self.model, batch, self.device, self.dtype)
            mask = batch["attention_mask"].to(self.device)
            b, n = input_ids.shape
            # gme_inference.py: decoder called with position_ids=None -> arange(L) on all 3 rope sections.
            pos = torch.arange(n, device=self.device).view(1, 1, n).expand(3, b, n)
            hidden = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).last_hidden_state
            last = mask.sum(dim=1) - 1                       # right padding: last real token
            emb = hidden[torch.arange(b, device=self.device), last].float()
            emb = torch.nn.functional.normalize(emb, p=2, dim=-1)
        return emb.cpu().numpy().astype(np.float32)

    def embed_texts(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        inst = instruction or GME_DEFAULT_INSTRUCTION
        msgs = [gme_message(t, False, inst) for t in texts]
        return self._batched(msgs, None)

    def embed_images(self, images: Sequence) -> np.ndarray:
        """Images as HxWx3 uint8 RGB arrays or PIL images (corpus side: default instruction)."""
        pil = [gme_fetch_image(im) for im in images]
        msgs = [gme_message(None, True, GME_DEFAULT_INSTRUCTION) for _ in pil]
        return self._batched(msgs, pil)

    def _batched(self, msgs: list[str], images: list | None) -> np.ndarray:
        out = []
        for s in range(0, len(msgs), self.batch_size):
            out.append(self._forward(msgs[s:s + self.batch_size], images[s:s + self.batch_size] if images else None))
        if not out:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(out)


class ClipEmbedder:
    """CLIP stand-in for GME: cosine of L2-normalised CLIP text/image features.

    NOT comparable to GmeScore (different model and scale); metrics built on it carry other names.
    The instruction is ignored (CLIP has none); prompts are truncated to CLIP's 77 tokens."""
    backend = "clip"
    comparable = False

    def __init__(self, model, tokenizer, image_processor, device: str = "cpu", dtype=None, batch_size: int = 32,
                 label: str = "clip") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.device = device
        self.dtype = dtype if dtype is not None else next(model.parameters()).dtype
        self.batch_size = batch_size
        self.label = label

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike | None = None, device: str = "cpu", dtype=None,
                 batch_size: int = 32) -> "ClipEmbedder":
        local, repo = CLIP_DEFAULT
        root = find_model_dir(local, repo, explicit=model_dir, model_label=f"CLIP stand-in for GME ({repo} or any CLIPModel dir)")
        require_torch_transformers("CLIP stand-in (torch + transformers)")
        from transformers import CLIPModel

        from .hf import load_text_image_model
        ip_cls = import_first("CLIP image processor (PIL)", "transformers:CLIPImageProcessorPil",
                              "transformers:CLIPImageProcessor")            # 5.x name, then 4.x
        model, tok, ip, torch_dtype = load_text_image_model(root, CLIPModel, ip_cls, dtype, device)
        return cls(model, tok, ip, device, torch_dtype, batch_size, label=str(root))

    @staticmethod
    def _features(out):
        return out if hasattr(out, "shape") else out.pooler_output   # transformers 4.x tensor / 5.x output

    def embed_texts(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        import torch
        out = []
        max_len = int(getattr(self.model.config.text_config, "max_position_embeddings", 77))
        with torch.inference_mode():
            for s in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(list(texts[s:s + self.batch_size]), padding=True, truncation=True,
                                     max_length=max_len, return_tensors="pt").to(self.device)
                f = self._features(self.model.get_text_features(**enc)).float()
                out.append(torch.nn.functional.normalize(f, dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)

    def embed_images(self, images: Sequence) -> np.ndarray:
        import torch
        from PIL import Image
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                batch = [im if isinstance(im, Image.Image) else Image.fromarray(np.ascontiguousarray(im, dtype=np.uint8))
                         for im in images[s:s + self.batch_size]]
                px = self.image_processor(images=[b.convert("RGB") for b in batch], return_tensors="pt")["pixel_values"]
                f = self._features(self.model.get_image_features(pixel_values=px.to(self.device, self.dtype))).float()
                out.append(torch.nn.functional.normalize(f, dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def load_image_text_embedder(backend: str = "gme", model_dir: str | os.PathLike | None = None, variant: str = "7b",
                             device: str = "cpu", dtype=None, batch_size: int | None = None,
                             fast_preprocess: bool = False) -> ImageTextEmbedder:
    """`gme` (reference, GME-Qwen2-VL) or `clip` (stand-in, not comparable)."""
    if backend == "gme":
        return GmeEmbedder.from_dir(model_dir, variant=variant, device=device, dtype=dtype, batch_size=batch_size or 8,
                                    fast_preprocess=fast_preprocess)
    if backend == "clip":
        return ClipEmbedder.from_dir(model_dir, device=device, dtype=dtype, batch_size=batch_size or 32)
    raise ValueError(f"unknown image-text embedder backend {backend!r} (expected 'gme' or 'clip')")
