"""One CLI pattern (issue 11): the same summary keys, --json that parses, exit codes 0/1/2, and
user mistakes as one escaped line, never a traceback."""
from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
from typer.testing import CliRunner

from s2vforge.cli import app

COMMON = {"stage", "dataset", "n_items", "n_ok", "n_error", "n_skipped_done", "statuses", "unavailable", "errors",
          "wall_s", "tables"}


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_curate_and_subjects_print_the_same_summary_shape(small_corpus, fast_recipe, tmp_path):
    ds = tmp_path / "ds"
    res = _invoke("curate", small_corpus["dir"], "--out", ds, "-r", fast_recipe, "-w", "1", "--json", "-q")
    assert res.exit_code == 0, res.output
    cur = json.loads(res.stdout)
    assert COMMON <= set(cur) and cur["stage"] == "curate" and cur["tables"] == {"clips": cur["n_clips"], "videos": 3}
    # a kept clip whose file and source are gone: subjects records an error row and exits 1
    kept = [c for c in pq.read_table(ds / "clips.parquet").to_pylist() if c["keep"]]
    broken = kept[0]
    (ds / broken["path"]).write_bytes(b"\x00" * 64)
    source = next(v["path"] for v in pq.read_table(ds / "videos.parquet").to_pylist()
                  if v["video_id"] == broken["video_id"])
    aside = tmp_path / "aside.mp4"
    shutil.move(source, aside)           # the session corpus is shared: put it back afterwards
    try:
        res = _invoke("subjects", ds, "-r", fast_recipe, "--json", "-q")
    finally:
        shutil.move(aside, source)
    assert res.exit_code == 1, res.output
    sub = json.loads(res.stdout)
    assert COMMON <= set(sub) and sub["stage"] == "subjects" and sub["n_error"] == 1
    assert sub["errors"][0]["key"] == broken["clip_id"] and "clip file" in sub["errors"][0]["error"]
    assert len(res.stdout) > 2000 or sub["n_items"] == len(kept)       # whole, not truncated


def test_user_mistakes_are_one_line_and_exit_2(small_corpus, tmp_path):
    for args, needle in [
        (("curate", small_corpus["dir"], "--out", tmp_path / "a", "-r", "no-such-recipe"), "unknown recipe"),
        (("curate", small_corpus["dir"], "--out", tmp_path / "b", "--engine", "spark"), "unknown engine"),
        (("curate", small_corpus["dir"], "--out", tmp_path / "c", "--address", "auto"), "only applies"),
        (("curate", tmp_path / "empty-dir-[bold]x", "--out", tmp_path / "d"), "empty-dir-[bold]x"),   # escaped
        (("subjects", tmp_path), "no clips.parquet"),
        (("pair", tmp_path), "no subjects.parquet"),
    ]:
        if "empty-dir" in str(args[1]):
            args[1].mkdir()
        res = _invoke(*args)
        assert res.exit_code == 2, (args, res.output)
        assert "Traceback" not in res.output and needle in " ".join(res.output.split()), res.output
