"""Per-frame subject candidates from the recipe's detectors.

What is looked for, and by what:
- faces (always; OpenS2V-Nexus' pre-defined "human head"): backends/facedet.py;
- people (always; OpenS2V-Nexus' pre-defined "person"): backends/persondet.py;
- caption phrases (animal / object / person / face), reference: open-vocabulary grounding of
  each phrase with Grounding DINO or OWLv2 (backends/detection.py, what OpenS2V-Nexus and
  Phantom-Data use), when `subjects.detect.grounding` names one and its weights are on disk;
- class-agnostic salient objects, embedded: backends/saliency.py. They carry the phrase
  "salient object", never a caption phrase, because nothing checked what they are. By default
  they are only looked for when the caption names some animal or object.

A detector that cannot load (missing package or weights) is recorded in `unavailable` with
the reason and skipped; the other detectors still run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...backends.errors import BackendUnavailable
from .boxrules import box_iou
from .phrases import Phrase

GROUNDING_BOX_THRESHOLD = 0.25   # OpenS2V-Nexus step5-2_get_subject_image.py: GroundingDINO box_threshold=0.25
SALIENT_PHRASE = "salient object"
SALIENT_COVERED_IOU = 0.5        # ours: a salient region matching a named subject's box is that subject

DEFAULT_DETECT = {
    "face": "mediapipe",          # embedded BlazeFace (see backends/facedet.py); dlib | scrfd
    "person": "mediapipe-pose",   # embedded (backends/persondet.py); auto (+ HOG) | hog | none. HOG adds false
                                  # positives and found no upper-body person on benchmarks/bench_subjects_detection.py
    "objects": "saliency",        # class-agnostic embedded objects; none to disable
    "saliency_method": "combined",
    "objects_require_phrase": True,
    "grounding": None,            # reference: grounding-dino | owlv2
    "grounding_model_dir": None,
    "grounding_box_threshold": GROUNDING_BOX_THRESHOLD,
    "face_model_dir": None,
    "device": "cpu",
}


@dataclass
class DetectorSet:
    face: object | None = None
    person: object | None = None
    objects: object | None = None
    grounding: object | None = None
    cfg: dict = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def names(self) -> dict[str, str | None]:
        def nm(d):
            return None if d is None else getattr(d, "name", None) or getattr(d, "backend", type(d).__name__)
        return {"face": nm(self.face), "person": nm(self.person), "objects": nm(self.objects),
                "grounding": nm(self.grounding)}

    def candidates(self, frame: np.ndarray, phrases: list[Phrase]) -> list[dict]:
        """Candidate dicts {box, score, category, phrase, single_instance, backend, checks} for one frame."""
        out: list[dict] = []
        if self.face is not None:
            for d in self.face.detect(frame):
                out.append(_cand(d.box, d.score, "face", "face", False, d.backend))
        if self.person is not None:
            for d in self.person.detect(frame):
                out.append(_cand(d.box, d.score, "person", "person", False, d.backend))
        caption_phrases = [p for p in phrases if p.source != "fixed" and p.category in ("face", "person", "animal", "object")]
        if self.grounding is not None:
            for p in caption_phrases:
                dets = self.grounding.detect(frame, text=p.text)
                for box, score in zip(dets.boxes, dets.scores):
                    out.append(_cand(tuple(float(v) for v in box), float(score), p.category, p.text, p.single_instance,
                                     self.grounding.backend))
        want_objects = not self.cfg.get("objects_require_phrase", True) or any(
            p.category in ("animal", "object") for p in caption_phrases)
        if self.objects is not None and want_objects:
            named = [c["box"] for c in out]
            for d in self.objects.detect(frame):
                c = _cand(d.box, d.score, "object", SALIENT_PHRASE, False, d.backend)
                if any(box_iou(d.box, b) > SALIENT_COVERED_IOU for b in named):
                    c["checks"].append("covered_by_named_subject")
                out.append(c)
        return out


def _cand(box, score, category, phrase, single, backend) -> dict:
    return {"box": tuple(float(v) for v in box), "score": float(score), "category": category, "phrase": phrase,
            "single_instance": bool(single), "backend": backend, "checks": []}


def load_detectors(cfg: dict | None) -> DetectorSet:
    """The recipe's detectors (subjects.detect); unavailable ones are recorded, not raised."""
    cfg = {**DEFAULT_DETECT, **(cfg or {})}
    ds = DetectorSet(cfg=cfg)
    if cfg.get("face") not in (None, "none"):
        from ...backends.facedet import load_face_detector
        try:
            ds.face = load_face_detector(cfg["face"], model_dir=cfg.get("face_model_dir")) if cfg["face"] == "scrfd" \
                else load_face_detector(cfg["face"])
        except BackendUnavailable as e:
            ds.unavailable[f"face:{cfg['face']}"] = str(e)
    if cfg.get("person") not in (None, "none"):
        from ...backends.persondet import load_person_detector
        try:
            ds.person = load_person_detector(cfg["person"])
            ds.unavailable.update({f"person:{k}": v for k, v in getattr(ds.person, "unavailable", {}).items()})
        except BackendUnavailable as e:
            ds.unavailable[f"person:{cfg['person']}"] = str(e)
    if cfg.get("objects") == "saliency":
        from ...backends.saliency import SalientObjects
        ds.objects = SalientObjects(method=cfg.get("saliency_method") or "combined")
    elif cfg.get("objects") not in (None, "none"):
        raise ValueError(f"unknown subjects.detect.objects {cfg['objects']!r} (saliency, none)")
    if cfg.get("grounding"):
        from ...backends.detection import load_detector
        try:
            ds.grounding = load_detector(cfg["grounding"], cfg.get("grounding_model_dir"), device=cfg.get("device", "cpu"),
                                         score_thr=float(cfg.get("grounding_box_threshold", GROUNDING_BOX_THRESHOLD)))
        except BackendUnavailable as e:
            ds.unavailable[f"grounding:{cfg['grounding']}"] = str(e)
    return ds
