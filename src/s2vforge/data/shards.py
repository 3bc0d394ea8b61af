"""S2VShardDataset: the same items as S2VDataset, streamed from WebDataset-layout tar shards.

A shard holds, per sample key, the members `{key}.mp4` (the clip), `{key}.json` (the sample
row: references without pixels, fps, n_frames, ...), `{key}.txt` (the caption) and
`{key}.ref{i}.png` (RGBA crop of references[i] of the JSON, i = 0..n-1). Tars are read with the
standard `tarfile` module in stream mode (no webdataset dependency); the key is the member's
name up to the first dot of its file name, as webdataset does.

Sources: a directory (its index.json, a list of {name, n_samples, bytes[, split]} as the export's
webdataset writer makes, else its *.tar sorted), an index.json, one tar, or a list of local paths
(file:// accepted; no network). With `split`, an index's shards of other splits are not opened.

Order, per epoch (`set_epoch`): the shard list is shuffled with (seed, epoch), the same
permutation in every process. Worker w of rank r is reader g = r * num_workers + w of
G = world_size * num_workers: with at least G shards it reads shards g, g + G, ...; with fewer it
reads every shard and keeps samples g, g + G, ... of the stream, so each sample is served
exactly once per epoch either way. Then a bounded buffer (`shuffle_buffer` raw samples, i.e.
compressed bytes, not decoded frames) shuffles with (seed, epoch, g). A sample that cannot be
read is skipped with a warning and its reason kept in `skipped` (in the process that read it).
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import tarfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .frames import fits
from .geometry import bucket_for
from .items import build_item
from .settings import default_export_cfg, loader_settings
from .video import ClipReadError

_REGISTERED = False


def _register_with_torch() -> None:
    """Make S2VShardDataset an IterableDataset for DataLoader when torch is installed (a virtual
    subclass: torch is imported here, not when s2vforge.data is)."""
    global _REGISTERED
    if _REGISTERED:
        return
    try:
        if importlib.util.find_spec("torch") is None:
            return
        from torch.utils.data import IterableDataset
    except (ImportError, ValueError):         # not installed, or installed but broken: plain iterable
        return
    IterableDataset.register(S2VShardDataset)
    _REGISTERED = True


def _local(p) -> str:
    s = os.fspath(p)
    if s.startswith("file://"):
        return s[len("file://"):]
    if "://" in s:
        raise ValueError(f"{s}: only local shard paths are read (no network)")
    return s


def _index_entries(index_path: Path, split: str | None = None) -> list[str]:
    """Shard paths of an index.json ({"shards": [{name, n_samples, bytes, split?}]} or a bare list);
    with `split`, only the shards the index marks with that split (all when it marks none)."""
    data = json.loads(index_path.read_text(encoding="utf-8"))
    entries = data.get("shards") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError(f"{index_path}: expected a list of shards (or {{'shards': [...]}})")
    if split is not None and any(isinstance(e, dict) and "split" in e for e in entries):
        entries = [e for e in entries if isinstance(e, dict) and e.get("split") == split]
    out = []
    for e in entries:
        name = e if isinstance(e, str) else (e.get("name") or e.get("path") or e.get("url"))
        if not name:
            raise ValueError(f"{index_path}: shard entry without a name: {e!r}")
        p = Path(_local(name))
        out.append(str(p if p.is_absolute() else index_path.parent / p))
    return out


def index_sample_count(index_path: Path, split: str | None = None) -> int | None:
    """Total n_samples of an index.json (of `split`'s shards when it marks splits), None when any
    entry lacks it."""
    data = json.loads(Path(index_path).read_text(encoding="utf-8"))
    entries = data.get("shards") if isinstance(data, dict) else data
    if split is not None and any(isinstance(e, dict) and "split" in e for e in entries or []):
        entries = [e for e in entries if isinstance(e, dict) and e.get("split") == split]
    try:
        return int(sum(int(e["n_samples"]) for e in entries))
    except (TypeError, KeyError, ValueError):
        return None


def list_shards(source, split: str | None = None) -> list[str]:
    """The shard paths of a directory, an index.json, a tar, or a list of paths (`split` narrows
    an index that names each shard's split; samples are filtered by their row's split anyway)."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(_local(source))
        if p.is_dir():
            if (p / "index.json").is_file():
                return _index_entries(p / "index.json", split)
            found = sorted(str(x) for x in p.glob("*.tar"))
            if not found:
                raise FileNotFoundError(f"{p}: no index.json and no *.tar shards")
            return found
        if p.name.endswith(".json"):
            return _index_entries(p, split)
        return [str(p)]
    if isinstance(source, Sequence):
        return [_local(s) for s in source]
    raise TypeError(f"shards must be a directory, an index.json, a tar or a list of paths, not {type(source).__name__}")


def split_member(name: str) -> tuple[str, str] | None:
    """(key, extension) of a member name: the key keeps the directory, ends at the file name's first dot."""
    head, _, base = name.rpartition("/")
    if "." not in base:
        return None
    stem, ext = base.split(".", 1)
    return (f"{head}/{stem}" if head else stem), ext


def iter_shard(path: str) -> Iterator[dict]:
    """{"__key__", "__shard__", ext: bytes ...} per sample key, in tar order (members of one key
    are consecutive, as the WebDataset layout requires)."""
    current: dict | None = None
    with tarfile.open(path, mode="r|*") as tf:
        for member in tf:
            if not member.isfile():
                continue
            parts = split_member(member.name)
            if parts is None:
                continue
            key, ext = parts
            fh = tf.extractfile(member)
            data = fh.read() if fh is not None else b""
            if current is None or current["__key__"] != key:
                if current is not None:
                    yield current
                current = {"__key__": key, "__shard__": path}
            current[ext] = data
    if current is not None:
        yield current


def _worker() -> tuple[int, int]:
    """(worker id, number of workers) of the DataLoader worker running this, else (0, 1)."""
    if "torch" not in sys.modules:
        return 0, 1
    from torch.utils.data import get_worker_info
    info = get_worker_info()
    return (0, 1) if info is None else (int(info.id), int(info.num_workers))


def shuffled(stream: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """A bounded shuffle: keep `size` items, emit a random one as each new one arrives."""
    if size <= 1:
        yield from stream
        return
    buf: list = []
    for x in stream:
        if len(buf) < size:
            buf.append(x)
            continue
        j = int(rng.integers(0, size))
        buf[j], x = x, buf[j]
        yield x
    for j in rng.permutation(len(buf)):
        yield buf[int(j)]


class S2VShardDataset:
    """Iterable over tar shards giving S2VDataset's items (see the module doc)."""

    def __init__(self, shards, split: str | None = None, *, cfg: dict | None = None, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True, epoch: int = 0, **settings):
        _register_with_torch()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.shards = list_shards(shards, split)
        export_cfg = default_export_cfg() if cfg is None else cfg
        self.settings = loader_settings(export_cfg, settings)
        self.split, self.rank, self.world_size = split, int(rank), int(world_size)
        self.shuffle, self.epoch = bool(shuffle), int(epoch)
        index = Path(_local(shards)) / "index.json" if isinstance(shards, (str, os.PathLike)) else None
        self.n_samples = index_sample_count(index, split) if index is not None and index.is_file() else None
        self.skipped: list[tuple[str, str]] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _seed(self, *extra: int) -> np.random.Generator:
        return np.random.default_rng([self.settings.seed & 0xFFFFFFFF, self.epoch & 0xFFFFFFFF, *extra])

    def _raw_samples(self) -> Iterator[dict]:
        wid, nw = _worker()
        g, total = self.rank * nw + wid, self.world_size * nw
        order = list(self.shards)
        if self.shuffle:
            order = [order[int(k)] for k in self._seed().permutation(len(order))]
        if len(order) >= total:
            for path in order[g::total]:
                yield from self._read_shard(path)
        else:
            for k, raw in enumerate(s for path in order for s in self._read_shard(path)):
                if k % total == g:
                    yield raw

    def _read_shard(self, path: str) -> Iterator[dict]:
        try:
            yield from iter_shard(path)
        except (OSError, tarfile.TarError, EOFError) as exc:
            self._skip(path, f"unreadable shard: {type(exc).__name__}: {exc}", warn=True)

    def _skip(self, key: str, reason: str, warn: bool) -> None:
        self.skipped.append((key, reason))
        if warn:
            warnings.warn(f"S2VShardDataset skipped {key}: {reason}", RuntimeWarning, stacklevel=3)

    def __iter__(self) -> Iterator[dict]:
        stream = self._raw_samples()
        if self.shuffle and self.settings.shuffle_buffer > 1:
            wid, nw = _worker()
            stream = shuffled(stream, self.settings.shuffle_buffer, self._seed(self.rank * nw + wid, 1))
        for raw in stream:
            item = self._item(raw)
            if item is not None:
                yield item

    def _item(self, raw: dict) -> dict | None:
        key, st = raw["__key__"], self.settings
        try:
            sample = json.loads(raw["json"].decode("utf-8"))
        except KeyError:
            self._skip(key, "no .json member", warn=True)
            return None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._skip(key, f"bad .json: {exc}", warn=True)
            return None
        if "mp4" not in raw:
            self._skip(key, "no .mp4 member", warn=True)
            return None
        if self.split is not None and sample.get("split") != self.split:
            return None
        sample.setdefault("sample_id", key.rsplit("/", 1)[-1])
        n = sample.get("n_frames")
        if not isinstance(n, int) or n < 1:
            self._skip(key, "no_frames: n_frames unknown or 0", warn=True)
            return None
        if st.short == "skip" and not fits(n, st.num_frames, st.stride):
            self._skip(key, f"short_clip: {n} frames < {st.span}", warn=False)
            return None
        bucket = None
        if st.buckets:
            try:
                bucket = bucket_for(sample.get("width"), sample.get("height"), st.buckets)
            except (ValueError, TypeError):
                self._skip(key, "no_size: cannot bucket", warn=True)
                return None
        out_hw = st.size if bucket is None else st.buckets[bucket]
        caption = raw["txt"].decode("utf-8", errors="replace").strip() if "txt" in raw else None
        try:
            return build_item(sample, raw["mp4"], lambda pos, _ref: raw.get(f"ref{pos}.png"), st, self.epoch,
                              out_hw, caption=caption, bucket=bucket)
        except ClipReadError as exc:
            self._skip(key, str(exc), warn=True)
            return None
