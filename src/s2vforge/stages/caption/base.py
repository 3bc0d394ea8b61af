"""The captioner contract: every backend (facts, endpoint, reference) takes one clip's sampled
frames and what curation measured, and returns one `Caption`.

    captioner = make_captioner(name, cfg)     # stages/caption/pipeline.py
    captioner.setup()                         # once per worker: clients, models
    cap = captioner.caption(clip)             # ClipInput -> Caption; never raises for one clip's
                                              # trouble: cap.error / cap.verdicts say what happened

`structured` always has the STRUCTURED_FIELDS keys (None where unknown): OpenHumanVid's
structured caption (Human Appearance, Human motion, Face motion, Environment) plus the subjects
and the camera. Tags are OpenS2V-5M's `word_tags` (subject / object / background).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STRUCTURED_FIELDS = ("subjects", "appearance", "action", "face_motion", "environment", "camera")


@dataclass
class ClipInput:
    clip_id: str
    path: Path                      # the clip file (DATASET/clips/<clip_id>.mp4)
    frames: list[np.ndarray]        # RGB uint8 frames sampled from the clip (pipeline.sample_frames)
    times: list[float]              # seconds from the clip's start of each frame
    duration_s: float
    fps: float
    size: tuple[int, int]           # (w, h) of the clip file
    manifest_caption: str | None = None
    measured: dict[str, Any] = field(default_factory=dict)   # the clip's row: score_* columns, crop...
    cache_dir: Path | None = None   # per-request cache folder (endpoint: a rerun sends nothing twice)


@dataclass
class Caption:
    short: str | None = None
    long: str | None = None
    structured: dict[str, Any] = field(default_factory=lambda: {k: None for k in STRUCTURED_FIELDS})
    subject_tags: list[str] = field(default_factory=list)
    object_tags: list[str] = field(default_factory=list)
    background_tags: list[str] = field(default_factory=list)
    face_caption: str | None = None
    captioner: str = ""             # facts | manifest | endpoint | reference
    model: str | None = None
    prompt_id: str | None = None
    score: float | None = None      # agreement with the video (vote.py), where a scorer ran
    verdicts: list[str] = field(default_factory=list)   # why rejected or repaired ("refusal", "repetition_loop"...)
    error: str | None = None        # the captioner could not caption this clip (the row keeps the reason)
    n_requests: int = 0             # requests actually sent (0 when all came from the cache)

    def row(self, clip_id: str) -> dict:
        s = {k: self.structured.get(k) for k in STRUCTURED_FIELDS}
        return {"clip_id": clip_id, "short": self.short, "long": self.long,
                "structured": {k: (None if v is None else str(v)) for k, v in s.items()},
                "subject_tags": list(self.subject_tags), "object_tags": list(self.object_tags),
                "background_tags": list(self.background_tags), "face_caption": self.face_caption,
                "captioner": self.captioner, "model": self.model, "prompt_id": self.prompt_id,
                "score": self.score, "verdicts": list(self.verdicts), "error": self.error}


class Captioner:
    """One captioning backend. `name` is what goes into the `captioner` column."""
    name: str = ""
    model: str | None = None

    def config(self) -> dict:
        """What decides this captioner's output (hashed into the stage's journal stamp)."""
        return {"name": self.name, "model": self.model}

    def setup(self) -> None:
        """Load models / open clients, once per worker."""

    def caption(self, clip: ClipInput) -> Caption:
        raise NotImplementedError
