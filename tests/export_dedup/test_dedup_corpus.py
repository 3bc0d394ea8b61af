"""find_duplicates over the embedded vectors of the small real-media corpus, against its truth."""
from __future__ import annotations

import random

from s2vforge.corpus.duplicates import CLAIMED, truth_pairs
from s2vforge.stages.export.dedup import cluster_id, find_duplicates


def _clusters(result: dict) -> dict[str, set[str]]:
    by: dict[str, set[str]] = {}
    for cid, d in result.items():
        by.setdefault(d["cluster"], set()).add(cid)
    return by


def test_the_corpus_holds_every_claimed_transformation_and_hard_negative(small_corpus):
    truth, root = small_corpus
    transforms = {r["transform"] for r in truth["clips"]}
    assert set(CLAIMED) <= transforms and {"distorted", "window_w1", "window_w2"} <= transforms
    assert {h["kind"] for h in truth["hard_negatives"]} == {"same_photo_other_motion", "similar_colours", "other_shot"}
    assert all((root / r["path"]).is_file() for r in truth["clips"])


def test_every_true_duplicate_is_found_and_no_other_footage_merged(small_corpus, small_vectors, dedup_cfg):
    truth, _ = small_corpus
    rows, vectors = small_vectors
    result = find_duplicates(rows, vectors, dedup_cfg)
    assert set(result) == {r["clip_id"] for r in rows}
    footage = {r["clip_id"]: r["footage"] for r in truth["clips"]}
    for members in _clusters(result).values():          # each cluster is exactly one footage, all of it
        fids = {footage[m] for m in members}
        assert len(fids) == 1, f"different footage merged: {sorted(members)}"
        assert members == set(truth["footage"][fids.pop()]["members"])
    cluster = {c: d["cluster"] for c, d in result.items()}
    missed = [p for p in truth_pairs(truth) if cluster[p[0]] != cluster[p[1]]]
    assert not missed
    merged = [h for h in truth["hard_negatives"] if cluster[h["a"]] == cluster[h["b"]]]
    assert not merged


def test_the_kept_clip_is_the_best_copy_by_the_rule(small_corpus, small_vectors, dedup_cfg):
    truth, _ = small_corpus
    rows, vectors = small_vectors
    result = find_duplicates(rows, vectors, dedup_cfg)
    vec = {r["clip_id"]: v.astype("float64") for r, v in zip(rows, vectors)}
    for fid, f in truth["footage"].items():
        best = f["best"]
        assert result[best]["duplicate_of"] is None and result[best]["similarity"] is None
        for m in f["members"]:
            if m != best:
                assert result[m]["duplicate_of"] == best, (fid, m)
                assert abs(result[m]["similarity"] - float(vec[m] @ vec[best])) < 1e-5
        assert result[best]["cluster"] == cluster_id(f["members"])
        assert result[best]["cluster_size"] == len(f["members"])
    # the windows differ only in length: the longer one is kept (resolution ties, then duration)
    assert truth["footage"]["motorcycle_long"]["best"] == "motorcycle_long--window_w1"


def test_the_result_does_not_depend_on_the_input_order(small_vectors, dedup_cfg):
    rows, vectors = small_vectors
    expected = find_duplicates(rows, vectors, dedup_cfg)
    for seed in range(3):
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        got = find_duplicates([rows[i] for i in order], vectors[order], dedup_cfg)
        assert got == expected and list(got) == sorted(got)


def test_the_same_vectors_through_the_kmeans_path_give_the_same_clusters(small_vectors, dedup_cfg):
    rows, vectors = small_vectors
    exact = find_duplicates(rows, vectors, {**dedup_cfg, "exact_max_clips": 10 ** 6})
    cells = find_duplicates(rows, vectors, {**dedup_cfg, "exact_max_clips": 0, "kmeans_cells": 3, "kmeans_probe": 1})
    assert cells == exact
