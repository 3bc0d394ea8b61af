"""Which frames of a clip a sample reads: count, stride, start, and the short-clip rule.

A sample is `num_frames` frame indices `stride` apart (index i = the clip's i-th decoded
frame). It covers `span = (num_frames - 1) * stride + 1` frames; the start is the centre of
the clip (`center`) or drawn from a generator seeded by (seed, epoch, sample id) (`random`),
so the same settings give the same frames on any machine, worker count or order of reads,
and a new epoch gives new starts.

Clips shorter than the span (`short`):
- `shrink_stride`: the largest stride that fits, (n - 1) // (num_frames - 1) (start by the
  sampling rule within what is left); when even stride 1 does not fit (n < num_frames), all
  n frames then the last one repeated;
- `pad_last`: the stride is kept, frames from 0 while they exist, then the last one repeated;
- `skip`: the sample is left out when the dataset is built (from n_frames in the table),
  never in the middle of an epoch.
"""
from __future__ import annotations

import hashlib

import numpy as np


def sample_rng(seed: int, epoch: int, sample_id: str) -> np.random.Generator:
    """A generator for one sample's random choices: seeded by (seed, epoch, sample id) only,
    so it is the same in every worker and whatever index the sample has after filtering."""
    key = int.from_bytes(hashlib.blake2b(str(sample_id).encode("utf-8"), digest_size=8).digest(), "little")
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, key])


def fits(n_frames: int, num_frames: int, stride: int) -> bool:
    return n_frames >= (num_frames - 1) * stride + 1


def _start(slack: int, sampling: str, rng: np.random.Generator | None) -> int:
    if slack <= 0:
        return 0
    if sampling == "center":
        return slack // 2
    if rng is None:
        raise ValueError("random sampling needs a generator (sample_rng)")
    return int(rng.integers(0, slack + 1))


def frame_indices(n_frames: int, num_frames: int, stride: int, short: str, sampling: str,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
    """(indices int64[num_frames], the stride used) for a clip of n_frames frames.

    ValueError for an empty clip and for a short clip under `skip` (the dataset filters those
    out before any read)."""
    n, t, s = int(n_frames), int(num_frames), int(stride)
    if n < 1:
        raise ValueError(f"a clip of {n} frames has nothing to read")
    if fits(n, t, s):
        span = (t - 1) * s + 1
        start = _start(n - span, sampling, rng)
        return start + s * np.arange(t, dtype=np.int64), s
    if short == "skip":
        raise ValueError(f"clip of {n} frames is shorter than {t} frames at stride {s} (short: skip)")
    if short == "shrink_stride":
        s2 = (n - 1) // (t - 1) if t > 1 else s
        if s2 >= 1:
            span = (t - 1) * s2 + 1
            start = _start(n - span, sampling, rng)
            return start + s2 * np.arange(t, dtype=np.int64), s2
        s = 1                                   # n < num_frames: every frame, then repeat the last
    elif short != "pad_last":
        raise ValueError(f"unknown short-clip rule {short!r}")
    idx = np.minimum(s * np.arange(t, dtype=np.int64), s * ((n - 1) // s))
    return idx, s
