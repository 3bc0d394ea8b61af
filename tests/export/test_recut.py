"""Re-cutting clips to a model's frame rate and a 4k+1 length (media/recut.py), checked
against the source's own frames."""
from __future__ import annotations

import numpy as np
import pytest

from s2vforge.corpus.synth import load_photo, moving_shot, read_frames, write_video
from s2vforge.media.recut import fit_length, recut_clip, recut_indices


def test_fit_length():
    assert [fit_length(n, "4k+1") for n in (0, 1, 4, 5, 8, 9, 81, 84, 85)] == [0, 1, 1, 5, 5, 9, 81, 81, 85]
    assert fit_length(37, "any") == 37
    with pytest.raises(ValueError, match="length_rule"):
        fit_length(5, "8k")


def test_recut_indices_nearest_frame_in_time():
    # 25 -> 16 fps: output frame k shows source frame round(k * 25 / 16)
    idx = recut_indices(125, 25.0, 16.0, 81, "4k+1")
    assert len(idx) == 77                        # 5 s hold 80 frames at 16 fps -> the longest 4k+1 is 77
    assert idx[:6] == [0, 2, 3, 5, 6, 8] and idx[-1] == round(76 * 25 / 16)
    assert recut_indices(300, 25.0, 16.0, 81, "4k+1") == [round(k * 25 / 16) for k in range(81)]
    assert recut_indices(10, 25.0, None, None, "any") == list(range(10))
    assert recut_indices(10, 25.0, None, None, "4k+1") == list(range(9))
    assert recut_indices(0, 25.0, 16.0, 81, "4k+1") == []
    # upsampling repeats frames and never reads past the end
    up = recut_indices(10, 10.0, 25.0, None, "any")
    assert max(up) == 9 and len(up) == 23


def test_recut_clip_frames_match_their_source_frames(tmp_path):
    src = tmp_path / "src.mp4"
    write_video(src, moving_shot(load_photo("astronaut"), 3.0, 25.0, (160, 96), "pan", speed=0.8), 25.0)
    source = read_frames(src)
    idx = recut_indices(len(source), 25.0, 16.0, 33, "4k+1")
    dest = tmp_path / "out.mp4"
    n = recut_clip(src, dest, idx, 16.0, crf=16, preset="ultrafast")
    out = read_frames(dest)
    assert n == len(out) == 33
    for k, frame in enumerate(out):
        err = [np.mean((frame.astype(float) - source[j].astype(float)) ** 2) for j in range(len(source))]
        assert int(np.argmin(err)) == idx[k] or err[idx[k]] <= min(err) * 1.05
    import av
    with av.open(str(dest)) as c:
        assert float(c.streams.video[0].average_rate) == 16.0
    # reproducible bytes
    dest2 = tmp_path / "out2.mp4"
    recut_clip(src, dest2, idx, 16.0, crf=16, preset="ultrafast")
    assert dest.read_bytes() == dest2.read_bytes()
