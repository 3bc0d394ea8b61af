"""A file that holds only a still picture is not a video (issue 12): a PNG renamed .mp4 and an
audio file whose only picture is attached cover art get an error row saying so."""
from __future__ import annotations

import pytest

from s2vforge.corpus.bad_inputs import write_audio_with_cover_art, write_png_as_mp4
from s2vforge.media.probe import ProbeError, probe


@pytest.fixture
def png_as_mp4(tmp_path):
    return write_png_as_mp4(tmp_path / "photo.mp4")


@pytest.fixture
def audio_with_cover_art(tmp_path):
    return write_audio_with_cover_art(tmp_path / "song.m4a.mp4")


def test_a_png_named_mp4_is_not_a_video(png_as_mp4):
    with pytest.raises(ProbeError, match="holds no moving video: one frame only"):
        probe(png_as_mp4)


def test_cover_art_is_not_a_video(audio_with_cover_art):
    with pytest.raises(ProbeError, match="holds no moving video: its only picture is attached cover art"):
        probe(audio_with_cover_art)


def test_curate_gives_them_error_rows(png_as_mp4, audio_with_cover_art, tmp_path):
    import pyarrow.parquet as pq
    from s2vforge.cli import run_curate
    assert run_curate([str(png_as_mp4), str(audio_with_cover_art)], tmp_path / "ds", None, 1, False, True) == 1
    rows = pq.read_table(tmp_path / "ds" / "videos.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["error", "error"]
    assert all("holds no moving video" in r["error"] for r in rows)
    assert pq.read_table(tmp_path / "ds" / "clips.parquet").num_rows == 0
