"""NexusScore: are the reference subjects present in the video (detect, crop, retrieve)?

OpenS2V-Eval get_nexusscore.py, on 32 uniform frames: for each frame and each reference
image (skipping Man/Woman references for ids containing "face"; the label of a Man/Woman
reference becomes "human" for ids containing "human"), an open-vocabulary detector prompted
with the reference image returns boxes (NMS 0.7, score > 0.5, <= 100 boxes). Every box crop is
embedded with GME, as are the reference image and the label (text query, instruction "Find
an image that matches the given text."). A crop is kept if detector conf > 0.6, GME
text-crop similarity > 0.30 and GME image-crop similarity != 0.

  official value  = mean(kept image similarities) / T', T' = frames with >= 1 detection
  nexus_undivided = mean(kept image similarities)           (the division by T' is disputed)

Both are 0.0 when nothing is kept or nothing is detected (the normaliser ignores zeros, as the
official merge_result.py does). `compute()` returns the official value; `compute_record()`
returns {"value": official, "details": {"nexus_undivided": ..., ...}} for the runner to store.

Detectors: see s2vforge.backends.detection (owlv2 with image prompts by default; YOLO-World is
not available offline). The instance name says what produced the value: `nexus` only for the
official YOLO-World + GME-7B pair, otherwise `nexus_<detector>` (`nexus_owlv2`,
`nexus_grounding_dino`) plus `_gme2b` or `_clip` for another embedder. Every such stand-in is
`comparable = False`; the GME ones keep the official scale (`same_scale`), the CLIP ones do not.
The reference image and each label are embedded once per video (the original re-embeds them for
every crop: same vectors).
"""
from __future__ import annotations

import numpy as np

from .base import Sample, Video
from .facesim import load_rgb

N_FRAMES = 32            # get_nexusscore.py sample_video_frames(num_frames=32)
KEEP_DET_CONF = 0.6      # get_nexusscore.py: bbox_conf > 0.6
KEEP_TEXT_SIM = 0.30     # get_nexusscore.py: text_conf > 0.30
PERSON_LABELS = ("Man", "Woman")
# detector spellings accepted by backends.detection.load_detector -> the part of the metric name
DETECTOR_SLUGS = {"owlv2": "owlv2", "grounding-dino": "grounding_dino", "grounding_dino": "grounding_dino",
                  "gdino": "grounding_dino", "yoloworld": "yoloworld", "yolo-world": "yoloworld"}
OFFICIAL_DETECTOR = "yoloworld"   # get_nexusscore.py: YOLO-World v2-L with the image-prompt adapter


def nexus_metric_name(detector: str, embedder: str = "gme", variant: str = "7b") -> str:
    """`nexus` for the official detector and GME-7B, else a name saying which stand-in ran."""
    det = DETECTOR_SLUGS[detector]
    emb = "_clip" if embedder == "clip" else ("" if variant == "7b" else f"_gme{variant}")
    return "nexus" + ("" if det == OFFICIAL_DETECTOR else f"_{det}") + emb


def nexus_references(sample: Sample) -> list[tuple[int, str]]:
    """(index into ref_paths, label) of the references NexusScore looks for in this sample."""
    out = []
    for i, (path, label) in enumerate(zip(sample.ref_paths, sample.class_label)):
        if "face" in sample.id and label in PERSON_LABELS:
            continue
        if "human" in sample.id and label in PERSON_LABELS:
            label = "human"
        out.append((i, label))
    return out


def nexus_from_similarities(det_conf: np.ndarray, text_sim: np.ndarray, image_sim: np.ndarray, frames_with_det: int,
                            keep_conf: float = KEEP_DET_CONF, keep_text: float = KEEP_TEXT_SIM) -> tuple[float, float, int]:
    """(official, undivided, n_kept) from per-crop detector confidences and GME similarities."""
    det_conf, text_sim, image_sim = (np.asarray(a, np.float64) for a in (det_conf, text_sim, image_sim))
    keep = (det_conf > keep_conf) & (text_sim > keep_text) & (image_sim != 0)
    if not keep.any() or frames_with_det == 0:
        return 0.0, 0.0, int(keep.sum())
    undivided = float(image_sim[keep].mean())
    return undivided / frames_with_det, undivided, int(keep.sum())


def crop_box(frame: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """PIL-style crop (coordinates rounded); None for boxes under 2 px on a side."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return frame[y1:y2, x1:x2]


class NexusScore:
    """Raw value: official NexusScore (divided by T'); details carry `nexus_undivided`."""
    name = "nexus"            # instance value depends on detector and embedder (see nexus_metric_name)
    comparable = False        # YOLO-World (the official detector) is not available offline
    same_scale = True         # False with the CLIP embedder

    def __init__(self, detector: str = "owlv2", embedder: str = "gme", detector_dir=None, gme_dir=None,
                 variant: str = "7b", prompt: str | None = None, device: str = "cpu", dtype=None,
                 n_frames: int = N_FRAMES, keep_conf: float = KEEP_DET_CONF, keep_text: float = KEEP_TEXT_SIM,
                 fast_preprocess: bool = False, detector_obj=None, embedder_obj=None, model_dir=None,
                 backend: str | None = None) -> None:
        if backend is not None:          # the runner's generic `backend=` option names the detector
            detector = backend
        if embedder not in ("gme", "clip"):
            raise ValueError(f"NexusScore embedder must be 'gme' or 'clip' (got {embedder!r})")
        if detector not in DETECTOR_SLUGS:
            raise ValueError(f"unknown NexusScore detector {detector!r} (owlv2, grounding-dino, yoloworld)")
        variant = str(variant).lower()
        if embedder == "gme" and variant not in ("7b", "2b"):
            raise ValueError(f"GME variant must be '7b' or '2b' (got {variant!r})")
        if prompt not in (None, "image", "text"):
            raise ValueError(f"NexusScore prompt must be 'image' or 'text' (got {prompt!r})")
        self.detector_name, self.embedder_name = detector, embedder
        self.name = nexus_metric_name(detector, embedder, variant)
        self.detector_dir = detector_dir or model_dir
        self.gme_dir, self.variant = gme_dir, variant
        self.prompt = prompt              # "image" | "text" | None (image when the detector supports it)
        self.device, self.dtype = device, dtype
        self.n_frames, self.keep_conf, self.keep_text = int(n_frames), float(keep_conf), float(keep_text)
        self.comparable = (self.name == "nexus" and self.n_frames == N_FRAMES and prompt in (None, "image")
                           and self.keep_conf == KEEP_DET_CONF and self.keep_text == KEEP_TEXT_SIM)
        self.same_scale = embedder == "gme"
        self.fast_preprocess = fast_preprocess      # GME crops through the torchvision processor on the GPU
        self.detector, self.embedder = detector_obj, embedder_obj

    def settings(self) -> dict:
        """What decides the values (the runner records it and never mixes rows of other settings)."""
        return {"detector": DETECTOR_SLUGS[self.detector_name], "embedder": self.embedder_name,
                "variant": self.variant if self.embedder_name == "gme" else None, "prompt": self.prompt or "auto",
                "n_frames": self.n_frames, "keep_conf": self.keep_conf, "keep_text": self.keep_text}

    def load(self) -> None:
        if self.detector is None:
            from ....backends.detection import load_detector
            self.detector = load_detector(self.detector_name, self.detector_dir, device=self.device, dtype=self.dtype)
        if self.embedder is None:
            from ....backends.gme import load_image_text_embedder
            self.embedder = load_image_text_embedder(self.embedder_name, self.gme_dir, variant=self.variant,
                                                     device=self.device, dtype=self.dtype,
                                                     fast_preprocess=self.fast_preprocess)

    def applies_to(self, sample: Sample) -> bool:
        return bool(nexus_references(sample))

    def _prompt_mode(self) -> str:
        if self.prompt:
            if self.prompt == "image" and not self.detector.supports_image_prompts:
                raise ValueError(f"detector {self.detector.backend} takes no image prompts")
            return self.prompt
        return "image" if self.detector.supports_image_prompts else "text"

    def compute_record(self, video: Video, sample: Sample) -> dict:
        from ....backends.gme import GME_QUERY_INSTRUCTION
        self.load()
        refs = nexus_references(sample)
        if not refs:
            return {"value": None, "details": {"reason": "no reference to look for"}}
        mode = self._prompt_mode()
        ref_imgs = {i: load_rgb(sample.ref_paths[i]) for i, _ in refs}
        crops, conf, ref_of_crop, label_of_crop = [], [], [], []
        frames_with_det = n_boxes = n_tiny = 0
        frames = video.uniform(self.n_frames)
        if mode == "image" and hasattr(self.detector, "detect_frames"):
            # same detections as the per-(frame, reference) loop, each frame/reference embedded once
            per_frame = self.detector.detect_frames(list(frames), [ref_imgs[i] for i, _ in refs])
        else:
            per_frame = [[(self.detector.detect(fr, prompt_image=ref_imgs[i]) if mode == "image"
                           else self.detector.detect(fr, text=label)) for i, label in refs] for fr in frames]
        for frame, dets in zip(frames, per_frame):
            found = False
            for (i, label), det in zip(refs, dets):
                if len(det) and not found:
                    frames_with_det += 1
                    found = True
                n_boxes += len(det)
                for box, score in zip(det.boxes, det.scores):
                    crop = crop_box(frame, box)
                    if crop is None:
                        n_tiny += 1
                        continue
                    crops.append(crop)
                    conf.append(float(score))
                    ref_of_crop.append(i)
                    label_of_crop.append(label)
        details = {"metric": self.name, "nexus_undivided": 0.0, "frames_with_detections": frames_with_det, "n_boxes": n_boxes,
                   "n_kept": 0, "n_tiny_boxes_skipped": n_tiny, "detector": self.detector.backend,
                   "prompt": mode, "embedder": self.embedder_name}
        if not crops:
            return {"value": 0.0, "details": details}
        ref_ids = sorted(set(ref_of_crop))
        labels = sorted(set(label_of_crop))
        e_crop = self.embedder.embed_images(crops)
        e_ref = dict(zip(ref_ids, self.embedder.embed_images([ref_imgs[i] for i in ref_ids])))
        e_lab = dict(zip(labels, self.embedder.embed_texts(labels, instruction=GME_QUERY_INSTRUCTION)))
        image_sim = np.array([e_crop[k] @ e_ref[r] for k, r in enumerate(ref_of_crop)])
        text_sim = np.array([e_crop[k] @ e_lab[lab] for k, lab in enumerate(label_of_crop)])
        official, undivided, kept = nexus_from_similarities(np.array(conf), text_sim, image_sim, frames_with_det,
                                                            self.keep_conf, self.keep_text)
        details.update(nexus_undivided=undivided, n_kept=kept)
        return {"value": official, "details": details}

    def compute(self, video: Video, sample: Sample) -> float | None:
        return self.compute_record(video, sample)["value"]
