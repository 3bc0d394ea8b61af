"""Leak-free train/val/test splits.

A split is drawn per *source group*, never per clip: clips are linked when they share a source
group (the video's group_id, which defaults to the video), an identity (a pairs cluster, or a
cross reference taken from another video) or a duplicate cluster, and every linked component
goes to one split. So no clip, identity or copy of the same footage is on both sides.

A component is named by its smallest source group (`split_group`); its split comes from a hash
of (seed, that name) mapped to [0, 1) against the cumulative fractions: deterministic for a seed, independent of row order and
engine, and stable as a dataset grows (adding videos never moves an existing component, unless
it links two of them). The fractions therefore hold over components, approximately over clips.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:        # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo             # the smaller id is the root: order-independent


def parse_split_spec(text: str) -> dict[str, float]:
    """`val=0.02,test=0.01` -> {"val": 0.02, "test": 0.01}; train takes the rest."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        try:
            frac = float(value)
        except ValueError:
            frac = -1.0
        if not sep or not name.strip() or not 0 <= frac <= 1:
            raise ValueError(f"--split: {part!r} is not NAME=FRACTION (e.g. val=0.02,test=0.01)")
        out[name.strip()] = frac
    return check_fractions(out)


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    fr = {str(k): float(v) for k, v in (fractions or {}).items()}
    if "train" in fr:
        raise ValueError("splits: train takes what the other splits leave; name only the others (val, test, ...)")
    if sum(fr.values()) >= 1.0:
        raise ValueError(f"splits: the fractions {fr} leave nothing for train")
    return fr


def unit_hash(seed: int, key: str) -> float:
    h = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2 ** 64


def assign_splits(samples: Iterable[Mapping], links: Iterable[tuple[str, str]], fractions: Mapping[str, float],
                  seed: int) -> dict[str, tuple[str, str]]:
    """{sample_id: (split, split_group)} for kept samples. `links`: extra edges between nodes
    named `s:<sample_id>`, `g:<group_id>` or `i:<identity cluster>` (identity, duplicates, cross
    references); every sample is also linked to `g:<its group_id>`."""
    fr = check_fractions(fractions)
    uf = UnionFind()
    ids = []
    for s in samples:
        sid = s["sample_id"]
        ids.append(sid)
        uf.union("s:" + sid, "g:" + str(s.get("group_id") or s.get("video_id") or sid))
    for a, b in links:
        uf.union(a, b)
    names = sorted(fr)                     # cumulative order fixed by name, not by dict order
    group_of: dict[str, str] = {}          # component root -> its smallest source group (its name)
    for node in sorted(uf.parent):
        if node.startswith("g:"):
            group_of.setdefault(uf.find(node), node[2:])
    out = {}
    for sid in ids:
        root = uf.find("s:" + sid)
        label = group_of.get(root, root.split(":", 1)[1])
        u = unit_hash(seed, label)
        split, acc = "train", 0.0
        for name in names:
            acc += fr[name]
            if u < acc:
                split = name
                break
        out[sid] = (split, label)
    return out
