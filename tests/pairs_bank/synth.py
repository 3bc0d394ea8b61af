"""Synthetic identity embeddings: Gaussian clusters on the unit sphere, like real face/object embeddings.

Each identity is a random unit centre; its appearances are ``normalise(centre + noise)`` with the
per-dimension noise scaled so two appearances of one identity have cosine ~``intra_cos``
(dlib / ArcFace same-person pairs sit around 0.6-0.7 cosine) while different identities are
~orthogonal. Cluster sizes follow a Zipf-like law (a few identities appear very often), as
subjects do across a corpus. Uniform noise would make every method look bad for the wrong reason.
"""
from __future__ import annotations

import numpy as np


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered_vectors(n: int, dim: int, *, mean_cluster: float = 20.0, intra_cos: float = 0.65,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors (n, dim) float32 unit rows, identity label per row, centres (n_ids, dim))."""
    rng = np.random.default_rng(seed)
    n_ids = max(1, int(round(n / mean_cluster)))
    centres = _normalise(rng.standard_normal((n_ids, dim)))
    weights = 1.0 / np.arange(1, n_ids + 1) ** 0.8
    weights /= weights.sum()
    labels = np.concatenate([np.arange(n_ids), rng.choice(n_ids, n - n_ids, p=weights)]) if n >= n_ids \
        else rng.choice(n_ids, n)
    rng.shuffle(labels)
    sigma = appearance_sigma(dim, intra_cos)
    out = np.empty((n, dim), dtype=np.float32)
    step = 200_000
    for s in range(0, n, step):
        lab = labels[s:s + step]
        out[s:s + step] = _normalise(centres[lab] + sigma * rng.standard_normal((len(lab), dim)).astype(np.float32))
    return out, labels, centres


def appearance_sigma(dim: int, intra_cos: float) -> float:
    """Per-dimension noise so that cos(a, b) ~ intra_cos for two noisy copies of one centre.

    With |noise|^2 ~ sigma^2 * dim = t, cos(a, b) ~ 1 / (1 + t).
    """
    return float(np.sqrt((1.0 / intra_cos - 1.0) / dim))


def fresh_queries(centres: np.ndarray, labels: np.ndarray, n: int, *, intra_cos: float = 0.65,
                  seed: int = 1) -> np.ndarray:
    """New appearances of identities present in the bank (held out from it)."""
    rng = np.random.default_rng(seed)
    lab = rng.choice(labels, n)
    sigma = appearance_sigma(centres.shape[1], intra_cos)
    return _normalise(centres[lab] + sigma * rng.standard_normal((n, centres.shape[1])).astype(np.float32))
