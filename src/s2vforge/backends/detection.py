"""Open-vocabulary detection for NexusScore: OWLv2 and Grounding DINO (transformers), YOLO-World.

OpenS2V-Eval's get_nexusscore.py runs YOLO-World v2-L (mmyolo) with an *image prompt* (the
reference image's CLIP ViT-B/32 embedding through the image-prompt adapter), then
torchvision NMS at IoU 0.7, score > 0.5, at most 100 boxes. We apply the same post-processing
(NMS first, then the score threshold, then the top 100) to whichever detector is chosen:

- `owlv2` (`google/owlv2-base-patch16-ensemble`, `Owlv2ForObjectDetection`): text prompts and
  image prompts (`image_guided_detection`, the closest match to the official image prompt).
  Boxes are predicted on the square-padded image, so they are scaled by max(H, W). Scores are
  the raw sigmoid class scores (not the min-max "alphas" of transformers'
  `post_process_image_guided_detection`, which force the best box to 1.0).
- `grounding-dino` (`IDEA-Research/grounding-dino-base` or -tiny, `GroundingDinoForObjectDetection`):
  text prompts only ("dog."); score = max sigmoid over the prompt's token logits.
- `yoloworld`: not available offline. The official path needs mmyolo/mmdet/mmcv (compiled CUDA
  ops) plus the image-prompt adapter checkpoint; ultralytics' YOLOWorld needs torchvision and
  fetches its CLIP text encoder from GitHub at run time. `load_detector("yoloworld")` raises
  BackendUnavailable saying so.

Detector scores are calibrated differently per model: thresholds tuned for YOLO-World (0.5 /
0.6) do not mean the same on OWLv2 or Grounding DINO, so NexusScore from these detectors is a
faithful *recipe* with a different detector, not the leaderboard number.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .boxes import nms
from .errors import BackendUnavailable
from .hf import quiet_transformers, require_torch_transformers, resolve_torch_dtype
from .paths import find_model_dir

SCORE_THR = 0.5     # OpenS2V-Eval get_nexusscore.py yoloworld_inference(score_thr=0.5)
NMS_IOU = 0.7       # OpenS2V-Eval get_nexusscore.py yoloworld_inference(nms_thr=0.7)
MAX_BOXES = 100     # OpenS2V-Eval get_nexusscore.py yoloworld_inference(max_num_boxes=100)

DETECTOR_MODELS = {
    "owlv2": ("owlv2-base-patch16-ensemble", "google/owlv2-base-patch16-ensemble"),
    "grounding-dino": ("grounding-dino-base", "IDEA-Research/grounding-dino-base"),
}


@dataclass
class Detections:
    boxes: np.ndarray    # (N, 4) float32 x1, y1, x2, y2 in image pixels
    scores: np.ndarray   # (N,) float32

    def __len__(self) -> int:
        return int(self.scores.shape[0])


class OpenVocabDetector(Protocol):
    backend: str
    supports_image_prompts: bool

    def detect(self, image: np.ndarray, *, text: str | None = None, prompt_image: np.ndarray | None = None) -> Detections: ...


def postprocess(boxes: np.ndarray, scores: np.ndarray, score_thr: float = SCORE_THR, nms_iou: float = NMS_IOU,
                max_boxes: int = MAX_BOXES) -> Detections:
    """The official order: NMS, then score > thr, then the top `max_boxes` by score."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if scores.size:
        keep = nms(boxes, scores, nms_iou, convention="torchvision")
        boxes, scores = boxes[keep], scores[keep]
        m = scores > score_thr
        boxes, scores = boxes[m], scores[m]
        if scores.size > max_boxes:
            top = np.argsort(-scores, kind="stable")[:max_boxes]
            boxes, scores = boxes[top], scores[top]
    return Detections(boxes=boxes, scores=scores)


def cxcywh_to_xyxy(b: np.ndarray, width: float, height: float) -> np.ndarray:
    cx, cy, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    out = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return out * np.array([width, height, width, height], np.float32)


def clip_to_image(boxes: np.ndarray, scores: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image; drop those left with no area (e.g. inside OWLv2's square padding)."""
    b = boxes.copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    ok = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return b[ok], scores[ok]


def _pil(image):
    from PIL import Image
    return image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).convert("RGB")


class _TransformersDetector:
    """A transformers object-detection model + its processor, found with find_model_dir."""
    backend = ""
    model_class = ""
    label = ""

    def __init__(self, model, processor, device: str = "cpu", dtype=None, score_thr: float = SCORE_THR,
                 nms_iou: float = NMS_IOU, max_boxes: int = MAX_BOXES) -> None:
        self.model = model.eval()
        self.processor = processor
        self.device = device
        self.dtype = dtype if dtype is not None else next(model.parameters()).dtype
        self.score_thr, self.nms_iou, self.max_boxes = score_thr, nms_iou, max_boxes

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike | None = None, device: str = "cpu", dtype=None, **kw):
        local, repo = DETECTOR_MODELS[cls.backend]
        root = find_model_dir(local, repo, explicit=model_dir, model_label=cls.label.format(repo=repo))
        require_torch_transformers(f"{cls.label.format(repo=repo)} (torch + transformers)")
        import transformers
        torch_dtype = resolve_torch_dtype(dtype, device)
        with quiet_transformers():
            model = getattr(transformers, cls.model_class).from_pretrained(str(root), dtype=torch_dtype)
            model = model.to(device).eval()
        return cls(model, transformers.AutoProcessor.from_pretrained(str(root)), device, torch_dtype, **kw)


class Owlv2Detector(_TransformersDetector):
    backend = "owlv2"
    supports_image_prompts = True

    model_class = "Owlv2ForObjectDetection"
    label = "OWLv2 ({repo})"

    def _pixels(self, images):
        """Processor output on the device. torchvision-backed ("fast") processors run on the device
        themselves (`device=`); the PIL/scipy one runs on the CPU (identical maths, slower)."""
        ims = [_pil(im) for im in (images if isinstance(images, (list, tuple)) else [images])]
        ip = self.processor.image_processor
        kw = {"device": self.device} if not type(ip).__name__.endswith("Pil") and str(self.device) != "cpu" else {}
        try:
            px = ip(images=ims, return_tensors="pt", **kw)["pixel_values"]
        except (TypeError, ValueError):
            px = ip(images=ims, return_tensors="pt")["pixel_values"]
        return px.to(self.device, self.dtype)

    def _frame_features(self, pixel_values):
        """(image_feats (B, P, D), boxes (B, P, 4) cxcywh) of frames, computed once for every prompt."""
        fmap = self.model.image_embedder(pixel_values=pixel_values)[0]
        b, h, w, d = fmap.shape
        feats = fmap.reshape(b, h * w, d)
        return feats, self.model.box_predictor(feats, fmap)

    def query_embedding(self, prompt_image):
        """(1, 1, D) class embedding of the prompt image's best box (as image_guided_detection)."""
        import torch
        with torch.inference_mode():
            fmap = self.model.image_embedder(pixel_values=self._pixels(prompt_image))[0]
            b, h, w, d = fmap.shape
            return self.model.embed_image_query(fmap.reshape(b, h * w, d), fmap)[0]

    def detect_frames(self, frames, prompt_images, batch_size: int = 8) -> list[list[Detections]]:
        """detect(frame, prompt_image=ref) for every frame x prompt image, with each frame and each
        prompt embedded once and frames batched: the same detections, far fewer tower passes."""
        import torch
        queries = torch.cat([self.query_embedding(p) for p in prompt_images], dim=1)      # (1, R, D)
        out: list[list[Detections]] = []
        for s in range(0, len(frames), batch_size):
            chunk = frames[s:s + batch_size]
            with torch.inference_mode():
                feats, boxes = self._frame_features(self._pixels(list(chunk)))
                logits = self.model.class_predictor(feats, queries.expand(len(chunk), -1, -1))[0]   # (B, P, R)
                scores = torch.sigmoid(logits.float()).cpu().numpy()
                boxes = boxes.float().cpu().numpy()
            for f, frame in enumerate(chunk):
                h, w = frame.shape[:2]
                xyxy_all = cxcywh_to_xyxy(boxes[f], float(max(h, w)), float(max(h, w)))
                row = []
                for r in range(scores.shape[2]):
                    xyxy, sc = clip_to_image(xyxy_all, scores[f, :, r], w, h)
                    row.append(postprocess(xyxy, sc, self.score_thr, self.nms_iou, self.max_boxes))
                out.append(row)
        return out

    def detect(self, image: np.ndarray, *, text: str | None = None, prompt_image: np.ndarray | None = None) -> Detections:
        import torch
        h, w = image.shape[:2]
        side = float(max(h, w))                         # OWLv2 pads to a square (bottom/right) before resizing
        with torch.inference_mode():
            if prompt_image is not None:
                out = self.model.image_guided_detection(pixel_values=self._pixels(image),
                                                        query_pixel_values=self._pixels(prompt_image))
                logits, boxes = out.logits, out.target_pred_boxes
            elif text is not None:
                enc = self.processor.tokenizer([text], padding="max_length", truncation=True,
                                               max_length=int(self.model.config.text_config.max_position_embeddings),
                                               return_tensors="pt").to(self.device)
                out = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                 pixel_values=self._pixels(image))
                logits, boxes = out.logits, out.pred_boxes
            else:
                raise ValueError("OWLv2 needs a text or an image prompt")
            scores = torch.sigmoid(logits[0].float()).max(dim=-1).values.cpu().numpy()
            boxes = boxes[0].float().cpu().numpy()
        xyxy, scores = clip_to_image(cxcywh_to_xyxy(boxes, side, side), scores, w, h)
        return postprocess(xyxy, scores, self.score_thr, self.nms_iou, self.max_boxes)


class GroundingDinoDetector(_TransformersDetector):
    backend = "grounding-dino"
    supports_image_prompts = False

    model_class = "GroundingDinoForObjectDetection"
    label = "Grounding DINO ({repo} or grounding-dino-tiny)"

    @staticmethod
    def prompt(text: str) -> str:
        t = text.strip().lower()
        return t if t.endswith(".") else t + "."

    def detect(self, image: np.ndarray, *, text: str | None = None, prompt_image: np.ndarray | None = None) -> Detections:
        import torch
        if text is None:
            raise ValueError("Grounding DINO takes text prompts only (pass the reference's class label)")
        h, w = image.shape[:2]
        enc = self.processor(images=_pil(image), text=self.prompt(text), return_tensors="pt")
        enc = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)) for k, v in enc.items()}
        with torch.inference_mode():
            out = self.model(**enc)
            scores = torch.sigmoid(out.logits[0].float()).max(dim=-1).values.cpu().numpy()
            boxes = out.pred_boxes[0].float().cpu().numpy()
        xyxy, scores = clip_to_image(cxcywh_to_xyxy(boxes, w, h), scores, w, h)
        return postprocess(xyxy, scores, self.score_thr, self.nms_iou, self.max_boxes)


YOLOWORLD_UNAVAILABLE = (
    "The official NexusScore detector is YOLO-World v2-L with the image-prompt adapter "
    "(yolo_world_v2_l_image_prompt_adapter-719a7afb.pth) run through mmyolo/mmdet/mmcv, which need compiled "
    "CUDA ops and are not installable offline here; ultralytics' YOLOWorld needs torchvision and downloads its "
    "CLIP text encoder from GitHub at run time. Use detector='owlv2' (image prompts) or 'grounding-dino' (text).")


def load_detector(backend: str = "owlv2", model_dir: str | os.PathLike | None = None, device: str = "cpu",
                  dtype=None, **kw) -> OpenVocabDetector:
    if backend == "owlv2":
        return Owlv2Detector.from_dir(model_dir, device=device, dtype=dtype, **kw)
    if backend in ("grounding-dino", "grounding_dino", "gdino"):
        return GroundingDinoDetector.from_dir(model_dir, device=device, dtype=dtype, **kw)
    if backend in ("yoloworld", "yolo-world"):
        raise BackendUnavailable("YOLO-World v2-L image-prompt detector", [], YOLOWORLD_UNAVAILABLE)
    raise ValueError(f"unknown detector backend {backend!r} (owlv2, grounding-dino, yoloworld)")
