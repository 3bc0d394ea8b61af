"""Shared corpora for the curation engine tests (built once per session from packaged media)."""
from __future__ import annotations

import shutil

import pytest

from s2vforge.corpus.synth import load_photo, moving_shot, packaged_media, stitch, write_video

FPS = 25.0
SIZE = (320, 180)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> dict:
    """Three short real-media videos with known cuts: a photo montage, bikes, and a dark shot."""
    d = tmp_path_factory.mktemp("corpus")
    shots = [moving_shot(load_photo(n), s, FPS, SIZE, "pan") for n, s in
             (("astronaut", 3.0), ("coffee", 2.6), ("chelsea", 1.0), ("rocket", 3.2))]
    cuts = stitch(d / "montage.mp4", shots, FPS, size=SIZE)
    shutil.copyfile(packaged_media()["bikes"], d / "bikes.mp4")
    write_video(d / "dark clip.mp4", (f // 10 for f in moving_shot(load_photo("chelsea"), 2.4, FPS, SIZE, "pan")), FPS)
    return {"dir": d, "montage_cuts": cuts}
