"""A tiny curated dataset for the report tests, built once per session from packaged media:
kept clips (real MP4 files), a clip rejected by a score (dark, with a thumbnail), a too-short
scene (no thumbnail, no file), an unreadable input and a duplicate input."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from s2vforge.cli import run_curate
from s2vforge.corpus.synth import load_photo, moving_shot, stitch, write_video

FPS = 25.0
SIZE = (320, 180)


@pytest.fixture(scope="session")
def curated_dataset(tmp_path_factory, fast_recipe) -> Path:
    root = tmp_path_factory.mktemp("report_ds")
    corpus = root / "corpus"
    corpus.mkdir()
    shots = [moving_shot(load_photo(n), s, FPS, SIZE, "pan") for n, s in
             (("astronaut", 2.4), ("chelsea", 1.0), ("rocket", 2.4))]
    stitch(corpus / "montage.mp4", shots, FPS, size=SIZE)          # kept, too short (1 s), kept
    write_video(corpus / "dark clip.mp4",                             # rejected: score_luminance < 10
                (f // 10 for f in moving_shot(load_photo("coffee"), 2.4, FPS, SIZE, "pan")), FPS)
    shutil.copyfile(corpus / "montage.mp4", corpus / "copy of montage.mp4")   # a duplicate row
    (corpus / "broken.mp4").write_bytes(b"this is not a video")     # an error row
    ds = root / "dataset"
    # exit code 1: some inputs failed (the broken file), which is the point
    assert run_curate([str(corpus)], ds, str(fast_recipe), workers=1, as_json=False, quiet=True) in (0, 1)
    return ds


@pytest.fixture()
def dataset_copy(curated_dataset, tmp_path) -> Path:
    """A private copy of the curated dataset (tests rewrite its report)."""
    ds = tmp_path / "ds"
    shutil.copytree(curated_dataset, ds)
    return ds
