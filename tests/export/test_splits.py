"""Leak-free splits (stages/export/splits.py): nothing linked is split apart, the draw is
deterministic for a seed and independent of row order."""
from __future__ import annotations

import random

import pytest

from s2vforge.stages.export.splits import assign_splits, parse_split_spec


def _samples(n_groups=400, per_group=3):
    return [{"sample_id": f"g{g:04d}-c{c}", "group_id": f"g{g:04d}"} for g in range(n_groups) for c in range(per_group)]


def test_every_group_lands_in_one_split_and_fractions_hold_over_groups():
    samples = _samples()
    out = assign_splits(samples, [], {"val": 0.1, "test": 0.05}, seed=0)
    by_group = {}
    for s in samples:
        by_group.setdefault(s["group_id"], set()).add(out[s["sample_id"]][0])
        assert out[s["sample_id"]][1] == s["group_id"]
    assert all(len(v) == 1 for v in by_group.values())
    counts = {k: sum(1 for v in by_group.values() if k in v) for k in ("train", "val", "test")}
    assert 0.06 * 400 < counts["val"] < 0.14 * 400 and 0.02 * 400 < counts["test"] < 0.08 * 400


def test_links_join_components_across_groups():
    samples = _samples(50, 2)
    # identity cluster joining three groups, a duplicate cluster joining two more
    links = [("s:g0001-c0", "i:alice"), ("s:g0002-c1", "i:alice"), ("s:g0003-c0", "i:alice"),
             ("s:g0010-c0", "d:dup1"), ("s:g0011-c1", "d:dup1"), ("s:g0020-c0", "g:g0021")]
    for seed in range(20):
        out = assign_splits(samples, links, {"val": 0.3, "test": 0.3}, seed=seed)
        assert len({out[f"g000{g}-c{c}"][0] for g in (1, 2, 3) for c in (0, 1)}) == 1
        assert len({out[f"g001{g}-c{c}"][0] for g in (0, 1) for c in (0, 1)}) == 1
        assert len({out[f"g002{g}-c{c}"][0] for g in (0, 1) for c in (0, 1)}) == 1


def test_deterministic_and_order_independent():
    samples = _samples(100, 2)
    links = [("s:g0001-c0", "i:x"), ("s:g0050-c1", "i:x")]
    a = assign_splits(samples, links, {"val": 0.2}, seed=7)
    shuffled = samples[:]
    random.Random(3).shuffle(shuffled)
    b = assign_splits(shuffled, list(reversed(links)), {"val": 0.2}, seed=7)
    assert a == b
    c = assign_splits(samples, links, {"val": 0.2}, seed=8)
    assert a != c


def test_growth_does_not_move_existing_groups():
    small = _samples(100, 1)
    big = small + [{"sample_id": f"new{i}", "group_id": f"new{i}"} for i in range(100)]
    a = assign_splits(small, [], {"val": 0.2, "test": 0.1}, seed=0)
    b = assign_splits(big, [], {"val": 0.2, "test": 0.1}, seed=0)
    assert all(b[k] == v for k, v in a.items())


@pytest.mark.parametrize("spec, message", [("val", "NAME=FRACTION"), ("val=x", "NAME=FRACTION"),
                                           ("val=1.5", "NAME=FRACTION"), ("val=0.6,test=0.5", "nothing for train"),
                                           ("train=0.9", "train takes what")])
def test_bad_split_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_split_spec(spec)


def test_split_spec():
    assert parse_split_spec("val=0.02, test=0.01") == {"val": 0.02, "test": 0.01}


def test_split_group_names_the_smallest_source_group_of_the_component():
    samples = [{"sample_id": "a1", "group_id": "gB"}, {"sample_id": "b1", "group_id": "gA"},
               {"sample_id": "c1", "group_id": "gC"}]
    out = assign_splits(samples, [("s:a1", "d:dup-000"), ("s:b1", "d:dup-000"), ("s:c1", "i:zz")],
                        {"val": 0.5}, seed=1)
    assert out["a1"][1] == out["b1"][1] == "gA" and out["c1"][1] == "gC"
