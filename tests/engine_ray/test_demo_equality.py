"""Reproducible outputs (issue 11): on the demo corpus with the default recipe, `--workers 1`,
`--workers 2` and the Ray engine (a local 2-CPU Ray) write the same tables and the same clip
and thumbnail bytes. Nothing here depends on the machine's core count: x264 is pinned to one
thread and a fixed instruction set (media/clipwriter.py)."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from s2vforge.cli import run_curate
from s2vforge.corpus.synth import build_demo_corpus


@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("demo_eq") / "corpus"
    build_demo_corpus(d, size="small")
    return d


def _files(ds: Path) -> dict[str, bytes]:
    return {str(p.relative_to(ds)): p.read_bytes() for sub in ("clips", "thumbs") for p in sorted((ds / sub).glob("*"))}


def test_demo_corpus_outputs_are_identical_across_workers_and_engines(ray_session, demo_corpus, tmp_path):
    runs = {"w1": dict(workers=1), "w2": dict(workers=2), "ray": dict(workers=2, engine="ray")}
    for name, kw in runs.items():
        workers = kw.pop("workers")
        assert run_curate([str(demo_corpus)], tmp_path / name, None, workers, False, True, **kw) == 0
    ref = tmp_path / "w1"
    kept = [c for c in pq.read_table(ref / "clips.parquet").to_pylist() if c["keep"]]
    assert len(kept) >= 5
    ref_files = _files(ref)
    assert {f"clips/{c['clip_id']}.mp4" for c in kept} <= set(ref_files)
    for name in ("w2", "ray"):
        for table in ("videos.parquet", "clips.parquet"):
            assert (tmp_path / name / table).read_bytes() == (ref / table).read_bytes(), f"{table} differs in {name}"
        files = _files(tmp_path / name)
        assert sorted(files) == sorted(ref_files)
        assert [k for k in files if files[k] != ref_files[k]] == [], f"file bytes differ in {name}"
