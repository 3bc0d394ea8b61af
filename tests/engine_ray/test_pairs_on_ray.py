"""`pair --engine ray`: the per-clip embedding runs as a Ray actor pool and the pairs table, the
banks and the embeddings equal the local engine's."""
from __future__ import annotations

import shutil

import pyarrow.parquet as pq

from s2vforge.corpus.identity import build_identity_dataset
from s2vforge.engine.spec import make_spec
from s2vforge.recipes import load_recipe
from s2vforge.stages.pairs.pipeline import run_pairs


def test_pairs_on_ray_match_local(ray_session, tmp_path):
    src = tmp_path / "src"
    build_identity_dataset(src, seed=0, scale="tiny")
    local, ray = tmp_path / "local", tmp_path / "ray"
    shutil.copytree(src, local)
    shutil.copytree(src, ray)
    recipe = load_recipe(None)
    a = run_pairs(local, recipe, workers=1)
    seen = []
    b = run_pairs(ray, recipe, workers=2, engine=make_spec("ray", None, 2, recipe), progress=seen.append)
    assert a["n_error"] == b["n_error"] == 0
    assert len(seen) == b["n_clips"] == a["n_clips"] > 0
    ta, tb = pq.read_table(local / "pairs.parquet"), pq.read_table(ray / "pairs.parquet")
    assert ta.num_rows > 0 and ta.equals(tb)
    kinds = set(ta.column("kind").to_pylist())
    assert kinds & {"cross_clip", "cross_video"}, kinds
    for cat in a["banks"]:
        ia = pq.read_table(local / "index" / cat / "ids.parquet")
        ib = pq.read_table(ray / "index" / cat / "ids.parquet")
        assert sorted(ia.column(0).to_pylist()) == sorted(ib.column(0).to_pylist())
