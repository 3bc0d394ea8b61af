"""find_duplicates on planted vectors: k-means path = exact path, the keep rule, bad rows, ids."""
from __future__ import annotations

import math

import numpy as np
import pytest

from s2vforge.stages.export.dedup import cluster_id, find_duplicates, kmeans_cells
from s2vforge.stages.recipe_keys import MissingRecipeKey


def planted(n_groups: int = 120, dim: int = 64, seed: int = 0):
    """Unit vectors in groups of 1-5 near-copies (cosine to their base ~0.93-0.99) around random
    bases; a group's truth is its members. Singletons pad the set."""
    rng = np.random.default_rng(seed)
    rows, vecs, truth = [], [], {}
    for g in range(n_groups):
        base = rng.normal(size=dim)
        base /= np.linalg.norm(base)
        members = []
        for k in range(int(rng.integers(1, 6))):
            noise = rng.normal(size=dim)
            noise -= (noise @ base) * base
            noise /= np.linalg.norm(noise)
            angle = rng.uniform(0.0, 0.3) if k else 0.0      # cos 0.955..1 to the base
            v = math.cos(angle) * base + math.sin(angle) * noise
            cid = f"g{g:03d}-{k}"
            rows.append({"clip_id": cid, "video_id": f"v{g}-{k}", "width": 640 - 64 * k, "height": 360,
                         "duration_s": 4.0, "score_aesthetic": 5.0})
            vecs.append(v)
            members.append(cid)
        truth[f"g{g:03d}"] = members
    return rows, np.asarray(vecs, np.float32), truth


CFG = {"backend": "embedded", "threshold": {"embedded": 0.9}, "keep_best_by": ["resolution", "duration_s",
       "score_aesthetic"], "exact_max_clips": 10 ** 6, "kmeans_cells": None, "kmeans_probe": 2, "kmeans_iter": 25,
       "seed": 0}


def test_kmeans_path_equals_exact_path_on_planted_near_duplicates():
    rows, vecs, truth = planted()
    assert len(rows) > 300
    exact = find_duplicates(rows, vecs, CFG)
    kmeans = find_duplicates(rows, vecs, {**CFG, "exact_max_clips": 0})
    assert kmeans_cells(len(rows), CFG) > 4                # really split into cells, not one
    assert kmeans == exact
    found = {}
    for cid, d in exact.items():
        found.setdefault(d["cluster"], []).append(cid)
    assert sorted(map(sorted, found.values())) == sorted(map(sorted, truth.values()))
    for members in truth.values():                          # the biggest frame is kept
        assert exact[members[0]]["duplicate_of"] is None
        assert all(exact[m]["duplicate_of"] == members[0] for m in members[1:])


def test_a_probe_finds_pairs_across_a_cell_border():
    """Pairs split between cells are found through the probe of the nearest other cells."""
    rows, vecs, _ = planted(n_groups=200, seed=3)
    exact = find_duplicates(rows, vecs, CFG)
    no_probe = find_duplicates(rows, vecs, {**CFG, "exact_max_clips": 0, "kmeans_cells": 40, "kmeans_probe": 0})
    probed = find_duplicates(rows, vecs, {**CFG, "exact_max_clips": 0, "kmeans_cells": 40, "kmeans_probe": 4})
    assert probed == exact
    assert no_probe != exact        # with 40 cells and no probe, some border pair is lost (the probe matters)


def test_rank_rule_resolution_then_duration_then_score_then_clip_id():
    v = np.ones((5, 8), np.float32) / math.sqrt(8)
    rows = [
        {"clip_id": "a", "width": 320, "height": 180, "duration_s": 9.0, "score_aesthetic": 9.0},
        {"clip_id": "b", "width": 640, "height": 360, "duration_s": 4.0, "score_aesthetic": 4.0},
        {"clip_id": "c", "width": 640, "height": 360, "duration_s": 5.0, "score_aesthetic": 3.0},
        {"clip_id": "d", "width": 640, "height": 360, "duration_s": 5.0, "score_aesthetic": None},
        {"clip_id": "e", "width": 640, "height": 360, "duration_s": 5.0, "score_aesthetic": 3.0},
    ]
    assert find_duplicates(rows, v, CFG)["a"]["duplicate_of"] == "c"       # c ties e on all keys: smaller id
    by_score = find_duplicates(rows, v, {**CFG, "keep_best_by": ["score_aesthetic"]})
    assert by_score["c"]["duplicate_of"] == "a"
    no_keys = find_duplicates(rows, v, {**CFG, "keep_best_by": []})
    assert no_keys["e"]["duplicate_of"] == "a"


def test_rows_without_a_usable_vector_are_never_merged():
    rows, vecs, truth = planted(n_groups=10)
    g = next(m for m in truth.values() if len(m) >= 3)
    i_nan, i_zero = [r["clip_id"] for r in rows].index(g[1]), [r["clip_id"] for r in rows].index(g[2])
    vecs = vecs.copy()
    vecs[i_nan] = np.nan
    vecs[i_zero] = 0.0
    out = find_duplicates(rows, vecs, CFG)
    for cid in (g[1], g[2]):
        assert out[cid] == {"duplicate_of": None, "cluster": cluster_id([cid]), "cluster_size": 1, "similarity": None}
    assert out[g[0]]["cluster_size"] == len(g) - 2


def test_cluster_ids_come_from_the_members_not_the_run():
    rows, vecs, truth = planted(n_groups=30)
    full = find_duplicates(rows, vecs, CFG)
    keep = [i for i, r in enumerate(rows) if not r["clip_id"].startswith("g000")]
    part = find_duplicates([rows[i] for i in keep], vecs[keep], CFG)
    for cid, d in part.items():
        assert d["cluster"] == full[cid]["cluster"]
    assert cluster_id(["b", "a"]) == cluster_id(["a", "b"]) != cluster_id(["a"])


def test_plain_threshold_and_bad_inputs():
    rows, vecs, _ = planted(n_groups=5)
    assert find_duplicates(rows, vecs, {**CFG, "threshold": 0.9}) == find_duplicates(rows, vecs, CFG)
    with pytest.raises(MissingRecipeKey, match="export.dedup.keep_best_by"):
        find_duplicates(rows, vecs, {k: v for k, v in CFG.items() if k != "keep_best_by"})
    with pytest.raises(ValueError, match="unique"):
        find_duplicates(rows + rows[:1], np.vstack([vecs, vecs[:1]]), CFG)
    with pytest.raises(ValueError, match="vectors must be"):
        find_duplicates(rows, vecs[:-1], CFG)
    assert find_duplicates([], np.zeros((0, 8), np.float32), CFG) == {}
