"""Per-frame quality for Motion Smoothness (OpenS2V-Eval v1.1): Q-Align style scorers.

The official script (get_motion_smoothness.py) scores every frame t with Q-Align
(`q-future/one-align`, mPLUG-Owl2 on LLaMA-2-7B) fed the 3-frame window around t as a tiny
"video": prompt "USER: How would you rate the quality of this video?\\n<|image|>\\nASSISTANT:
The quality of the video is", softmax over the next-token logits of
[excellent, good, fair, poor, bad], dot [1, 0.75, 0.5, 0.25, 0]. Frames are padded to a square
with the CLIP mean colour and resized to 448 (CLIP mean/std normalisation).

mPLUG-Owl2 is not in transformers and its remote code cannot be loaded with
trust_remote_code=False, so three backends are offered:

- `onnx` (reference): an ONNX export of one-align's scoring head: input `pixel_values`
  float32 (B, 3 frames, 3, 448, 448), output (B, 5) level logits in the order above. Export
  recipe in docs/benchmark-models.md. Metric name `motion_smoothness`.
- `vlm`: the same Q-Align recipe on any Qwen2-VL checkpoint loadable by transformers
  (`Qwen2VLForConditionalGeneration`, trust_remote_code=False), the 3 frames given as 3 images.
  A different model: metric name `smoothness_vlm`.
- `brisque` (embedded): BRISQUE (package `brisque`) per frame on the frame downscaled to a
  long side of 512, mapped to [0, 1] as 1 - score/100, averaged over the window. A classical
  proxy whose frame-to-frame jitter is not calibrated to the 0.025 artifact threshold:
  metric name `smoothness_brisque`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .errors import BackendUnavailable, ModelNotFound
from .paths import model_search_dirs

WINDOW = 3   # OpenS2V-Eval get_motion_smoothness.py --window_size default
QUALITY_LEVELS = ("excellent", "good", "fair", "poor", "bad")
LEVEL_WEIGHTS = np.array([1.0, 0.75, 0.5, 0.25, 0.0], np.float32)   # Q-Align / get_motion_smoothness.py
OWL2_SIZE = 448
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
QALIGN_LOCAL_NAME = "one-align-onnx"
QALIGN_ONNX = "one-align.onnx"
BRISQUE_LONG_SIDE = 512


class FrameQualityScorer(Protocol):
    backend: str
    metric_name: str

    def score_video(self, frames: np.ndarray, window: int = WINDOW) -> np.ndarray:
        """(T,) quality in [0, 1] of each frame, scored on its window."""


def window_indices(n_frames: int, window: int = WINDOW) -> list[list[int]]:
    """Frame indices of each frame's window, exactly as load_video_sliding_window builds them:
    clipped at the ends and padded by repeating the edge index (at the back while the window
    starts at frame 0, else at the front); frames before the left half-window get the
    window's first frame repeated."""
    left = (window - 1) // 2
    right = window - 1 - left
    groups = []
    for t in range(n_frames):
        start, end = max(0, t - left), min(n_frames, t + right + 1)
        idx = list(range(start, end))
        while len(idx) < window:
            if start == 0:
                idx.append(idx[-1])
            else:
                idx.insert(0, idx[0])
        groups.append([idx[0]] * window if t < left else idx)
    return groups


def expected_quality(level_logits: np.ndarray) -> np.ndarray:
    """softmax over the 5 level logits, dot LEVEL_WEIGHTS -> (N,) in [0, 1]."""
    z = np.asarray(level_logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return (p @ LEVEL_WEIGHTS.astype(np.float64)).astype(np.float32)


def expand2square(image: np.ndarray, fill: Sequence[int]) -> np.ndarray:
    """Pad to a square, image centred, with `fill` (Q-Align's expand2square)."""
    h, w = image.shape[:2]
    if h == w:
        return image
    side = max(h, w)
    out = np.empty((side, side, 3), np.uint8)
    out[:] = np.asarray(fill, np.uint8)
    y, x = (side - h) // 2, (side - w) // 2
    out[y:y + h, x:x + w] = image
    return out


def owl2_pixels(frames: Sequence[np.ndarray], size: int = OWL2_SIZE) -> np.ndarray:
    """(N, 3, size, size) float32: square-pad with the mean colour, bicubic resize, CLIP normalise."""
    from PIL import Image
    fill = tuple(int(m * 255) for m in CLIP_MEAN)
    mean = np.array(CLIP_MEAN, np.float32)[:, None, None]
    std = np.array(CLIP_STD, np.float32)[:, None, None]
    out = []
    for f in frames:
        sq = Image.fromarray(expand2square(np.ascontiguousarray(f, dtype=np.uint8), fill)).resize((size, size), Image.BICUBIC)
        x = np.asarray(sq, np.float32).transpose(2, 0, 1) / 255.0
        out.append((x - mean) / std)
    return np.stack(out).astype(np.float32)


class OnnxQAlign:
    """Reference backend: ONNX export of one-align's level logits on a 3-frame window."""
    backend = "onnx"
    metric_name = "motion_smoothness"

    def __init__(self, session, batch_size: int = 8) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.batch_size = batch_size

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike | None = None, device: str = "cpu", batch_size: int = 8) -> "OnnxQAlign":
        dirs = ([Path(model_dir)] if model_dir else []) + model_search_dirs(QALIGN_LOCAL_NAME)
        for d in dirs:
            p = d if d.is_file() else d / QALIGN_ONNX
            if p.is_file():
                from .face import _ort_session
                return cls(_ort_session(p, device), batch_size)
        raise ModelNotFound(
            f"Q-Align one-align ONNX ({QALIGN_ONNX})", [str(d) for d in dirs],
            "Export q-future/one-align's level logits to ONNX on a machine with the Q-Align repo "
            "(recipe in docs/benchmark-models.md) and put the file in one of these directories, or pass model_dir.")

    def score_video(self, frames: np.ndarray, window: int = WINDOW) -> np.ndarray:
        groups = window_indices(len(frames), window)
        pix = owl2_pixels(frames)                          # each frame preprocessed once
        scores = []
        for s in range(0, len(groups), self.batch_size):
            x = np.stack([pix[g] for g in groups[s:s + self.batch_size]])
            scores.append(expected_quality(self.session.run(None, {self.input_name: x})[0]))
        return np.concatenate(scores) if scores else np.zeros(0, np.float32)


class VlmQAlign:
    """Q-Align recipe on a transformers Qwen2-VL checkpoint (3 window frames as 3 images)."""
    backend = "vlm"
    metric_name = "smoothness_vlm"

    def __init__(self, model, inputs, level_ids: list[int], device: str = "cpu", dtype=None, batch_size: int = 4) -> None:
        self.model = model.eval()
        self.inputs = inputs
        self.level_ids = level_ids
        self.device = device
        self.dtype = dtype if dtype is not None else next(model.parameters()).dtype
        self.batch_size = batch_size

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike | None = None, device: str = "cpu", dtype=None,
                 batch_size: int = 4, max_image_tokens: int = 256) -> "VlmQAlign":
        from .gme import Qwen2VLInputs
        from .hf import quiet_transformers, require_torch_transformers, resolve_torch_dtype
        from .paths import find_model_dir
        root = find_model_dir("qalign-vlm", None, explicit=model_dir,
                              model_label="a Qwen2-VL checkpoint for the Q-Align-style scorer (e.g. Qwen/Qwen2-VL-7B-Instruct)")
        require_torch_transformers("Q-Align-style VLM scorer (torch + transformers)")
        from transformers import Qwen2VLForConditionalGeneration
        torch_dtype = resolve_torch_dtype(dtype, device)
        with quiet_transformers():
            model = Qwen2VLForConditionalGeneration.from_pretrained(str(root), dtype=torch_dtype).to(device).eval()
        inputs = Qwen2VLInputs.from_dir(root, min_image_tokens=4, max_image_tokens=max_image_tokens)
        inputs.tokenizer.padding_side = "left"             # next-token logits at position -1 for every row
        # Q-Align takes the first sub-token after BOS of each level word (LLaMA: "▁excellent");
        # for byte-level BPE that is the leading-space form.
        level_ids = [inputs.tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in QUALITY_LEVELS]
        return cls(model, inputs, level_ids, device, torch_dtype, batch_size)

    def _message(self, n_images: int) -> str:
        imgs = "<|vision_start|><|image_pad|><|vision_end|>" * n_images
        return (f"<|im_start|>user\nHow would you rate the quality of this video?\n{imgs}<|im_end|>\n"
                f"<|im_start|>assistant\nThe quality of the video is")

    def score_video(self, frames: np.ndarray, window: int = WINDOW) -> np.ndarray:
        import torch
        from PIL import Image

        from .gme import model_kwargs
        groups = window_indices(len(frames), window)
        pil = [Image.fromarray(np.ascontiguousarray(f, dtype=np.uint8)) for f in frames]
        out = []
        for s in range(0, len(groups), self.batch_size):
            chunk = groups[s:s + self.batch_size]
            msgs = [self._message(window) for _ in chunk]
            batch = self.inputs(msgs, [pil[i] for g in chunk for i in g])
            with torch.inference_mode():
                logits = self.model(**model_kwargs(self.model, batch, self.device, self.dtype)).logits
            out.append(expected_quality(logits[:, -1, self.level_ids].float().cpu().numpy()))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


class BrisqueQuality:
    """Embedded backend: BRISQUE per frame -> clip(1 - score/100, 0, 1), mean over each window."""
    backend = "brisque"
    metric_name = "smoothness_brisque"

    def __init__(self, long_side: int = BRISQUE_LONG_SIDE) -> None:
        try:
            from brisque import BRISQUE
        except ImportError as exc:
            raise BackendUnavailable("BRISQUE (package brisque)", [], f"pip install brisque ({exc})") from exc
        self._brisque = BRISQUE(url=False)
        self.long_side = long_side

    def frame_quality(self, frame: np.ndarray) -> float:
        import cv2
        h, w = frame.shape[:2]
        s = self.long_side / max(h, w)
        if s < 1:
            frame = cv2.resize(frame, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
        score = float(self._brisque.score(np.ascontiguousarray(frame)))
        if not np.isfinite(score):
            score = 100.0
        return float(np.clip(1.0 - score / 100.0, 0.0, 1.0))

    def score_video(self, frames: np.ndarray, window: int = WINDOW) -> np.ndarray:
        per_frame = np.array([self.frame_quality(f) for f in frames], np.float32)
        return np.array([per_frame[g].mean() for g in window_indices(len(frames), window)], np.float32)


def load_quality_scorer(backend: str = "onnx", model_dir: str | os.PathLike | None = None, device: str = "cpu",
                        dtype=None, **kw) -> FrameQualityScorer:
    if backend in ("onnx", "qalign", "one-align"):
        return OnnxQAlign.from_dir(model_dir, device=device, **kw)
    if backend == "vlm":
        return VlmQAlign.from_dir(model_dir, device=device, dtype=dtype, **kw)
    if backend == "brisque":
        return BrisqueQuality(**kw)
    raise ValueError(f"unknown quality backend {backend!r} (onnx, vlm, brisque)")
