"""A file that holds only a still picture is not a video (issue 12): a PNG renamed .mp4 and an
audio file whose only picture is attached cover art get an error row saying so."""
from __future__ import annotations

import shutil

import av
import cv2
import numpy as np
import pytest
import skimage.data

from s2vforge.media.probe import ProbeError, probe


@pytest.fixture
def png_as_mp4(tmp_path):
    png = tmp_path / "photo.png"
    cv2.imwrite(str(png), skimage.data.astronaut()[:, :, ::-1])
    return shutil.copyfile(png, tmp_path / "photo.mp4")


@pytest.fixture
def audio_with_cover_art(tmp_path):
    path = tmp_path / "song.m4a.mp4"
    with av.open(str(path), "w") as out:
        audio = out.add_stream("aac", rate=16000)
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        pic = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24").reformat(format="yuvj420p")
        pic.pts = 0
        for p in [*cover.encode(pic), *cover.encode()]:
            out.mux(p)
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        sound.sample_rate, sound.pts = 16000, 0
        for p in [*audio.encode(sound), *audio.encode()]:
            out.mux(p)
    return path


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
