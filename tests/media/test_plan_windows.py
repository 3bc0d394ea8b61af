"""Scenes -> 2-20 s clip windows (OpenHumanVid rule), CFR and VFR."""
from __future__ import annotations

import numpy as np
import pytest

from s2vforge.media.scenes import plan_windows


def test_drop_keep_split_at_25fps():
    plan = plan_windows([30, 100, 700], 1200, 25.0)
    assert plan.too_short == [(0, 30)]                          # 1.2 s
    assert plan.windows == [(30, 100),                          # 2.8 s
                            (100, 400), (400, 700),             # 24 s -> 2 x 12 s
                            (700, 1200)]                        # exactly 20 s: one window


def test_bounds_are_inclusive():
    plan = plan_windows([50], 99, 25.0)                         # 2.0 s, then 1.96 s
    assert plan.windows == [(0, 50)] and plan.too_short == [(50, 99)]


def test_split_windows_never_exceed_max_at_ntsc_rate():
    fps = 30000 / 1001
    n = int(60.0 * fps) + 7                                     # one 60.2 s scene
    plan = plan_windows([], n, fps)
    durs = [(e - s) / fps for s, e in plan.windows]
    assert len(durs) == 4 and max(durs) <= 20.0 and min(durs) >= 2.0
    assert max(durs) - min(durs) <= 1.5 / fps                   # equal up to one frame


def test_vfr_uses_presentation_times():
    # 30 frames 100 ms apart: 3.0 s of video (1.2 s if frames were counted at 25 fps)
    times = np.arange(30) * 0.1
    assert plan_windows([], 30, times).windows == [(0, 30)]
    assert plan_windows([], 30, 25.0).too_short == [(0, 30)]
    # n+1 times: the last entry is the end of the stream (a long last frame counts)
    dense = np.arange(30) * 0.05
    assert plan_windows([], 30, dense).too_short == [(0, 30)]             # 1.5 s
    assert plan_windows([], 30, list(dense) + [2.5]).windows == [(0, 30)]  # 2.5 s
    # 25 s of VFR video split at the frame nearest the middle in time, not in count
    t = np.concatenate([np.arange(100) * 0.05, 5.0 + np.arange(200) * 0.1])  # 5 s dense + 20 s sparse
    (a, b), (c, d) = plan_windows([], 300, t).windows
    assert (a, d) == (0, 300) and b == c and abs(t[b] - 12.5) <= 0.1
    with pytest.raises(ValueError):
        plan_windows([], 30, times[:10])
    with pytest.raises(ValueError):
        plan_windows([], 30, times[::-1])                                   # time must not run backwards


def test_windows_and_short_scenes_tile_the_video():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, 3000))
        cuts = list(rng.integers(-5, n + 5, size=int(rng.integers(0, 12))))  # junk included
        plan = plan_windows(cuts, n, 25.0)
        pieces = sorted(plan.windows + plan.too_short)
        assert pieces[0][0] == 0 and pieces[-1][1] == n
        assert all(p[1] == q[0] for p, q in zip(pieces, pieces[1:]))
        assert all(2.0 <= (e - s) / 25 <= 20.0 for s, e in plan.windows)
        assert all((e - s) / 25 < 2.0 for s, e in plan.too_short)
