"""Identity clustering on a small hand-made graph."""
from __future__ import annotations

import numpy as np
import pytest

from s2vforge.recipes import load_recipe
from s2vforge.stages.pairs.cluster import cluster_identities as _cluster_identities, cluster_summary

CLUSTER = load_recipe(None)["pairs"]["cluster"]      # method components, threshold null


def cluster_identities(n, edges, **kw):
    """cluster_identities with the default recipe's pairs.cluster for what a test does not set."""
    return _cluster_identities(n, edges, **{**CLUSTER, **kw})

# nodes 0..8: {0,1,2} a tight triangle, {3,4} a strong pair, 5 joined to 4 by one weak edge,
# {6,7} joined to 2 by a single strong but lone edge (the chaining case), 8 alone.
EDGES = [(0, 1, 0.9), (1, 2, 0.85), (0, 2, 0.8), (3, 4, 0.95), (4, 5, 0.3), (7, 6, 0.9), (2, 6, 0.75),
         (1, 0, 0.2), (5, 5, 1.0)]   # a duplicate (max weight wins) and a self-loop (ignored)


def test_components_all_edges():
    labels = cluster_identities(9, EDGES)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 2]


def test_components_with_threshold():
    labels = cluster_identities(9, EDGES, threshold=0.5)
    assert labels.tolist() == [0, 0, 0, 1, 1, 2, 0, 0, 3]     # the weak 4-5 edge no longer joins


def test_agglomerative_resists_a_lone_chaining_edge():
    labels = cluster_identities(9, EDGES, method="agglomerative", threshold=0.5)
    # {6,7} average similarity to {0,1,2} is (0.75 + 0 * 5) / 6 = 0.125 < 0.5: kept apart
    assert labels.tolist() == [0, 0, 0, 1, 1, 2, 3, 3, 4]
    loose = cluster_identities(9, EDGES, method="agglomerative", threshold=0.1)
    assert loose.tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 2]


def test_labels_deterministic_and_ordered_by_smallest_member():
    rng = np.random.default_rng(0)
    shuffled = [EDGES[k] for k in rng.permutation(len(EDGES))]
    for method, t in (("components", 0.5), ("agglomerative", 0.5)):
        a = cluster_identities(9, EDGES, method=method, threshold=t)
        b = cluster_identities(9, shuffled, method=method, threshold=t)
        assert a.tolist() == b.tolist()
        first_seen = [int(x) for x in dict.fromkeys(a.tolist())]
        assert first_seen == list(range(a.max() + 1))


def test_edge_cases():
    assert cluster_identities(0, []).tolist() == []
    assert cluster_identities(3, []).tolist() == [0, 1, 2]
    assert cluster_identities(3, [], method="agglomerative", threshold=0.5).tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        cluster_identities(3, [(0, 3, 1.0)])
    with pytest.raises(ValueError):
        cluster_identities(3, [(0, 1, 1.0)], method="kmeans")


def test_summary():
    labels = cluster_identities(9, EDGES, threshold=0.5)
    s = cluster_summary(labels)
    assert s == {"n_nodes": 9, "n_clusters": 4, "n_singletons": 2, "sizes": {1: 2, 2: 1, 5: 1},
                 "largest": 5, "mean_size": 2.25}
    assert cluster_summary(np.array([], int))["n_clusters"] == 0


def test_larger_random_graph_matches_planted_identities():
    """200 subjects of 20 identities: 80% of within-identity edges at 0.7-1.0, 30 wrong edges at 0.3-0.6."""
    rng = np.random.default_rng(1)
    truth = np.repeat(np.arange(20), 10)
    rng.shuffle(truth)
    edges = []
    for c in range(20):
        m = np.flatnonzero(truth == c)
        for a in range(len(m)):
            for b in range(a + 1, len(m)):
                if rng.random() < 0.8:
                    edges.append((int(m[a]), int(m[b]), float(rng.uniform(0.7, 1.0))))
    for _ in range(30):
        a, b = rng.integers(0, 200, 2)
        if truth[a] != truth[b]:
            edges.append((int(a), int(b), float(rng.uniform(0.3, 0.6))))
    naive = cluster_identities(200, edges)
    assert cluster_summary(naive)["n_clusters"] < 20                 # wrong edges chain identities
    labels = cluster_identities(200, edges, threshold=0.65)      # components without the weak edges
    assert cluster_summary(labels)["n_clusters"] == 20
    for c in range(20):
        assert len(set(labels[truth == c].tolist())) == 1
    # average linkage counts missing edges as distance 1.0, so it is conservative: it never merges
    # two identities, but may split off a subject with few edges
    agg = cluster_identities(200, edges, method="agglomerative", threshold=0.3)
    for k in range(agg.max() + 1):
        assert len(set(truth[agg == k].tolist())) == 1
    assert 20 <= cluster_summary(agg)["n_clusters"] <= 22
