"""A rerun over an existing dataset with a changed recipe gives exactly a fresh run's dataset
(issue 11: the curate journal is stamped with the recipe sections that decide its output);
a rerun with the same recipe does no work."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from s2vforge.cli import run_curate


def _recipe(base: Path, tmp_path: Path, **changes) -> Path:
    rec = yaml.safe_load(base.read_text())
    for section, vals in changes.items():
        rec[section] = {**(rec.get(section) or {}), **vals}
    out = tmp_path / f"recipe-{len(list(tmp_path.glob('recipe-*')))}.yaml"
    out.write_text(yaml.safe_dump(rec))
    return out


def _listing(ds: Path, sub: str) -> list[str]:
    return sorted(p.name for p in (ds / sub).glob("*")) if (ds / sub).is_dir() else []


@pytest.mark.parametrize("change", [{"split": {"min_s": 2.8}}, {"filters": {"score_luminance": {"min": 60, "max": 210},
                                                                            "score_motion": {"min": 0.05, "max": 50}}}],
                         ids=["split.min_s", "filters"])
def test_changed_recipe_rerun_equals_a_fresh_run(small_corpus, fast_recipe, tmp_path, change):
    corpus = str(small_corpus["dir"])
    ds = tmp_path / "ds"
    assert run_curate([corpus], ds, str(fast_recipe), 1, False, True) == 0
    before = pq.read_table(ds / "clips.parquet")
    changed = _recipe(fast_recipe, tmp_path, **change)
    assert run_curate([corpus], ds, str(changed), 1, False, True) == 0
    fresh = tmp_path / "fresh"
    assert run_curate([corpus], fresh, str(changed), 1, False, True) == 0
    for table in ("videos.parquet", "clips.parquet"):
        assert (ds / table).read_bytes() == (fresh / table).read_bytes(), table
    assert not pq.read_table(ds / "clips.parquet").equals(before), "the change must matter on this corpus"
    for sub in ("clips", "thumbs"):      # no clip or thumbnail of the old decisions is left behind
        assert _listing(ds, sub) == _listing(fresh, sub), sub
    for p in (fresh / "clips").glob("*.mp4"):
        assert (ds / "clips" / p.name).read_bytes() == p.read_bytes()
    # and the same recipe again: nothing recomputed
    assert run_curate([corpus], ds, str(changed), 1, False, True) == 0
    summary = json.loads((ds / "curate_run.json").read_text())["summary"]
    assert summary["n_skipped_done"] == summary["n_items"] == 3
