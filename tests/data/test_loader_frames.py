"""Frame selection, crop geometry, buckets and settings: pure functions against worked values."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from loader_media import EXPORT_CFG
from s2vforge.data.frames import frame_indices, sample_rng
from s2vforge.data.geometry import bucket_for, cover_crop
from s2vforge.data.settings import loader_settings
from s2vforge.stages.recipe_keys import MissingRecipeKey


def test_center_start_and_stride():
    idx, s = frame_indices(100, 49 // 7, 3, "shrink_stride", "center")       # 7 frames, span 19
    assert s == 3
    assert idx.tolist() == [40, 43, 46, 49, 52, 55, 58]                     # start (100 - 19) // 2 = 40
    idx, _ = frame_indices(19, 7, 3, "skip", "center")                       # exactly fits
    assert idx.tolist() == list(range(0, 19, 3))


def test_the_49_at_stride_3_of_the_brief():
    idx, s = frame_indices(200, 49, 3, "shrink_stride", "center")
    assert s == 3 and len(idx) == 49 and idx[-1] - idx[0] == 144 and idx[0] == (200 - 145) // 2


def test_random_start_is_seeded_by_seed_epoch_and_sample():
    def start(seed, epoch, sid):
        return int(frame_indices(1000, 8, 2, "shrink_stride", "random", sample_rng(seed, epoch, sid))[0][0])

    starts = [start(0, e, "clip-a") for e in range(20)]
    assert starts == [start(0, e, "clip-a") for e in range(20)]             # same seed -> same starts
    assert len(set(starts)) > 10                                             # epochs differ
    assert starts != [start(0, e, "clip-b") for e in range(20)]              # samples differ
    assert starts != [start(1, e, "clip-a") for e in range(20)]              # seeds differ
    span = 7 * 2 + 1
    assert all(0 <= s <= 1000 - span for s in starts)


def test_short_clip_rules():
    # 8 frames, 4 at stride 3 needs 10: shrink to stride 2 (span 7, start 0 at centre of slack 1)
    assert frame_indices(8, 4, 3, "shrink_stride", "center")[0].tolist() == [0, 2, 4, 6]
    assert frame_indices(8, 4, 3, "shrink_stride", "center")[1] == 2
    # fewer frames than asked: every frame, then the last repeated
    idx, s = frame_indices(5, 8, 3, "shrink_stride", "center")
    assert idx.tolist() == [0, 1, 2, 3, 4, 4, 4, 4] and s == 1
    # pad_last keeps the stride
    idx, s = frame_indices(8, 4, 3, "pad_last", "center")
    assert idx.tolist() == [0, 3, 6, 6] and s == 3
    with pytest.raises(ValueError, match="short: skip"):
        frame_indices(8, 4, 3, "skip", "center")
    with pytest.raises(ValueError):
        frame_indices(0, 4, 3, "pad_last", "center")
    # a single frame asked never divides by zero
    assert frame_indices(1, 1, 5, "shrink_stride", "center")[0].tolist() == [0]


def test_cover_crop_geometry():
    # 1280x720 into 480x832: scale 2/3 -> 853x480, crop x 10..842
    assert cover_crop(1280, 720, 480, 832) == (853, 480, 10, 0)
    # portrait into landscape: width decides, the middle rows are kept
    assert cover_crop(720, 1280, 480, 832) == (832, 1479, 0, 499)
    # the same aspect: a plain scale, no crop
    assert cover_crop(96, 64, 32, 48) == (48, 32, 0, 0)
    with pytest.raises(ValueError):
        cover_crop(0, 10, 4, 4)


def test_bucket_is_the_closest_aspect():
    buckets = [(480, 832), (480, 480), (832, 480)]
    assert bucket_for(1920, 1080, buckets) == 0
    assert bucket_for(1000, 1100, buckets) == 1
    assert bucket_for(1080, 1920, buckets) == 2
    assert bucket_for(1000, 1000, [(10, 20), (20, 10)]) == 0                 # tie: the earlier bucket
    with pytest.raises(ValueError):
        bucket_for(0, 10, buckets)


def test_settings_come_from_the_section_and_keywords_replace_single_keys():
    st = loader_settings(EXPORT_CFG, {"num_frames": 49, "stride": None})
    assert st.num_frames == 49 and st.stride == 3 and st.size == (64, 96) and st.duplicate_mask_iou == 0.9
    with pytest.raises(TypeError, match="did you mean num_frames"):
        loader_settings(EXPORT_CFG, {"num_frame": 3})
    bad = copy.deepcopy(EXPORT_CFG)
    del bad["loader"]["short"]
    with pytest.raises(MissingRecipeKey, match="export.loader.short"):
        loader_settings(bad)
    with pytest.raises(ValueError, match="sampling"):
        loader_settings(EXPORT_CFG, {"sampling": "middle"})
    st = loader_settings(EXPORT_CFG, {"buckets": [[32, 48], [48, 32]]})
    assert st.buckets == ((32, 48), (48, 32)) and st.size is None


def test_recipe_has_every_loader_key():
    from s2vforge.recipes import load_recipe
    export = load_recipe()["export"]
    st = loader_settings(export)
    assert set(EXPORT_CFG["loader"]) <= set(export["loader"])
    assert st.num_frames >= 1 and np.isfinite(st.duplicate_mask_iou)
