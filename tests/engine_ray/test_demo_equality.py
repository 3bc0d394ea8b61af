"""Issue 6's acceptance check: on the demo corpus, with the default recipe, the Ray engine (a local
2-CPU Ray) writes exactly the local engine's tables and clip files."""
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


def test_demo_corpus_tables_are_identical_on_both_engines(ray_session, demo_corpus, tmp_path):
    local, ray = tmp_path / "local", tmp_path / "ray"
    assert run_curate([str(demo_corpus)], local, None, 2, False, True) == 0
    assert run_curate([str(demo_corpus)], ray, None, 2, False, True, engine="ray") == 0
    for name in ("videos.parquet", "clips.parquet"):
        a, b = pq.read_table(local / name), pq.read_table(ray / name)
        assert a.schema.equals(b.schema)
        assert a.num_rows == b.num_rows > 0
        for col in a.column_names:
            assert a.column(col).equals(b.column(col)), f"{name}:{col} differs between engines"
    kept = [c for c in pq.read_table(local / "clips.parquet").to_pylist() if c["keep"]]
    assert len(kept) >= 5
    for c in kept:
        assert (ray / c["path"]).read_bytes() == (local / c["path"]).read_bytes()
