"""Expand curate's INPUT arguments (files, folders, manifests) into input items.

Folders are walked recursively as bytes, so names that are not valid UTF-8 still become
inputs. Every file that could be a video becomes an input (and gets a row, ok or not);
only obvious sidecars (captions, metadata, images) are skipped.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".parquet")
SIDECAR_SUFFIXES = {b".json", b".jsonl", b".csv", b".parquet", b".txt", b".md", b".srt", b".vtt", b".ass",
                    b".jpg", b".jpeg", b".png", b".webp", b".bmp", b".yaml", b".yml", b".part", b".html"}


class InputError(ValueError):
    pass


def expand_inputs(args: list[str | bytes]) -> list[dict]:
    """[{path, caption, group_id}] in a stable order (argument order, then sorted within folders)."""
    items: list[dict] = []
    for arg in args:
        raw = os.fsencode(arg)
        if os.path.isdir(raw):
            items.extend({"path": _fs(p), "caption": None, "group_id": None} for p in _walk(raw))
        elif raw.lower().endswith(tuple(s.encode() for s in MANIFEST_SUFFIXES)) and os.path.isfile(raw):
            items.extend(read_manifest(os.fsdecode(raw)))
        elif os.path.lexists(raw):
            items.append({"path": _fs(raw), "caption": None, "group_id": None})
        else:
            # a missing path is still an input the user asked for: it gets an error row
            items.append({"path": _fs(raw), "caption": None, "group_id": None, "missing": True})
    return items


def _walk(root: bytes) -> list[bytes]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(b"."))
        for name in sorted(filenames):
            if name.startswith(b"."):
                continue
            if os.path.splitext(name)[1].lower() in SIDECAR_SUFFIXES:
                continue
            out.append(os.path.join(dirpath, name))
    return out


def _fs(raw: bytes) -> str:
    """A str path that round-trips any bytes (surrogateescape), usable with open()/os.*."""
    return os.fsdecode(raw)


def read_manifest(path: str) -> list[dict]:
    """CSV / JSONL / Parquet with a `path` column and optional `caption`, `group_id`; relative
    paths resolve against the manifest's folder."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        import csv
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    elif suffix == ".jsonl":
        rows = []
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"{p}:{n}: not valid JSON ({e.msg})") from None
    else:
        import pyarrow.parquet as pq
        rows = pq.read_table(p).to_pylist()
    if rows and "path" not in rows[0]:
        raise InputError(f"manifest {p} has no `path` column (columns: {sorted(rows[0])})")
    items = []
    for r in rows:
        rp = str(r.get("path") or "")
        full = rp if os.path.isabs(rp) else str(p.parent / rp)
        item = {"path": full, "caption": _opt(r.get("caption")), "group_id": _opt(r.get("group_id"))}
        if not os.path.lexists(full):
            item["missing"] = True
        items.append(item)
    return items


def _opt(v) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None
