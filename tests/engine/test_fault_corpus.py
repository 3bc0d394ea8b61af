"""Issue 12's done-when: one run over a corpus mixing every bad input with good files gives one
row per input, exit 1, every good file's clips intact (the very bytes a run on the good files
alone gives), every written clip decodable with the frames its row says, and identical tables
on rerun."""
from __future__ import annotations

import json

import av
import pyarrow.parquet as pq
import pytest

from s2vforge.cli import run_curate
from s2vforge.corpus.faults import build_fault_corpus


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, fast_recipe):
    root = tmp_path_factory.mktemp("mixed")
    corpus = build_fault_corpus(root / "corpus")
    ds = root / "ds"
    code = run_curate(corpus.inputs, ds, str(fast_recipe), 2, False, quiet=True)
    first = {t: (ds / f"{t}.parquet").read_bytes() for t in ("videos", "clips")}
    return {"corpus": corpus, "ds": ds, "code": code, "first": first, "root": root}


def test_one_row_per_input_and_exit_1(mixed):
    assert mixed["code"] == 1
    videos = pq.read_table(mixed["ds"] / "videos.parquet").to_pylist()
    assert len(videos) == mixed["corpus"].expected_rows
    assert len({v["video_id"] for v in videos}) == len(videos)
    by_path = {v["path"]: v for v in videos}
    for where, needle in mixed["corpus"].expected_errors.items():
        row = by_path.get(where)
        assert row is not None, f"no row for {where}"
        assert row["status"] == "error" and needle in (row["error"] or ""), row
    statuses = [v["status"] for v in videos]
    assert statuses.count("duplicate") == 2          # the good files listed again by the manifests


def test_good_files_clips_are_intact(mixed, fast_recipe):
    alone = mixed["root"] / "alone"
    assert run_curate([str(p) for p in mixed["corpus"].good], alone, str(fast_recipe), 1, False, quiet=True) == 0
    want = pq.read_table(alone / "clips.parquet").to_pylist()
    ids = {c["video_id"] for c in want}
    got = [c for c in pq.read_table(mixed["ds"] / "clips.parquet").to_pylist() if c["video_id"] in ids]
    assert got == want and any(c["keep"] for c in want)
    for c in want:
        if c["path"]:
            assert (mixed["ds"] / c["path"]).read_bytes() == (alone / c["path"]).read_bytes()


def test_every_written_clip_decodes_to_its_rows_frames(mixed):
    clips = [c for c in pq.read_table(mixed["ds"] / "clips.parquet").to_pylist() if c["path"]]
    assert clips
    for c in clips:
        with av.open(str(mixed["ds"] / c["path"])) as f:
            n = sum(1 for _ in f.decode(video=0))
        assert n == c["end_frame"] - c["start_frame"], (c["clip_id"], n)


def test_rerun_gives_identical_tables_and_redoes_nothing(mixed, fast_recipe):
    code = run_curate(mixed["corpus"].inputs, mixed["ds"], str(fast_recipe), 2, False, quiet=True)
    assert code == 1
    for t, data in mixed["first"].items():
        assert (mixed["ds"] / f"{t}.parquet").read_bytes() == data, t
    summary = json.loads((mixed["ds"] / "curate_run.json").read_text())["summary"]
    assert summary["n_skipped_done"] == summary["n_items"] and summary["repaired"] == {}
