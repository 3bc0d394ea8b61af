"""The stage contract and the one driver: any stage, any worker count, same tables and files;
failures become error rows; reruns do no work; a changed config recomputes and cleans up."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from s2vforge.engine.driver import run_stage
from s2vforge.engine.spec import EngineSpec

from probe_stage import ProbeStage

ITEMS = ["a", "raise", "b", "c", "d"]


def _run(ds: Path, workers: int, stage=None, items=ITEMS):
    return run_stage(stage or ProbeStage(), items, ds, engine=EngineSpec(workers=workers))


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_files_and_error_rows_through_the_driver(tmp_path, workers):
    run, summary = _run(tmp_path / "ds", workers)
    rows = pq.read_table(tmp_path / "ds" / "probe.parquet").to_pylist()
    assert [r["item"] for r in rows] == sorted(ITEMS)                    # sorted by the declared id column
    bad = next(r for r in rows if r["item"] == "raise")
    assert bad["status"] == "error" and "ValueError: bad item" in bad["value"]
    assert {p.name for p in (tmp_path / "ds" / "probe").iterdir()} == {f"{i}-v1.txt" for i in "abcd"}
    assert summary["n_items"] == 5 and summary["n_ok"] == 4 and summary["n_error"] == 1 and summary["n_values"] == 5
    assert summary["errors"][0]["key"] == "raise"
    # setup() ran once per worker process, before its first item
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["setups"] == 1 for r in ok) and len({r["pid"] for r in ok}) <= workers
    on_disk = json.loads((tmp_path / "ds" / "probe_run.json").read_text())
    assert on_disk["summary"]["n_ok"] == 4 and on_disk["config"] == {"suffix": "v1"}


def test_worker_count_does_not_change_the_outputs(tmp_path):
    _run(tmp_path / "one", 1)
    _run(tmp_path / "two", 2)
    a = pq.read_table(tmp_path / "one" / "probe.parquet").drop_columns(["pid"])
    b = pq.read_table(tmp_path / "two" / "probe.parquet").drop_columns(["pid"])
    assert a.equals(b)


def test_a_dying_worker_costs_only_its_item(tmp_path):
    run, summary = _run(tmp_path / "ds", 2, items=["a", "boom", "b", "c"])
    rows = {r["item"]: r for r in pq.read_table(tmp_path / "ds" / "probe.parquet").to_pylist()}
    assert set(rows) == {"a", "boom", "b", "c"}
    assert rows["boom"]["status"] == "error" and "worker crashed" in rows["boom"]["value"]
    assert all(rows[k]["status"] == "ok" for k in "abc")


def test_rerun_does_no_work_and_a_changed_config_recomputes_everything(tmp_path):
    ds = tmp_path / "ds"
    _run(ds, 1)
    marker = ds / ".work" / "probe" / "a.json"
    before = marker.stat().st_mtime_ns
    _, again = _run(ds, 1)
    # finished items are not redone; the internal error ("raise") is retried, as a crash would be
    assert again["n_skipped_done"] == 4 and marker.stat().st_mtime_ns == before
    assert again["n_error"] == 1
    _, changed = _run(ds, 1, ProbeStage(suffix="v2"))
    assert changed["n_skipped_done"] == 0
    fresh = tmp_path / "fresh"
    _run(fresh, 1, ProbeStage(suffix="v2"))
    cols = ["item", "status", "value"]
    assert pq.read_table(ds / "probe.parquet").select(cols).equals(pq.read_table(fresh / "probe.parquet").select(cols))
    # the files the v1 results wrote are gone, as in a fresh v2 run
    assert sorted(p.name for p in (ds / "probe").iterdir()) == sorted(p.name for p in (fresh / "probe").iterdir())


def test_a_killed_item_leaves_nothing_that_counts(tmp_path):
    """Kill the driver (in-process engine) at its third item: the finished items resume, the
    rest run, and the tables equal an uninterrupted run's."""
    ds = tmp_path / "ds"
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
            "from s2vforge.engine.driver import run_stage; from probe_stage import ProbeStage; "
            "run_stage(ProbeStage(die_on='c'), ['a','b','c','d'], Path(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-c", code, str(ds), str(Path(__file__).parent)], capture_output=True)
    assert proc.returncode == 7
    assert sorted(p.name for p in (ds / ".work" / "probe").glob("*.json")) == ["a.json", "b.json"]
    _, summary = _run(ds, 1, items=["a", "b", "c", "d"])
    assert summary["n_skipped_done"] == 2 and summary["n_ok"] == 4
    _run(tmp_path / "ref", 1, items=["a", "b", "c", "d"])
    cols = ["item", "status", "value"]
    assert pq.read_table(ds / "probe.parquet").select(cols).equals(pq.read_table(tmp_path / "ref" / "probe.parquet").select(cols))


def test_a_commit_killed_after_its_pending_marker_is_redone_and_cleaned(tmp_path):
    """commit() first replaces the marker by a pending one (no stamp, every file old and new);
    a kill there leaves an item that is not done, and the redo removes what neither the old
    nor the new result keeps."""
    import json as _json
    ds = tmp_path / "ds"
    _run(ds, 1, items=["a", "b"])
    (ds / "probe" / "a-v2.txt").write_bytes(b"half of a v2 commit")
    (ds / ".work" / "probe" / "a.json").write_text(_json.dumps(
        {"stamp": None, "meta": None, "files": ["probe/a-v1.txt"], "pending_files": ["probe/a-v2.txt"]}))
    _, summary = _run(ds, 1, items=["a", "b"])
    assert summary["n_skipped_done"] == 1 and summary["n_ok"] == 2
    assert sorted(p.name for p in (ds / "probe").iterdir()) == ["a-v1.txt", "b-v1.txt"]


def test_an_item_whose_content_changed_is_redone(tmp_path):
    from s2vforge.engine.driver import stage_stamp
    from s2vforge.engine.journal import Journal, item_digest
    ds = tmp_path / "ds"
    _run(ds, 1, items=["a"])
    j = Journal(ds, "probe", stage_stamp(ProbeStage()), ProbeStage.tables)
    assert j.is_done("a", item_digest("a")) and not j.is_done("a", item_digest({"path": "a", "caption": "new"}))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stage_that_cannot_set_up_stops_the_run_with_one_reason(tmp_path, workers):
    from s2vforge.engine.worker import SetupError
    with pytest.raises(SetupError, match="probe: setup failed: OSError: model weights not found"):
        _run(tmp_path / "ds", workers, ProbeStage(fail_setup=True))
    assert not list((tmp_path / "ds" / ".work" / "probe").glob("*.json"))   # no item blamed, nothing "done"


def test_duplicate_keys_are_a_usage_error(tmp_path):
    with pytest.raises(ValueError, match="share a key"):
        _run(tmp_path / "ds", 1, items=["a", "a"])


def test_engines_import_no_stage():
    engine = Path(__file__).resolve().parents[2] / "src" / "s2vforge" / "engine"
    offenders = [f"{p.name}:{i + 1}" for p in engine.glob("*.py") for i, line in enumerate(p.read_text().splitlines())
                 if "from ..stages" in line or "from s2vforge.stages" in line or "import s2vforge.stages" in line]
    assert offenders == []
