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

Every setting comes from the recipe's `subjects.detect` section (its values and their sources
are in recipes/openhumanvid.yaml); this module has no defaults of its own.

Faces get a second opinion (`subjects.detect.human_face`, backends/facedet.HumanFaceCheck):
BlazeFace also boxes cat and cartoon-animal faces, so `DetectorSet.confirm_faces` re-detects
every face box the box rules kept with dlib's human-face detectors and rejects those neither
finds as `human_face_unconfirmed:hog=<score>,cnn=<score>` (run after the box rules: the check
costs 10-170 ms a face, and boxes already rejected need none).

A detector that cannot load (missing package or weights) is recorded in `unavailable` with
the reason and skipped; the other detectors still run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...schema import SUBJECT_CATEGORIES
from ...backends.errors import BackendUnavailable
from ..recipe_keys import take
from .boxrules import box_iou
from .phrases import Phrase

SALIENT_PHRASE = "salient object"
# the recipe keys this module reads (subjects.detect; values and sources in recipes/openhumanvid.yaml)
DETECT_KEYS = ("face", "face_model_dir", "person", "objects", "saliency_method", "salient_covered_iou",
               "objects_require_phrase", "grounding", "grounding_model_dir", "grounding_box_threshold", "device",
               "human_face", "name_salient_by_caption")
HUMAN_FACE_KEYS = ("enabled", "hog_min_score", "cnn_min_score", "context", "hog_face_px", "cnn_face_px", "match_iou")
HUMAN_FACE_CHECK = "human_face_unconfirmed"


@dataclass
class DetectorSet:
    face: object | None = None
    person: object | None = None
    objects: object | None = None
    grounding: object | None = None
    human_face: object | None = None                 # backends.facedet.HumanFaceCheck
    cfg: dict = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def names(self) -> dict[str, str | None]:
        def nm(d):
            return None if d is None else getattr(d, "name", None) or getattr(d, "backend", type(d).__name__)
        return {"face": nm(self.face), "person": nm(self.person), "objects": nm(self.objects),
                "grounding": nm(self.grounding), "human_face": nm(self.human_face)}

    def confirm_faces(self, frame: np.ndarray, cands: list[dict]) -> list[dict]:
        """Reject the kept face candidates the human-face check does not confirm (module doc)."""
        if self.human_face is None:
            return cands
        for c in cands:
            if c["category"] == "face" and c.get("keep", True):
                v = self.human_face.check(frame, c["box"])
                if not v.ok:
                    c["checks"] = list(c.get("checks") or []) + [f"{HUMAN_FACE_CHECK}:{v.detail()}"]
                    c["keep"] = False
        return cands

    def is_human_face(self, frame: np.ndarray, box) -> bool:
        """The human-face check on one box (True when the check is off or unavailable)."""
        return self.human_face is None or self.human_face.check(frame, box).ok

    def _caption_label(self, caption_phrases: list[Phrase]) -> Phrase | None:
        return _caption_label_for(self.cfg, self.grounding, caption_phrases)

    def candidates(self, frame: np.ndarray, phrases: list[Phrase]) -> list[dict]:
        """Candidate dicts {box, score, category, phrase, single_instance, backend, checks} for one frame."""
        out: list[dict] = []
        if self.face is not None:
            for d in self.face.detect(frame):
                out.append(_cand(d.box, d.score, "face", "face", False, d.backend))
        if self.person is not None:
            for d in self.person.detect(frame):
                out.append(_cand(d.box, d.score, "person", "person", False, d.backend))
        caption_phrases = [p for p in phrases if p.source != "fixed" and p.category in SUBJECT_CATEGORIES]
        if self.grounding is not None:
            for p in caption_phrases:
                dets = self.grounding.detect(frame, text=p.text)
                for box, score in zip(dets.boxes, dets.scores):
                    out.append(_cand(tuple(float(v) for v in box), float(score), p.category, p.text, p.single_instance,
                                     self.grounding.backend))
        want_objects = not self.cfg["objects_require_phrase"] or any(
            p.category in ("animal", "object") for p in caption_phrases)
        if self.objects is not None and want_objects:
            named = [c["box"] for c in out]
            covered_iou = float(self.cfg["salient_covered_iou"])
            label = self._caption_label(caption_phrases)
            for d in self.objects.detect(frame):
                c = _cand(d.box, d.score, "object", SALIENT_PHRASE, False, d.backend)
                if any(box_iou(d.box, b) > covered_iou for b in named):
                    c["checks"].append("covered_by_named_subject")
                elif label is not None:      # the one thing the caption names is the salient region
                    c.update(category=label.category, phrase=label.text, single_instance=label.single_instance,
                             backend=f"{d.backend}+caption")
                out.append(c)
        return out


def _caption_label_for(cfg: dict, grounding, caption_phrases: list[Phrase]) -> Phrase | None:
    """Without a grounding model, a caption that names exactly one animal or object names the
    salient region (subjects.detect.name_salient_by_caption); two or more would be a guess."""
    if grounding is not None or not cfg["name_salient_by_caption"]:
        return None
    things = {p.text: p for p in caption_phrases if p.category in ("animal", "object")}
    return next(iter(things.values())) if len(things) == 1 else None


def _cand(box, score, category, phrase, single, backend) -> dict:
    return {"box": tuple(float(v) for v in box), "score": float(score), "category": category, "phrase": phrase,
            "single_instance": bool(single), "backend": backend, "checks": []}


def load_detectors(cfg: dict) -> DetectorSet:
    """The recipe's detectors (the `subjects.detect` section, every key of DETECT_KEYS set);
    unavailable ones are recorded, not raised. A missing key raises MissingRecipeKey."""
    take(cfg, DETECT_KEYS, "subjects.detect")           # every setting is there before anything loads
    hf = take(cfg["human_face"], HUMAN_FACE_KEYS, "subjects.detect.human_face")
    cfg = dict(cfg)
    ds = DetectorSet(cfg=cfg)
    if cfg["face"] not in (None, "none"):
        from ...backends.facedet import load_face_detector
        try:
            ds.face = load_face_detector(cfg["face"], model_dir=cfg["face_model_dir"]) if cfg["face"] == "scrfd" \
                else load_face_detector(cfg["face"])
        except BackendUnavailable as e:
            ds.unavailable[f"face:{cfg['face']}"] = str(e)
        if hf["enabled"]:
            from ...backends.facedet import HumanFaceCheck
            try:
                ds.human_face = HumanFaceCheck(**{k: hf[k] for k in HUMAN_FACE_KEYS if k != "enabled"})
            except BackendUnavailable as e:       # ModelNotFound included
                ds.unavailable["human_face"] = str(e)
    if cfg["person"] not in (None, "none"):
        from ...backends.persondet import load_person_detector
        try:
            ds.person = load_person_detector(cfg["person"])
            ds.unavailable.update({f"person:{k}": v for k, v in getattr(ds.person, "unavailable", {}).items()})
        except BackendUnavailable as e:
            ds.unavailable[f"person:{cfg['person']}"] = str(e)
    if cfg["objects"] == "saliency":
        from ...backends.saliency import SalientObjects
        ds.objects = SalientObjects(method=cfg["saliency_method"])
    elif cfg["objects"] not in (None, "none"):
        raise ValueError(f"unknown subjects.detect.objects {cfg['objects']!r} (saliency, none)")
    if cfg["grounding"]:
        from ...backends.detection import load_detector
        try:
            ds.grounding = load_detector(cfg["grounding"], cfg["grounding_model_dir"], device=cfg["device"],
                                         score_thr=float(cfg["grounding_box_threshold"]))
        except BackendUnavailable as e:
            ds.unavailable[f"grounding:{cfg['grounding']}"] = str(e)
    return ds
