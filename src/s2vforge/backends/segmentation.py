"""Model-backed segmentation: embedded MediaPipe selfie segmentation, reference SAM 2.

Embedded (`selfie`): MediaPipe's selfie-segmentation graph (legacy `solutions` API) with the
TFLite model that mediapipe==0.10.21 ships inside the wheel (modules/selfie_segmentation/
selfie_segmentation.tflite); nothing is downloaded. Later mediapipe releases ship no models,
and 0.10.21 needs numpy<2, which the project pins. It returns a per-pixel person probability.
The model was trained on people facing a camera (video calls), so callers run it on a crop
around a person box, which makes the person fill the input the way it expects.

Reference (`sam2`): SAM 2 prompted with a box, as OpenS2V-Nexus does after GroundingDINO
(data_process/step5-2_get_subject_image.py: `SAM2ImagePredictor.predict(box=...,
multimask_output=False)`), through transformers' `Sam2Model` and loaded only from a local
directory (default checkpoint facebook/sam2.1-hiera-large in transformers format; see
find_sam2_dir). transformers' Sam2ImageProcessor needs torchvision, which this project does
not install, so the preprocessing is re-done here from the directory's
preprocessor_config.json: resize to size x size (bilinear; area for downscaling, the
anti-aliased resize), x / 255, ImageNet mean/std; box corners scaled by size / w and
size / h; the low-resolution logits bilinearly resized to the frame (align_corners=False)
and thresholded at 0, as Sam2ImageProcessor.post_process_masks does.

torch and transformers are imported only when a SAM 2 model is built.
"""
from __future__ import annotations

import functools
import json
import os
import threading
from pathlib import Path

import numpy as np

from .errors import BackendUnavailable
from .paths import find_model_dir

# ----------------------------------------------------------------------------- selfie (embedded)

SELFIE_GENERAL = 0     # MediaPipe model_selection 0: 256x256 "general" model


class SelfieSegmenter:
    """Person probability per pixel from MediaPipe selfie segmentation (thread-safe)."""

    def __init__(self, model_selection: int = SELFIE_GENERAL) -> None:
        try:
            from mediapipe.python.solutions import selfie_segmentation
        except Exception as exc:  # ImportError, or a protobuf/numpy mismatch inside mediapipe
            raise BackendUnavailable(
                "MediaPipe selfie segmentation (mediapipe==0.10.21)", [],
                f"pip install mediapipe==0.10.21 (it needs numpy<2; later releases ship no models) ({exc}).") from exc
        self.model_selection = int(model_selection)
        self._graph = selfie_segmentation.SelfieSegmentation(model_selection=self.model_selection)
        self._lock = threading.Lock()

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """HxW float32 in [0, 1]: the probability that each pixel belongs to a person."""
        img = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        if img.ndim != 3 or img.shape[0] < 2 or img.shape[1] < 2:
            raise ValueError(f"expected an HxWx3 image, got shape {rgb.shape}")
        with self._lock:
            result = self._graph.process(img)
        prob = result.segmentation_mask
        if prob is None:
            return np.zeros(img.shape[:2], np.float32)
        return np.clip(np.asarray(prob, np.float32), 0.0, 1.0)


@functools.lru_cache(maxsize=2)
def load_selfie(model_selection: int = SELFIE_GENERAL) -> SelfieSegmenter:
    """The selfie segmenter, built once per process and model."""
    return SelfieSegmenter(model_selection)


# ----------------------------------------------------------------------------- SAM 2 (reference)

SAM2_HF_REPO = "facebook/sam2.1-hiera-large"
SAM2_LOCAL_NAME = "sam2.1-hiera-large"
SAM2_LABEL = f"SAM 2.1 Hiera-L ({SAM2_HF_REPO}, transformers format)"
IMAGENET_MEAN = (0.485, 0.456, 0.406)   # Sam2ImageProcessor defaults
IMAGENET_STD = (0.229, 0.224, 0.225)
SAM2_INPUT_SIZE = 1024


def find_sam2_dir(model_dir: str | os.PathLike | None = None) -> Path:
    """A directory with a transformers SAM 2 checkpoint (config.json + weights), or ModelNotFound."""
    return find_model_dir(SAM2_LOCAL_NAME, SAM2_HF_REPO, explicit=model_dir, model_label=SAM2_LABEL)


def _preprocessor_settings(model_dir: Path) -> dict:
    cfg = {}
    path = model_dir / "preprocessor_config.json"
    if path.is_file():
        cfg = json.loads(path.read_text())
    size = cfg.get("size") or {}
    side = int(size.get("height") or size.get("longest_edge") or SAM2_INPUT_SIZE)
    return {
        "size": side,
        "mean": np.asarray(cfg.get("image_mean", IMAGENET_MEAN), np.float32),
        "std": np.asarray(cfg.get("image_std", IMAGENET_STD), np.float32),
        "rescale": float(cfg.get("rescale_factor", 1.0 / 255.0)),
    }


class Sam2BoxSegmenter:
    """SAM 2 with one box prompt per call: segment_box(rgb, box) -> (bool HxW mask, predicted IoU)."""

    def __init__(self, model, settings: dict, device: str = "cpu", dtype=None) -> None:
        self.model = model.eval()
        self.size = int(settings["size"])
        self.mean = settings["mean"]
        self.std = settings["std"]
        self.rescale = settings["rescale"]
        self.device = device
        self.dtype = dtype

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike | None = None, device: str = "cpu",
                 dtype=None) -> "Sam2BoxSegmenter":
        root = find_sam2_dir(model_dir)
        try:
            import torch
            from transformers import Sam2Model
        except ImportError as exc:
            raise BackendUnavailable.missing_extra(
                "reference", "SAM 2 reference backend (torch + transformers>=4.56 with Sam2Model)", exc) from None
        if dtype is None:
            dtype = torch.float32
        model = Sam2Model.from_pretrained(str(root)).to(device=device, dtype=dtype).eval()
        return cls(model, _preprocessor_settings(root), device=device, dtype=dtype)

    def pixel_values(self, rgb: np.ndarray) -> np.ndarray:
        """1x3xSxS float32 network input (see module docstring)."""
        import cv2
        h, w = rgb.shape[:2]
        interp = cv2.INTER_AREA if max(h, w) > self.size else cv2.INTER_LINEAR
        x = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (self.size, self.size), interpolation=interp)
        x = (x.astype(np.float32) * self.rescale - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def segment_box(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, float]:
        import torch
        import torch.nn.functional as F

        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = (float(v) for v in box)
        scaled = [[[x0 * self.size / w, y0 * self.size / h, x1 * self.size / w, y1 * self.size / h]]]
        with torch.inference_mode():
            pixels = torch.from_numpy(self.pixel_values(rgb)).to(self.device, self.dtype)
            boxes = torch.tensor(scaled, dtype=self.dtype, device=self.device)
            out = self.model(pixel_values=pixels, input_boxes=boxes, multimask_output=False)
            logits = out.pred_masks[0, 0, :1].float()            # (1, h', w') low-res logits
            full = F.interpolate(logits[None], (h, w), mode="bilinear", align_corners=False)[0, 0]
            iou = float(out.iou_scores[0, 0, 0].float())
        return (full > 0.0).cpu().numpy(), iou


@functools.lru_cache(maxsize=2)
def load_sam2(model_dir: str | None = None, device: str = "cpu") -> Sam2BoxSegmenter:
    """The SAM 2 box segmenter, built once per process, directory and device."""
    return Sam2BoxSegmenter.from_dir(model_dir, device=device)
