"""One local 2-CPU Ray per test session, and a small real-media corpus curated once locally."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from s2vforge.corpus.synth import load_photo, moving_shot, stitch, write_video

FPS = 25.0
SIZE = (480, 270)


@pytest.fixture(scope="session")
def ray_session():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        # address="local": a private Ray even when a stale `ray start` left /tmp/ray/ray_current_cluster
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """Three real-photo videos: a person (astronaut), an object (coffee) and a two-shot montage."""
    d = tmp_path_factory.mktemp("ray_corpus")
    write_video(d / "astro.mp4", moving_shot(load_photo("astronaut"), 2.4, FPS, SIZE, "static"), FPS, preset="ultrafast")
    write_video(d / "coffee.mp4", moving_shot(load_photo("coffee"), 2.4, FPS, SIZE, "pan"), FPS, preset="ultrafast")
    shots = [moving_shot(load_photo(n), s, FPS, SIZE, "pan") for n, s in (("chelsea", 2.2), ("rocket", 2.2))]
    stitch(d / "montage.mp4", shots, FPS, size=SIZE)
    return d


@pytest.fixture(scope="session")
def recipe(tmp_path_factory) -> Path:
    """Cheap curation (luminance only, no OCR), subjects without BRISQUE/aesthetic, and the
    Ray resources kept small for a 2-core box (one subjects actor, no crash retries)."""
    p = tmp_path_factory.mktemp("ray_recipe") / "fast.yaml"
    p.write_text(yaml.safe_dump({
        "name": "ray-fast",
        "crop": {"enabled": True, "ocr": False},
        "scorers": ["luminance"],
        "filters": {"score_luminance": {"min": 10, "max": 230}},
        "write": {"preset": "ultrafast"},
        "subjects": {"quality": {"brisque": False, "aesthetic": None}, "face_track": {"enabled": False}},
        "resources": {"subjects": {"actors": 1, "max_retries": 1}},
    }))
    return p


@pytest.fixture(scope="session")
def local_ds(corpus, recipe, tmp_path_factory) -> Path:
    from s2vforge.cli import run_curate
    ds = tmp_path_factory.mktemp("ray_local") / "ds"
    assert run_curate([str(corpus)], ds, str(recipe), 1, False, True) == 0
    return ds
