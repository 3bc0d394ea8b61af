"""Tiny randomly initialised models of the real architectures, saved like the real checkpoints.

Tests (and benchmarks/bench_eval_gpu.py, for its tokenizers) build these in a tmp dir and load
them through the same public `from_dir` code paths the real weights use. Nothing is downloaded.
"""
from __future__ import annotations

import json
from pathlib import Path

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
_CORPUS = [
    "Find an image that matches the given text.", "You are a helpful assistant.",
    "USER: How would you rate the quality of this video? ASSISTANT: The quality of the video is",
    "excellent good fair poor bad", "a man playing with his dog in front of the house",
    "human dog school bird park monitor woman man face object",
]


def qwen_like_tokenizer(vocab_size: int = 400):
    """A small byte-level BPE tokenizer with Qwen2-VL's special tokens (fast, in memory)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=QWEN_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def qwen2vl_config(tokenizer, *, hidden=32, layers=2, heads=4, kv_heads=2, inter=64, vis_dim=32, vis_depth=2,
                   vis_heads=2, vocab_size=None, out_hidden=None):
    from transformers import Qwen2VLConfig
    ids = tokenizer.convert_tokens_to_ids
    head_dim = hidden // heads
    # mrope_section sums to head_dim/2 (real 7B/2B: [16, 24, 24] for head_dim 128)
    half = head_dim // 2
    sec = [half // 4, (half - half // 4) // 2]
    sec.append(half - sum(sec))
    return Qwen2VLConfig(
        text_config=dict(vocab_size=vocab_size or len(tokenizer), hidden_size=hidden, intermediate_size=inter,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         rope_scaling={"type": "mrope", "mrope_section": sec}, max_position_embeddings=32768,
                         bos_token_id=None, eos_token_id=ids("<|endoftext|>"), pad_token_id=None),
        vision_config=dict(depth=vis_depth, embed_dim=vis_dim, hidden_size=out_hidden or hidden, num_heads=vis_heads,
                           mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )


def save_tiny_qwen2vl(out_dir: Path, seed: int = 0) -> Path:
    """A GME-layout dir: Qwen2VLForConditionalGeneration safetensors + tokenizer + preprocessor."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    out_dir = Path(out_dir)
    tok = qwen_like_tokenizer()
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(qwen2vl_config(tok)).eval()
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    # real GME checkpoints ship min/max pixels in the processor config; the loader overrides them
    Qwen2VLImageProcessorPil().save_pretrained(str(out_dir))
    return out_dir


def clip_like_tokenizer(out_dir: Path):
    """A character-level CLIP BPE tokenizer (vocab.json + merges.txt)."""
    from transformers import CLIPTokenizer
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, ".": 3}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab))
    (out_dir / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(out_dir / "vocab.json"), str(out_dir / "merges.txt"))


def save_tiny_clip(out_dir: Path, seed: int = 0, image_size: int = 32) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel
    try:
        from transformers import CLIPImageProcessorPil as ip_cls
    except ImportError:
        from transformers import CLIPImageProcessor as ip_cls
    out_dir = Path(out_dir)
    tok = clip_like_tokenizer(out_dir)
    cfg = CLIPConfig(text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, max_position_embeddings=77),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                        image_size=image_size, patch_size=8), projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(cfg).eval().save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    ip_cls(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}).save_pretrained(str(out_dir))
    return out_dir


def save_tiny_owlv2(out_dir: Path, seed: int = 0, image_size: int = 64) -> Path:
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil
    out_dir = Path(out_dir)
    tok = clip_like_tokenizer(out_dir)
    cfg = Owlv2Config(text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, max_position_embeddings=16),
                      vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                         image_size=image_size, patch_size=16), projection_dim=32)
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(cfg).eval()
    with torch.no_grad():   # random box heads saturate to degenerate boxes: start from the grid prior
        model.box_head.dense2.weight.zero_()
        model.box_head.dense2.bias.zero_()
    model.save_pretrained(str(out_dir))
    Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": image_size, "width": image_size}),
                   tokenizer=tok).save_pretrained(str(out_dir))
    return out_dir


def bert_like_tokenizer(out_dir: Path):
    from transformers import BertTokenizer
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "a", "dog", "human", "man", "woman", "bird",
             "park", "monitor", "school", "object", "face"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.txt").write_text("\n".join(words) + "\n")
    return BertTokenizer(str(out_dir / "vocab.txt"))


def save_tiny_grounding_dino(out_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil
    out_dir = Path(out_dir)
    tok = bert_like_tokenizer(out_dir)
    cfg = GroundingDinoConfig(
        backbone_config=dict(model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                             image_size=64, out_features=["stage2", "stage3", "stage4"], out_indices=[2, 3, 4]),
        text_config=dict(model_type="bert", vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20, max_text_len=32,
        num_feature_levels=4, encoder_n_points=2, decoder_n_points=2)
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(cfg).eval().save_pretrained(str(out_dir))
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}),
                           tokenizer=tok).save_pretrained(str(out_dir))
    return out_dir


# ---------------------------------------------------------------- ONNX face models

SCRFD_STRIDES = (8, 16, 32)


def scrfd_outputs_with_one_face(det_size: int, stride: int, gy: int, gx: int, anchor: int, dist: tuple,
                                kps_dist, score: float = 0.9):
    """The 9 SCRFD head tensors (scores, box distances, keypoint distances per stride; 2 anchors)
    with a single confident anchor; distances are in stride units, as the network predicts them."""
    import numpy as np
    outs_s, outs_b, outs_k = [], [], []
    for s in SCRFD_STRIDES:
        n = (det_size // s) ** 2 * 2
        sc = np.full((n, 1), 0.01, np.float32)
        bb = np.ones((n, 4), np.float32)
        kp = np.zeros((n, 10), np.float32)
        if s == stride:
            k = (gy * (det_size // s) + gx) * 2 + anchor
            sc[k, 0] = score
            bb[k] = np.asarray(dist, np.float32)
            kp[k] = np.asarray(kps_dist, np.float32).reshape(10)
        outs_s.append(sc)
        outs_b.append(bb)
        outs_k.append(kp)
    return outs_s + outs_b + outs_k


def export_constant_scrfd(path: Path, outputs, det_size: int = 320) -> Path:
    """An ONNX 'detector' with SCRFD's input/output layout whose heads are the given constants."""
    import torch

    class ConstantHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for i, o in enumerate(outputs):
                self.register_buffer(f"o{i}", torch.from_numpy(o))

        def forward(self, x):
            z = x.mean() * 0.0            # keep the input in the graph
            return tuple(getattr(self, f"o{i}") + z for i in range(len(outputs)))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(ConstantHeads().eval(), (torch.zeros(1, 3, det_size, det_size),), str(path),
                      input_names=["input.1"], output_names=[f"out{i}" for i in range(len(outputs))],
                      dynamo=False, opset_version=17)
    return path


def export_tiny_ir(path: Path, seed: int = 0, layout: str = "evolve") -> Path:
    """A tiny randomly initialised IR-ResNet (CurricularFace's architecture, narrow) as ONNX."""
    import torch
    from s2vforge.backends.face import build_ir_backbone, export_module_onnx
    torch.manual_seed(seed)
    m = build_ir_backbone(units=(1, 1, 1, 1), widths=(8, 16, 24, 32), stem=8, embedding=32, layout=layout).eval()
    return export_module_onnx(m, path)


def export_tiny_qalign(path: Path, seed: int = 0, size: int = 448) -> Path:
    """An ONNX with one-align's scoring interface: (B, 3 frames, 3, 448, 448) -> (B, 5) level logits."""
    import torch

    class TinyLevels(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(seed)
            self.head = torch.nn.Linear(9, 5)

        def forward(self, pixel_values):
            return self.head(pixel_values.mean(dim=(3, 4)).flatten(1) * 4.0)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(TinyLevels().eval(), (torch.zeros(2, 3, 3, size, size),), str(path),
                      input_names=["pixel_values"], output_names=["level_logits"],
                      dynamic_axes={"pixel_values": {0: "batch"}, "level_logits": {0: "batch"}},
                      dynamo=False, opset_version=17)
    return path
