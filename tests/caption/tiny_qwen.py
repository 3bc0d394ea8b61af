"""Tiny randomly initialised Qwen2-VL / Qwen2.5-VL checkpoints, saved like the real ones.

`save_tiny_qwen_vl(dir, "qwen2_5_vl")` writes what a real `Qwen/Qwen2.5-VL-7B-Instruct` folder holds
and what `ReferenceCaptioner` reads: config.json (+ safetensors), tokenizer.json /
tokenizer_config.json with a Qwen-style chat template, preprocessor_config.json. The tokenizer is a
small byte-level BPE trained in memory with Qwen's special tokens; nothing is downloaded.
"""
from __future__ import annotations

import json
from pathlib import Path

QWEN_VL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]

# A Qwen2-VL-style chat template (system turn by default; image / video placeholders in user turns).
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "A woman in a red coat walks her brown dog along a quiet street in the morning.",
    "The camera pans left as a man rides a bicycle past a row of green trees.",
    "A child holds a yellow cup and smiles at the camera; the background is a kitchen.",
    "Describe the video. Summary: short caption. Long caption. Structured caption: appearance, motion, environment.",
    "static shot, zoom in, tracking shot, handheld shot, the person turns the head and speaks.",
]


def qwen_vl_tokenizer(vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=QWEN_VL_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=QWEN_VL_SPECIALS[1:])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _mrope_section(head_dim: int) -> list[int]:
    """Three M-RoPE sections summing to head_dim / 2 (the 7B: [16, 24, 24] for head_dim 128)."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def tiny_config(model_type: str, tokenizer, *, hidden: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                inter: int = 64, vis_dim: int = 32, vis_depth: int = 2, vis_heads: int = 2):
    ids = tokenizer.convert_tokens_to_ids
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=4096,
                rope_scaling={"type": "mrope", "mrope_section": _mrope_section(hidden // heads)},
                bos_token_id=None, eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
                initializer_range=0.5)          # large weights: well separated logits, stable greedy argmax
    special = dict(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                   vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    if model_type == "qwen2_vl":
        from transformers import Qwen2VLConfig
        vision = dict(depth=vis_depth, embed_dim=vis_dim, hidden_size=hidden, num_heads=vis_heads, mlp_ratio=2,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
        return Qwen2VLConfig(text_config=text, vision_config=vision, **special)
    if model_type == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig
        # window 56 px = 2x2 merged tokens; full attention in the last block (the 7B: [7, 15, 23, 31] of 32)
        vision = dict(depth=vis_depth, hidden_size=vis_dim, out_hidden_size=hidden, intermediate_size=2 * vis_dim,
                      num_heads=vis_heads, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                      window_size=56, fullatt_block_indexes=[vis_depth - 1], tokens_per_second=2)
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **special)
    raise ValueError(model_type)


def save_tiny_qwen_vl(out_dir: Path, model_type: str = "qwen2_5_vl", seed: int = 0) -> Path:
    """Write a tiny random checkpoint of `model_type` (qwen2_vl | qwen2_5_vl) to `out_dir`."""
    import torch
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = qwen_vl_tokenizer()
    cfg = tiny_config(model_type, tok)
    if model_type == "qwen2_vl":
        from transformers import Qwen2VLForConditionalGeneration as cls
    else:
        from transformers import Qwen2_5_VLForConditionalGeneration as cls
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    # the real checkpoints' preprocessor_config.json values (CLIP mean/std, 14 px patches, 2x2 merge)
    (out_dir / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class":
        "Qwen2_5_VLProcessor" if model_type == "qwen2_5_vl" else "Qwen2VLProcessor",
        "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "do_resize": True, "resample": 3,
    }, indent=2))
    return out_dir
