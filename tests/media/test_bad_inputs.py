"""Bad inputs exist and are bad (or odd-but-valid) exactly as claimed."""
from __future__ import annotations

import os

import av
import pytest

from s2vforge.corpus.bad_inputs import (EXPECTED, HUGE_SIZE, NON_UTF8_NAME, ROTATED_CODED_SIZE, VFR_TIMES,
                                        write_bad_inputs)
from s2vforge.corpus.synth import frame_times, video_info


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return write_bad_inputs(tmp_path_factory.mktemp("bad"))


def test_every_expected_file_is_written(bad):
    assert set(bad) == set(EXPECTED)
    assert all(p.exists() for p in bad.values())
    assert {e.outcome for e in EXPECTED.values()} == {"error", "ok", "ok-with-rotation", "ok-vfr", "partial"}


@pytest.mark.parametrize("name", ["zero_byte", "truncated", "not_a_video"])
def test_unopenable(bad, name):
    with pytest.raises(av.error.InvalidDataError):
        av.open(str(bad[name]))


def test_zero_and_truncated_sizes(bad):
    assert bad["zero_byte"].stat().st_size == 0
    assert 0 < bad["truncated"].stat().st_size < 30_000


def test_truncated_faststart_fails_mid_decode(bad):
    with av.open(str(bad["truncated_faststart"])) as c:
        s = c.streams.video[0]
        declared, n = s.frames, 0
        with pytest.raises(av.error.FFmpegError):
            for _ in c.decode(s):
                n += 1
    assert declared == 50 and 0 < n < declared


def test_audio_only_has_no_video(bad):
    with av.open(str(bad["audio_only"])) as c:
        assert not c.streams.video and c.streams.audio[0].codec_context.name == "aac"
        assert c.duration / 1e6 == pytest.approx(1.0, abs=0.1)


def test_huge_resolution_is_tiny_file(bad):
    info = video_info(bad["huge_resolution"])
    assert (info["width"], info["height"]) == HUGE_SIZE and info["n_frames"] == 1
    assert bad["huge_resolution"].stat().st_size < 200_000


def test_rotated_and_vfr(bad):
    rot = video_info(bad["rotated"])
    assert rot["rotation"] == 90 and (rot["width"], rot["height"]) == ROTATED_CODED_SIZE
    assert frame_times(bad["vfr"]) == pytest.approx(list(VFR_TIMES), abs=1e-3)


def test_awkward_names_are_valid_videos(bad, tmp_path):
    raw = os.fsencode(bad["non_utf8_name"])
    assert raw.endswith(NON_UTF8_NAME)
    with pytest.raises(UnicodeDecodeError):
        os.path.basename(raw).decode("utf-8")
    assert video_info(bad["non_utf8_name"])["n_frames"] == 25
    shell = bad["shell_chars_name"]
    assert all(ch in shell.name for ch in " '\";$(`&")
    assert video_info(shell)["n_frames"] == 25
    assert not (shell.parent / "pwned").exists()
