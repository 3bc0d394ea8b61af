"""Real-media corpora for the subjects pipeline tests (built once per session)."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from s2vforge.corpus.synth import load_photo, moving_shot, packaged_media, read_frames, write_video

FPS = 25.0
SIZE = (960, 540)
SECONDS = 2.4          # 60 frames: subject frames at 0.05/0.5/0.95 -> indices 3, 30, 56

CAPTIONS = {
    "astro.mp4": "An astronaut in an orange suit smiles next to a space shuttle model.",
    "coffee.mp4": "A cup of coffee on a red saucer on a wooden table.",
    "grace.mp4": "Une femme en uniforme de la marine regarde la caméra.",
    "brick.mp4": "",
}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """Four 2.4 s shots of real photos (static framing) and a manifest with their captions."""
    d = tmp_path_factory.mktemp("subjects_corpus")
    for name, photo in (("astro.mp4", "astronaut"), ("coffee.mp4", "coffee"), ("grace.mp4", "grace_hopper"),
                        ("brick.mp4", "brick")):
        write_video(d / name, moving_shot(load_photo(photo), SECONDS, FPS, SIZE, "static"), FPS, preset="ultrafast")
    with open(d / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "caption"])
        for name, cap in CAPTIONS.items():
            w.writerow([name, cap])
    return d


@pytest.fixture(scope="session")
def fast_recipe(tmp_path_factory) -> Path:
    """Cheap curation (luminance only, no OCR) and subjects without BRISQUE/aesthetic."""
    p = tmp_path_factory.mktemp("subjects_recipe") / "fast.yaml"
    p.write_text(yaml.safe_dump({
        "name": "subjects-fast",
        "crop": {"enabled": True, "ocr": False},
        "scorers": ["luminance"],
        "filters": {"score_luminance": {"min": 10, "max": 230}},
        "write": {"preset": "ultrafast"},
        "subjects": {"quality": {"brisque": False, "aesthetic": None}},
    }))
    return p


@pytest.fixture(scope="session")
def curated(corpus, fast_recipe, tmp_path_factory) -> Path:
    """The corpus curated by the real CLI entry point (run_curate)."""
    from s2vforge.cli import run_curate
    ds = tmp_path_factory.mktemp("subjects_ds") / "ds"
    assert run_curate([str(corpus / "manifest.csv")], ds, str(fast_recipe), 1, False, True) == 0
    return ds


@pytest.fixture(scope="session")
def backgrounds() -> dict[str, np.ndarray]:
    media = packaged_media()
    bikes = read_frames(media["bikes"], max_frames=61)
    return {"bikes": cv2.resize(bikes[60], (1280, 720), interpolation=cv2.INTER_CUBIC),
            "rocket": cv2.resize(load_photo("rocket"), (1280, 720), interpolation=cv2.INTER_AREA),
            "brick": cv2.resize(load_photo("brick"), (1280, 720), interpolation=cv2.INTER_AREA),
            "grass": cv2.resize(load_photo("grass"), (1280, 720), interpolation=cv2.INTER_AREA)}
