"""Stage 6 of pairing: group verified subjects into identities.

Nodes are subjects, edges are verified pairs weighted by similarity in [0, 1]. OpenS2V-5M
reports its cross-video pairs by "clustering centres"; we report cluster counts and sizes the
same way (`cluster_summary`).

- "components": connected components of the edges with weight >= threshold. Fast (sparse,
  linear), but one wrong edge merges two identities (chaining).
- "agglomerative": average linkage over the edge graph (missing edges = distance 1.0), cut at
  distance 1 - threshold: a node joins a cluster only when its *average* similarity to the
  members is high, which resists single wrong edges. Run per connected component, so memory is
  quadratic in the largest component, not in n.

Labels are deterministic: clusters are numbered by their smallest member index.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

log = logging.getLogger(__name__)

# a condensed distance matrix of 6000 nodes is 18M float64 = 144 MB; beyond that one component
# falls back to thresholded components (logged) instead of exhausting memory
AGGLOMERATIVE_MAX_COMPONENT = 6000


def _edge_arrays(n: int, edges: Iterable[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, w) with i < j, self-loops dropped, duplicates reduced to their max weight."""
    arr = [(int(a), int(b), float(w)) for a, b, w in edges]
    if not arr:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    i = np.array([e[0] for e in arr], np.int64)
    j = np.array([e[1] for e in arr], np.int64)
    w = np.array([e[2] for e in arr], np.float64)
    if (i < 0).any() or (j < 0).any() or (i >= n).any() or (j >= n).any():
        raise ValueError(f"edge endpoint out of range 0..{n - 1}")
    if not np.isfinite(w).all():
        raise ValueError("edge weights must be finite")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    keep = lo != hi
    lo, hi, w = lo[keep], hi[keep], w[keep]
    if lo.size:
        order = np.lexsort((-w, hi, lo))       # per (lo, hi): the largest weight first
        lo, hi, w = lo[order], hi[order], w[order]
        first = np.ones(lo.size, bool)
        first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
        lo, hi, w = lo[first], hi[first], w[first]
    return lo, hi, w


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    g = coo_matrix((np.ones(i.size), (i, j)), shape=(n, n))
    _, labels = connected_components(g, directed=False)
    return labels


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel 0..C-1 in order of each cluster's smallest member index."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, np.int64)
    _, inv = np.unique(labels, return_inverse=True)
    inv = inv.ravel()
    first = np.full(int(inv.max()) + 1, labels.size, np.int64)
    np.minimum.at(first, inv, np.arange(labels.size))
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inv].astype(np.int64)


def _average_linkage(k: int, li: np.ndarray, lj: np.ndarray, w: np.ndarray, cut: float) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage
    d = np.ones((k, k))
    d[li, lj] = d[lj, li] = np.clip(1.0 - w, 0.0, 1.0)
    np.fill_diagonal(d, 0.0)
    iu = np.triu_indices(k, 1)
    z = linkage(d[iu], method="average")
    return fcluster(z, t=cut, criterion="distance")


def cluster_identities(n: int, edges: Iterable[tuple[int, int, float]], *, method: str,
                       threshold: float | None) -> np.ndarray:
    """Identity labels 0..C-1 for nodes 0..n-1 from weighted edges (i, j, similarity); method and
    threshold are the recipe's `pairs.cluster` (the default recipe: components, null).

    components: edges with weight >= threshold (all edges when None) joined transitively.
    agglomerative: average linkage on distance 1 - similarity (missing edge = 1.0), clusters
    are merged while their average distance is <= 1 - threshold; threshold None cuts just
    below 1.0 (any pair of clusters with some positive evidence and no full disagreement).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    i, j, w = _edge_arrays(n, edges)
    if n == 0:
        return np.zeros(0, np.int64)
    if method == "components":
        if threshold is not None:
            keep = w >= threshold
            i, j = i[keep], j[keep]
        return canonical_labels(_components(n, i, j))
    if method != "agglomerative":
        raise ValueError(f"unknown clustering method {method!r}; known: components, agglomerative")
    cut = (1.0 - float(threshold)) if threshold is not None else 1.0 - 1e-9
    comp = _components(n, i, j)
    labels = np.full(n, -1, np.int64)
    next_label = 0
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    for members in np.split(order, bounds):
        members = np.sort(members)
        k = members.size
        if k == 1:
            labels[members] = next_label
            next_label += 1
            continue
        local = {int(m): x for x, m in enumerate(members)}
        sel = np.isin(i, members)          # an edge lies in one component: both ends are members
        li = np.array([local[int(a)] for a in i[sel]], np.int64)
        lj = np.array([local[int(b)] for b in j[sel]], np.int64)
        if k > AGGLOMERATIVE_MAX_COMPONENT:
            log.warning("cluster: component of %d nodes exceeds %d; using thresholded components for it",
                        k, AGGLOMERATIVE_MAX_COMPONENT)
            keep = w[sel] >= (1.0 - cut)
            sub = _components(k, li[keep], lj[keep])
        else:
            sub = _average_linkage(k, li, lj, w[sel], cut)
        _, sub = np.unique(sub, return_inverse=True)
        labels[members] = sub + next_label
        next_label += int(sub.max()) + 1
    return canonical_labels(labels)


def cluster_summary(labels: np.ndarray) -> dict:
    """n_nodes, n_clusters, n_singletons, sizes {size: count}, largest, mean_size.

    `sizes` keys are ints (cast to str when writing JSON)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return {"n_nodes": 0, "n_clusters": 0, "n_singletons": 0, "sizes": {}, "largest": 0, "mean_size": 0.0}
    _, counts = np.unique(labels, return_counts=True)
    size_vals, size_counts = np.unique(counts, return_counts=True)
    return {
        "n_nodes": int(labels.size),
        "n_clusters": int(counts.size),
        "n_singletons": int((counts == 1).sum()),
        "sizes": {int(s): int(c) for s, c in zip(size_vals, size_counts)},
        "largest": int(counts.max()),
        "mean_size": float(counts.mean()),
    }
