"""Subjects: from kept clips to subject instances with boxes, masks and clean reference crops.

`run_subjects` is imported lazily so `import s2vforge.stages.subjects` stays cheap (no
mediapipe, spaCy or torch until the stage runs).
"""
from __future__ import annotations

__all__ = ["run_subjects"]


def __getattr__(name: str):
    if name == "run_subjects":
        from .pipeline import run_subjects
        return run_subjects
    raise AttributeError(name)
