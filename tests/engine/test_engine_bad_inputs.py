"""Every kind of bad input gets a row with a clear message; the run goes on; exit code says so."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from s2vforge.cli import run_curate
from s2vforge.corpus.bad_inputs import EXPECTED, NON_UTF8_NAME, write_bad_inputs
from s2vforge.media.decode import iter_frames


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, fast_recipe, small_corpus):
    d = tmp_path_factory.mktemp("bad")
    paths = write_bad_inputs(d / "in")
    shutil.copyfile(small_corpus["dir"] / "bikes.mp4", d / "in" / "good.mp4")
    shutil.copyfile(small_corpus["dir"] / "bikes.mp4", d / "in" / "good_copy.mp4")   # same content twice
    ds = d / "ds"
    code = run_curate([str(d / "in"), str(d / "in" / "does_not_exist.mp4")], ds, str(fast_recipe), 2, False, True)
    videos = {os.fsencode(r["path_raw"]): r for r in pq.read_table(ds / "videos.parquet").to_pylist()}
    by_name = {os.path.basename(k): v for k, v in videos.items()}
    return {"code": code, "paths": paths, "rows": by_name, "ds": ds}


def test_every_input_has_exactly_one_row(bad_run):
    names = {os.path.basename(os.fsencode(p)) for p in bad_run["paths"].values()}
    names |= {b"good.mp4", b"good_copy.mp4", b"does_not_exist.mp4"}
    assert set(bad_run["rows"]) == names
    assert bad_run["code"] == 1          # some inputs failed


@pytest.mark.parametrize("name,needle", [
    ("zero_byte.mp4", "empty file"),
    ("truncated.mp4", "not a readable media file"),
    ("truncated_faststart.mp4", "trunc"),
    ("not_a_video.mp4", "not a readable media file"),
    ("audio_only.m4a", "no video stream"),
    ("huge_resolution.mp4", "exceeds the recipe limit"),
    ("does_not_exist.mp4", "no such file"),
])
def test_error_rows_say_why(bad_run, name, needle):
    row = bad_run["rows"][name.encode()]
    assert row["status"] == "error"
    assert needle in row["error"].lower()


def test_duplicate_content_is_marked(bad_run):
    a, b = bad_run["rows"][b"good.mp4"], bad_run["rows"][b"good_copy.mp4"]
    assert {a["status"], b["status"]} == {"ok", "duplicate"}
    dup = a if a["status"] == "duplicate" else b
    assert "same content as" in dup["error"]


def test_rotated_vfr_and_odd_names_are_processed(bad_run):
    rows = bad_run["rows"]
    rot = rows[b"rotated.mp4"]
    assert rot["status"] == "ok" and rot["rotation"] == 90 and (rot["width"], rot["height"]) == (180, 320)
    # decoded frames come out upright: the display rotation of ffmpeg (counter-clockwise by the angle)
    first = next(iter_frames(str(bad_run["paths"]["rotated"])))[2]
    assert first.shape[:2] == (320, 180)
    vfr = rows[b"vfr.mp4"]
    assert vfr["status"] == "ok" and vfr["vfr"] is True
    assert vfr["duration_s"] == pytest.approx(1.60, abs=0.05)     # from pts, not n_frames / fps (0.8 s)
    assert rows[NON_UTF8_NAME]["status"] == "ok"
    assert "\\xff" in rows[NON_UTF8_NAME]["path"]                # shown escaped, exact bytes in path_raw
    shell = [k for k in rows if b"$(touch pwned)" in k]
    assert shell and rows[shell[0]]["status"] == "ok"
    assert not os.path.exists("pwned") and not (bad_run["ds"] / "pwned").exists()


def test_expected_table_covers_all_kinds():
    assert {"zero_byte", "truncated", "not_a_video", "audio_only", "huge_resolution", "rotated", "vfr",
            "non_utf8_name"} <= set(EXPECTED)


def test_rotation_matches_ffmpeg_display(tmp_path):
    """A white block top-left in the coded frame of a rotation=90 stream is shown bottom-left
    by ffmpeg (checked with ffmpeg's autorotate when this test was written)."""
    from s2vforge.corpus.synth import write_video
    coded = np.zeros((180, 320, 3), np.uint8)
    coded[:40, :80] = 255
    write_video(tmp_path / "r.mp4", [coded] * 3, 25.0, rotation=90)
    shown = next(iter_frames(str(tmp_path / "r.mp4")))[2]
    ys, xs = np.where(shown[..., 0] > 128)
    assert shown.shape[:2] == (320, 180)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == pytest.approx((240, 319, 0, 39), abs=2)
