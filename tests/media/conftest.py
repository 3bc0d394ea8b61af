"""Real-media fixtures for scene detection and corpus builders (built once per session)."""
from __future__ import annotations

import pytest

from s2vforge.corpus.synth import BIKES_CUTS, load_photo, moving_shot, packaged_media, read_frames, stitch

FPS = 25.0
SIZE = (320, 180)
# (photo, seconds, motion): every shot >= 15 frames (PySceneDetect min_scene_len default)
PHOTO_SHOTS = (("astronaut", 2.0, "pan"), ("coffee", 1.2, "zoom"), ("chelsea", 2.4, "pan"),
               ("rocket", 0.8, "zoom"), ("grace_hopper", 2.0, "pan"), ("motorcycle_left", 1.6, "zoom"))


@pytest.fixture(scope="session")
def photo_montage(tmp_path_factory) -> dict:
    """Six real photos as moving shots with hard cuts at known frames."""
    path = tmp_path_factory.mktemp("montage") / "photo_montage.mp4"
    segs = [moving_shot(load_photo(n), s, FPS, SIZE, m, direction=(-1) ** k)
            for k, (n, s, m) in enumerate(PHOTO_SHOTS)]
    cuts = stitch(path, segs, FPS, size=SIZE)
    n = sum(int(round(s * FPS)) for _, s, _ in PHOTO_SHOTS)
    return {"path": path, "cuts": cuts, "n_frames": n}


@pytest.fixture(scope="session")
def clip_montage(tmp_path_factory) -> dict:
    """carphone + bikes (its own 4 real cuts; its last 8-frame shot dropped) + bigbuckbunny.

    Truth = the stitch boundaries plus bikes' hand-checked cuts shifted by its offset."""
    media = packaged_media()
    path = tmp_path_factory.mktemp("clips") / "clip_montage.mp4"
    bikes = read_frames(media["bikes"])[: BIKES_CUTS[-1]]
    cuts = stitch(path, [media["carphone_pristine"], bikes, media["bigbuckbunny"]], FPS, size=SIZE)
    offset = cuts[0]
    truth = sorted({*cuts, *(offset + c for c in BIKES_CUTS[:-1])})
    return {"path": path, "cuts": truth}
