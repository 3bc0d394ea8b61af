"""The loader's settings: the recipe's `export.loader` section, with keyword overrides.

The recipe is the only place a default lives, so `S2VDataset(DIR, num_frames=49)` means
"the recipe's loader settings, with num_frames set to 49". A keyword the section does not have
is a TypeError naming the closest key; a bad value is a ValueError naming the recipe path.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from ..stages.recipe_keys import need

WHERE = "export.loader"
LOADER_KEYS = ("num_frames", "stride", "size", "buckets", "sampling", "short", "refs", "ref_size", "max_refs",
               "normalize", "seed", "decode_threads", "shuffle_buffer")
SAMPLING = ("center", "random")
SHORT_RULES = ("shrink_stride", "pad_last", "skip")
REF_CHOICES = ("self", "cross", "both", "any")
NORMALIZE = (None, "zero_one", "minus_one_one")


@dataclass(frozen=True)
class LoaderSettings:
    num_frames: int
    stride: int
    size: tuple[int, int] | None             # (H, W) of every sample; None when buckets are used
    buckets: tuple[tuple[int, int], ...] | None   # (H, W) per bucket
    sampling: str
    short: str
    refs: str
    ref_size: tuple[int, int] | None          # (h, w) every reference is letterboxed to; None: native
    max_refs: int | None                      # pad/truncate to this many references (valid_refs)
    normalize: str | None
    seed: int
    decode_threads: int
    shuffle_buffer: int
    duplicate_mask_iou: float                 # export.refs.duplicate_mask_iou (one value for export and loader)

    @property
    def span(self) -> int:
        """Frames a sample covers at the full stride: (num_frames - 1) * stride + 1."""
        return (self.num_frames - 1) * self.stride + 1


def default_export_cfg() -> dict:
    """The default recipe's `export` section (MissingRecipeKey while the recipe has none)."""
    from ..recipes import load_recipe
    return need(load_recipe(), "export", "recipe")


def loader_settings(cfg: Mapping | None = None, overrides: Mapping | None = None) -> LoaderSettings:
    """LoaderSettings from an export section (`cfg`, default: the default recipe's) and overrides.

    Overrides set to None are ignored (a keyword left at its default), so only what a caller
    names replaces the recipe's value."""
    export = default_export_cfg() if cfg is None else cfg
    section = dict(need(export, "loader", "export"))
    for key, value in (overrides or {}).items():
        if key not in LOADER_KEYS:
            near = difflib.get_close_matches(key, LOADER_KEYS, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise TypeError(f"unknown loader setting {key!r}{hint}; settings are {', '.join(LOADER_KEYS)}")
        if value is not None:
            section[key] = value
    got = {k: need(section, k, WHERE) for k in LOADER_KEYS}
    iou = need(need(export, "refs", "export"), "duplicate_mask_iou", "export.refs")
    return _check(got, float(iou))


def _pair(value, key: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{WHERE}.{key} must be [height, width], got {value!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{WHERE}.{key} must be positive, got {value!r}")
    return h, w


def _check(v: dict, duplicate_mask_iou: float) -> LoaderSettings:
    def positive(key: str) -> int:
        n = int(v[key])
        if n < 1:
            raise ValueError(f"{WHERE}.{key} must be >= 1, got {v[key]!r}")
        return n

    def one_of(key: str, allowed: tuple) -> str:
        if v[key] not in allowed:
            raise ValueError(f"{WHERE}.{key} must be one of {', '.join(map(str, allowed))}, got {v[key]!r}")
        return v[key]

    buckets = None
    if v["buckets"]:
        buckets = tuple(_pair(b, "buckets[]") for b in v["buckets"])
    size = None if buckets else (_pair(v["size"], "size") if v["size"] is not None else None)
    if size is None and buckets is None:
        raise ValueError(f"{WHERE}: set size [H, W] or buckets [[H, W], ...]")
    max_refs = None if v["max_refs"] is None else int(v["max_refs"])
    if max_refs is not None and max_refs < 0:
        raise ValueError(f"{WHERE}.max_refs must be >= 0 or null, got {max_refs}")
    shuffle_buffer = int(v["shuffle_buffer"])
    if shuffle_buffer < 0:
        raise ValueError(f"{WHERE}.shuffle_buffer must be >= 0, got {shuffle_buffer}")
    if not 0.0 <= duplicate_mask_iou <= 1.0:
        raise ValueError(f"export.refs.duplicate_mask_iou must be in [0, 1], got {duplicate_mask_iou}")
    return LoaderSettings(
        num_frames=positive("num_frames"), stride=positive("stride"), size=size, buckets=buckets,
        sampling=one_of("sampling", SAMPLING), short=one_of("short", SHORT_RULES),
        refs=one_of("refs", REF_CHOICES),
        ref_size=None if v["ref_size"] is None else _pair(v["ref_size"], "ref_size"),
        max_refs=max_refs, normalize=one_of("normalize", NORMALIZE), seed=int(v["seed"]),
        decode_threads=positive("decode_threads"), shuffle_buffer=shuffle_buffer,
        duplicate_mask_iou=duplicate_mask_iou)
