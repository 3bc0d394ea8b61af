"""BucketBatchSampler: batches whose samples share one aspect bucket, the same on every run.

Per epoch, with a generator seeded by (seed, epoch): each bucket's indices are shuffled and cut
into batches of `batch_size` (the last short one dropped with drop_last), then the batches of all
buckets are shuffled together. Ranks take batches round-robin (batch k goes to rank
k % world_size); every rank gets the same number of batches, so no rank waits at a collective:
with drop_last the batches that do not divide evenly are dropped, otherwise the list is padded
by repeating batches from its start. Works as `DataLoader(ds, batch_sampler=...)`, and as a plain
iterable of index lists without torch.
"""
from __future__ import annotations

import math

import numpy as np


class BucketBatchSampler:
    """Index batches of one bucket each (see the module doc)."""

    def __init__(self, dataset, batch_size: int, seed: int, drop_last: bool, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        ids = getattr(dataset, "bucket_ids", None)
        self.bucket_ids = np.zeros(len(dataset), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        self.batch_size, self.seed, self.drop_last = int(batch_size), int(seed), bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch & 0xFFFFFFFF])
        batches: list[list[int]] = []
        for b in np.unique(self.bucket_ids):
            members = np.flatnonzero(self.bucket_ids == b)
            members = members[rng.permutation(len(members))]
            for k in range(0, len(members), self.batch_size):
                chunk = members[k:k + self.batch_size]
                if len(chunk) < self.batch_size and self.drop_last:
                    continue
                batches.append([int(i) for i in chunk])
        return [batches[k] for k in rng.permutation(len(batches))]

    def _per_rank(self, n_batches: int) -> int:
        if self.drop_last:
            return n_batches // self.world_size
        return math.ceil(n_batches / self.world_size)

    def __iter__(self):
        batches = self._all_batches()
        per_rank = self._per_rank(len(batches))
        total = per_rank * self.world_size
        if total > len(batches) and batches:
            batches = batches + [batches[k % len(batches)] for k in range(total - len(batches))]
        yield from batches[self.rank:total:self.world_size]

    def __len__(self) -> int:
        return self._per_rank(len(self._all_batches()))
