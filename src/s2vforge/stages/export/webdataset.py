"""WebDataset tar shards of the kept samples (`export --format webdataset`), the way trainers stream them.

EXPORT/webdataset/ holds, per split, shards `{split}-{n:06d}.tar` with video2dataset's companions
`{split}-{n:06d}.parquet` (the shard's sample metadata) and `{split}-{n:06d}_stats.json`, plus
`index.json` over every shard (docs/formats.md "WebDataset"). Per sample, in this order:
`{key}.mp4` (the clip file), `{key}.json` (the sample row, sorted keys), `{key}.txt` (the caption,
one line), `{key}.ref{i}.png` (reference i as stored in subjects/<id>.png, RGBA). key = sample_id.

Tars are byte-identical for the same samples: members in that fixed order, mtime 0, uid/gid 0,
empty user/group names, mode 0644, POSIX (PAX/ustar) headers. A shard is closed when the next
sample would take it past `shard_size` bytes (a sample is never split; a lone sample larger than
the limit gets a shard of its own). A shard whose stats file records the same content digest and
whose tar has the recorded size is kept as is, so a killed export resumes where it stopped.

The helpers under "Shared by the format writers" are also used by lance_table and hf_datasets.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ...engine.writer import atomic_write, sweep_tmp, write_json, write_parquet
from ..recipe_keys import need
from .samples import one_line

FOLDER = "webdataset"
SHARD_DIGITS = 6                                  # train-000000.tar (webdataset's ShardWriter "%06d")
KEY_RE = re.compile(r"[A-Za-z0-9_-]+")            # webdataset splits a member name at its first dot
SHARD_FILE_RE = re.compile(r"(?P<name>[A-Za-z0-9_]+-\d{%d})(?:\.tar|\.parquet|_stats\.json)" % SHARD_DIGITS)
MEMBER_ORDER = ("mp4", "json", "txt", "ref{i}.png")


# ------------------------------------------------------------------ shared by the format writers

MACHINE_LOCAL = ("source_clip_path", "source_video_path")   # absolute paths of the exporting machine
REFERENCE_PIXELS = ("mask_rle",)                            # the mask: the PNG's alpha carries it
SPLIT_RE = re.compile(r"[A-Za-z0-9_]+")                     # a file-name part and a datasets split name


def kept_samples(samples: pa.Table) -> list[dict]:
    """The rows a format writes: keep == true, sorted by sample_id."""
    rows = [r for r in samples.to_pylist() if r.get("keep")]
    return sorted(rows, key=lambda r: str(r.get("sample_id")))


def export_file(export_dir: Path, rel: str | None, what: str) -> tuple[Path | None, str | None]:
    """(path, None) for an existing file named relative to the export folder, else (None, reason).

    Paths come from a table; one that is absolute or climbs out of the folder is refused, so a
    writer only ever packs files of its own export."""
    if not rel:
        return None, f"{what}: no path"
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        return None, f"{what}: {rel!r} is not a path inside the export folder"
    full = Path(export_dir) / p
    if not full.is_file():
        return None, f"{what}: {rel} is missing"
    return full, None


@dataclass
class SampleFiles:
    """A kept sample's files in the export folder (mask None: not written; derive it from alpha)."""
    clip: Path
    refs: list[Path] = field(default_factory=list)
    masks: list[Path | None] = field(default_factory=list)


def sample_files(export_dir: Path, row: dict) -> tuple[SampleFiles | None, str | None]:
    """The clip and reference files of a sample, or the reason it cannot be written."""
    split = row.get("split")
    if not split or not SPLIT_RE.fullmatch(str(split)):
        return None, f"split {split!r} is not a split name (letters, digits, '_')"
    clip, why = export_file(export_dir, row.get("clip_path"), "clip")
    if why:
        return None, why
    files = SampleFiles(clip)
    for i, ref in enumerate(row.get("references") or []):
        png, why = export_file(export_dir, ref.get("rgba_path"), f"reference {i} ({ref.get('subject_id')})")
        if why:
            return None, why
        mask = None
        if ref.get("mask_path"):
            mask, why = export_file(export_dir, ref["mask_path"], f"reference {i} mask ({ref.get('subject_id')})")
            if why:
                return None, why
        files.refs.append(png)
        files.masks.append(mask)
    return files, None


def resolved_samples(export_dir: Path, samples: pa.Table) -> tuple[list[tuple[dict, SampleFiles]], list[dict]]:
    """([(row, files)] for the kept samples that can be written, [{sample_id, split, reason}] for the rest)."""
    ok: list[tuple[dict, SampleFiles]] = []
    skipped: list[dict] = []
    seen: set[str] = set()
    for row in kept_samples(samples):
        sid = row.get("sample_id")
        files, why = sample_files(export_dir, row)
        if why is None and sid in seen:
            why = "duplicate sample_id"
        if why is not None:
            skipped.append({"sample_id": sid, "split": row.get("split"), "reason": why})
            continue
        seen.add(sid)
        ok.append((row, files))
    return ok, skipped


def json_safe(value):
    """NaN / inf -> None, recursively: strict JSON (and the same null in every format)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def sample_record(row: dict) -> dict:
    """The sample row as a portable record: no machine-local paths, references without pixels."""
    rec = {k: v for k, v in row.items() if k not in MACHINE_LOCAL}
    rec["references"] = [{k: v for k, v in ref.items() if k not in REFERENCE_PIXELS}
                         for ref in row.get("references") or []]
    return json_safe(rec)


def record_schema(samples_schema: pa.Schema) -> pa.Schema:
    """The schema of sample_record rows: the samples schema less the fields it leaves out."""
    fields = []
    for f in samples_schema:
        if f.name in MACHINE_LOCAL:
            continue
        if f.name == "references":
            struct = f.type.value_type
            kept = [struct.field(i) for i in range(struct.num_fields) if struct.field(i).name not in REFERENCE_PIXELS]
            f = pa.field("references", pa.list_(pa.struct(kept)))
        fields.append(f)
    return pa.schema(fields)


# ------------------------------------------------------------------ plan: members and shards

@dataclass
class Member:
    """One tar member: bytes built here (json, txt) or a file of the export (mp4, png)."""
    name: str
    size: int
    data: bytes | None = None
    path: Path | None = None


@dataclass
class PlannedSample:
    key: str
    split: str
    record: dict
    members: list[Member]

    @property
    def tar_bytes(self) -> int:
        return sum(member_tar_bytes(m) for m in self.members)


@dataclass
class Shard:
    name: str
    split: str
    samples: list[PlannedSample]

    @property
    def digest(self) -> str:
        """Content digest: member names, sizes and the built members' bytes (ids derive from content)."""
        h = hashlib.blake2b(digest_size=16)
        for s in self.samples:
            for m in s.members:
                h.update(f"{m.name}\0{m.size}\0".encode())
                if m.data is not None:
                    h.update(m.data)
        return h.hexdigest()


def member_info(name: str, size: int) -> tarfile.TarInfo:
    """A tar header with nothing of the writing machine or moment in it."""
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.type = size, 0, 0o644, tarfile.REGTYPE
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def member_tar_bytes(m: Member) -> int:
    header = len(member_info(m.name, m.size).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    return header + -(-m.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def tar_file_bytes(body: int) -> int:
    """Size of a tar whose members take `body` bytes: two zero blocks, padded to tarfile's record."""
    return -(-(body + 2 * tarfile.BLOCKSIZE) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def plan_sample(row: dict, files: SampleFiles) -> PlannedSample | str:
    """The members of one sample, or why its sample_id cannot be a WebDataset key."""
    key = str(row["sample_id"])
    if not KEY_RE.fullmatch(key):
        return (f"sample_id {key!r} is not a WebDataset key (letters, digits, '-', '_' only: "
                "webdataset splits a member name at its first dot)")
    record = sample_record(row)
    meta = json.dumps(record, sort_keys=True, ensure_ascii=False, allow_nan=False).encode()
    text = (one_line(row.get("caption")) or "").encode()
    members = [Member(f"{key}.mp4", files.clip.stat().st_size, path=files.clip),
               Member(f"{key}.json", len(meta), data=meta),
               Member(f"{key}.txt", len(text), data=text)]
    members += [Member(f"{key}.ref{i}.png", p.stat().st_size, path=p) for i, p in enumerate(files.refs)]
    return PlannedSample(key, str(row["split"]), record, members)


def pack_shards(planned: list[PlannedSample], shard_size: int, max_count: int | None) -> list[Shard]:
    """Greedy, in sample order, per split: a new shard when the next sample would make the tar
    larger than shard_size bytes (or hold more than max_count samples)."""
    shards: list[Shard] = []
    for split in sorted({p.split for p in planned}):
        current: list[PlannedSample] = []
        body = 0
        for p in (p for p in planned if p.split == split):
            full = current and (tar_file_bytes(body + p.tar_bytes) > shard_size
                                or (max_count is not None and len(current) >= max_count))
            if full:
                shards.append(Shard(_shard_name(split, shards), split, current))
                current, body = [], 0
            current.append(p)
            body += p.tar_bytes
        if current:
            shards.append(Shard(_shard_name(split, shards), split, current))
    return shards


def _shard_name(split: str, earlier: list[Shard]) -> str:
    n = sum(1 for s in earlier if s.split == split)
    return f"{split}-{n:0{SHARD_DIGITS}d}"


# ------------------------------------------------------------------ write

def write_tar(path: Path, shard: Shard) -> None:
    def put(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
                for s in shard.samples:
                    for m in s.members:
                        if m.data is not None:
                            tf.addfile(member_info(m.name, m.size), io.BytesIO(m.data))
                        else:
                            with open(m.path, "rb") as src:
                                tf.addfile(member_info(m.name, m.size), src)
    atomic_write(path, put)


def shard_stats(shard: Shard, tar_bytes: int) -> dict:
    """video2dataset's per-shard stats (count, successes, bytes) without its wall-clock fields."""
    n = len(shard.samples)
    clip = sum(s.members[0].size for s in shard.samples)
    refs = [m for s in shard.samples for m in s.members[3:]]
    return {"name": shard.name, "split": shard.split, "count": n, "successes": n, "bytes": tar_bytes,
            "first_key": shard.samples[0].key, "last_key": shard.samples[-1].key,
            "n_members": sum(len(s.members) for s in shard.samples), "n_references": len(refs),
            "clip_bytes": clip, "reference_bytes": sum(m.size for m in refs), "digest": shard.digest}


def _reusable(out: Path, shard: Shard) -> dict | None:
    """The stats of a shard already written with the same content, else None."""
    stats_path, tar = out / f"{shard.name}_stats.json", out / f"{shard.name}.tar"
    if not (stats_path.is_file() and tar.is_file() and (out / f"{shard.name}.parquet").is_file()):
        return None
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, ValueError):
        return None
    if stats.get("digest") != shard.digest or stats.get("bytes") != tar.stat().st_size:
        return None
    return stats


def write_shard(out: Path, shard: Shard, schema: pa.Schema) -> dict:
    """The tar, its parquet, then its stats (written last: the shard's completion mark)."""
    done = _reusable(out, shard)
    if done is not None:
        return done
    tar = out / f"{shard.name}.tar"
    write_tar(tar, shard)
    write_parquet(pa.Table.from_pylist([s.record for s in shard.samples], schema=schema),
                  out / f"{shard.name}.parquet")
    stats = shard_stats(shard, tar.stat().st_size)
    write_json(out / f"{shard.name}_stats.json", stats)
    return stats


def _remove_stale(out: Path, names: set[str]) -> None:
    """Shard files of an earlier export that this one does not have."""
    for p in out.iterdir():
        m = SHARD_FILE_RE.fullmatch(p.name)
        if m and m.group("name") not in names and p.is_file():
            p.unlink()


def _brace_pattern(split: str, n: int) -> str:
    last = f"{n - 1:0{SHARD_DIGITS}d}"
    return f"{split}-{last}.tar" if n == 1 else f"{split}-{{{0:0{SHARD_DIGITS}d}..{last}}}.tar"


def write_webdataset(export_dir: Path, samples: pa.Table, cfg: dict) -> dict:
    """Shards of the kept samples under EXPORT/webdataset/; returns counts, bytes and skipped samples.

    cfg is the recipe's `export` section (reads export.webdataset.shard_size, max_samples_per_shard)."""
    wcfg = need(cfg, "webdataset", "export")
    shard_size = int(need(wcfg, "shard_size", "export.webdataset"))
    max_count = need(wcfg, "max_samples_per_shard", "export.webdataset")
    max_count = None if max_count is None else int(max_count)
    if shard_size < 1 or (max_count is not None and max_count < 1):
        raise ValueError("export.webdataset.shard_size and max_samples_per_shard must be >= 1")
    export_dir = Path(export_dir)
    out = export_dir / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    sweep_tmp(out)
    resolved, skipped = resolved_samples(export_dir, samples)
    planned: list[PlannedSample] = []
    for row, files in resolved:
        p = plan_sample(row, files)
        if isinstance(p, str):
            skipped.append({"sample_id": row["sample_id"], "split": row.get("split"), "reason": p})
        else:
            planned.append(p)
    shards = pack_shards(planned, shard_size, max_count)
    schema = record_schema(samples.schema)
    stats = [write_shard(out, s, schema) for s in shards]
    _remove_stale(out, {s.name for s in shards})
    entries = [{k: st[k] for k in ("name", "split", "bytes", "first_key", "last_key")}
               | {"name": st["name"] + ".tar", "n_samples": st["count"]} for st in stats]
    splits = {}
    for split in sorted({s.split for s in shards}):
        mine = [e for e in entries if e["split"] == split]
        splits[split] = {"n_shards": len(mine), "n_samples": sum(e["n_samples"] for e in mine),
                         "bytes": sum(e["bytes"] for e in mine), "urls": _brace_pattern(split, len(mine))}
    totals = {"n_shards": len(entries), "n_samples": sum(e["n_samples"] for e in entries),
              "bytes": sum(e["bytes"] for e in entries), "n_skipped": len(skipped)}
    skipped = sorted(skipped, key=lambda s: str(s["sample_id"]))
    index = {"format": "webdataset", "key": "sample_id", "members": list(MEMBER_ORDER),
             "shard_size": shard_size, "max_samples_per_shard": max_count,
             "shards": entries, "splits": splits, "totals": totals, "skipped": skipped}
    write_json(out / "index.json", index)
    return {"dir": FOLDER, "index": f"{FOLDER}/index.json", **totals,
            "splits": {k: v["n_samples"] for k, v in splits.items()}, "skipped": skipped}
