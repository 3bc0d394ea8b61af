"""The Ray engine gives the local engine's tables, survives worker deaths, and resumes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from s2vforge.cli import run_curate
from s2vforge.engine.spec import make_spec



def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _same_table(a: Path, b: Path, drop=()) -> None:
    ta, tb = pq.read_table(a), pq.read_table(b)
    keep = [c for c in ta.column_names if c not in drop]
    assert ta.schema.equals(tb.schema)
    assert ta.select(keep).equals(tb.select(keep)), f"{a.name} differs between engines"


@pytest.fixture(scope="module")
def ray_ds(ray_session, corpus, recipe, tmp_path_factory) -> Path:
    ds = tmp_path_factory.mktemp("ray_engine") / "ds"
    assert run_curate([str(corpus)], ds, str(recipe), 2, False, True, engine="ray") == 0
    return ds


def test_curate_on_ray_writes_the_local_tables(ray_ds, local_ds):
    _same_table(local_ds / "videos.parquet", ray_ds / "videos.parquet")
    _same_table(local_ds / "clips.parquet", ray_ds / "clips.parquet")
    clips = pq.read_table(ray_ds / "clips.parquet").to_pylist()
    assert len({c["video_id"] for c in clips}) == 3 and sum(c["keep"] for c in clips) >= 3
    for c in clips:   # the clip files the Ray workers wrote are the local run's, byte for byte
        if c["keep"]:
            assert (ray_ds / c["path"]).read_bytes() == (local_ds / c["path"]).read_bytes()


def test_rerun_on_ray_skips_finished_videos(ray_ds, recipe, corpus, tmp_path):
    ds = copy_dataset(ray_ds, tmp_path / "ds")
    parts = ds / ".work" / "curate"
    markers = sorted(parts.glob("v*.json"))
    assert len(markers) == 3
    markers[0].unlink()                      # as if the run had been killed before this video finished
    before = {p.name: p.stat().st_mtime_ns for p in markers[1:]}
    assert run_curate([str(corpus)], ds, str(recipe), 2, True, True, engine="ray") == 0
    run = json.loads((ds / "curate_run.json").read_text())["summary"]
    assert run["n_skipped_done"] == 2 and run["n_ok"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in markers[1:]} == before
    assert markers[0].exists()
    _same_table(ray_ds / "clips.parquet", ds / "clips.parquet")


def test_subjects_on_ray_match_local(ray_session, local_ds, recipe, tmp_path):
    from s2vforge.recipes import load_recipe
    from s2vforge.stages.subjects.pipeline import run_subjects
    rec = load_recipe(str(recipe))
    a = copy_dataset(local_ds, tmp_path / "a")
    b = copy_dataset(local_ds, tmp_path / "b")
    sa = run_subjects(a, rec, workers=1)
    seen = []
    sb = run_subjects(b, rec, workers=2, progress=seen.append, engine=make_spec("ray", None, 2, rec))
    assert len(seen) == sb["n_clips"] == sa["n_clips"] >= 3
    assert sb["n_error"] == 0 and sb["n_kept"] == sa["n_kept"] > 0
    _same_table(a / "subjects.parquet", b / "subjects.parquet")
    for r in pq.read_table(b / "subjects.parquet").to_pylist():
        if r["crop_path"]:
            assert (b / r["crop_path"]).read_bytes() == (a / r["crop_path"]).read_bytes()


@pytest.mark.parametrize("actors", [0, 1])
def test_a_dying_worker_becomes_an_error_row_and_the_rest_finish(ray_session, tmp_path, actors):
    """The probe stage (tests/engine/probe_stage.py) on Ray tasks and actors: a raise is the
    stage's error row, a worker that dies is the driver's crash row, the rest finish once."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from probe_stage import ProbeStage
    from s2vforge.engine.driver import run_stage
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules["probe_stage"])   # Ray workers cannot import tests/
    spec = make_spec("ray", None, 2, {"resources": {"probe": {"actors": actors, "max_retries": 0}}})
    items = ["a", "boom", "b", "raise", "c", "d"]
    _, summary = run_stage(ProbeStage(), items, tmp_path, engine=spec)
    rows = {r["item"]: r for r in pq.read_table(tmp_path / "probe.parquet").to_pylist()}
    assert set(rows) == set(items)
    assert {k for k, r in rows.items() if r["status"] == "ok"} == {"a", "b", "c", "d"}
    assert sorted(p.name for p in (tmp_path / "probe").iterdir()) == [f"{k}-v1.txt" for k in "abcd"]
    assert "WorkerCrashed" in rows["boom"]["value"] and "ValueError: bad item" in rows["raise"]["value"]
    assert summary["n_error"] == 2
    if actors:   # each actor ran setup() once, however many items it took
        assert all(r["setups"] == 1 for r in rows.values() if r["status"] == "ok")


@pytest.mark.parametrize("actors", [0, 1])
def test_a_stage_that_cannot_set_up_stops_a_ray_run_with_its_reason(ray_session, tmp_path, actors):
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from probe_stage import ProbeStage
    from ray import cloudpickle
    from s2vforge.engine.driver import run_stage
    from s2vforge.engine.worker import SetupError
    cloudpickle.register_pickle_by_value(sys.modules["probe_stage"])
    spec = make_spec("ray", None, 2, {"resources": {"probe": {"actors": actors, "max_retries": 0}}})
    with pytest.raises(SetupError, match="model weights not found"):
        run_stage(ProbeStage(fail_setup=True), ["a", "b"], tmp_path, engine=spec)
