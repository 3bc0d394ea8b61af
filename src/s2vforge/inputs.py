"""Expand curate's INPUT arguments (files, folders, manifests) into input items.

Folders are walked recursively as bytes, so names that are not valid UTF-8 still become
inputs. Every file that could be a video becomes an input (and gets a row, ok or not);
only obvious sidecars (captions, metadata, images) are skipped.

Arguments (and manifest `path` values) may be fsspec URIs: file:// URIs become the local path
they name (so ids and rows are those of the path); other URIs (s3://, gs://, memory://, ...)
stay URIs, listed with fsspec, and are streamed to a worker-local file when a stage reads
them (media.fetch.local_copy, applied by engine.worker.StageHost).
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
    from .media.fetch import file_uri_to_path, is_remote, is_uri
    items: list[dict] = []
    for arg in args:
        if is_remote(arg):
            items.extend(_expand_remote(arg))
            continue
        if is_uri(arg):
            arg = file_uri_to_path(arg)
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


def _expand_remote(uri: str) -> list[dict]:
    """A remote URI: a manifest, a folder (listed recursively, sorted) or one object."""
    from .media.fetch import open_fs
    try:
        fs, path = open_fs(uri)
    except (ImportError, ValueError) as e:
        raise InputError(f"cannot open {uri}: {e}") from None
    if uri.lower().endswith(MANIFEST_SUFFIXES) and fs.isfile(path):
        return read_manifest(uri)
    if fs.isdir(path):
        out = []
        root = path.rstrip("/")
        for p in sorted(fs.find(path)):
            rel = p[len(root) + 1:] if p.startswith(root + "/") else p.rsplit("/", 1)[-1]
            if any(x.startswith(".") for x in rel.split("/")) or os.path.splitext(p)[1].lower().encode() in SIDECAR_SUFFIXES:
                continue
            out.append(_remote_item(f"{uri.rstrip('/')}/{rel}"))   # children named as the user named the folder
        return out
    item = _remote_item(uri)
    if not fs.isfile(path):
        item["missing"] = True
    return [item]


def _remote_item(uri: str, caption=None, group_id=None) -> dict:
    return {"path": uri, "caption": caption, "group_id": group_id, "uri": uri}


def _fs(raw: bytes) -> str:
    """A str path that round-trips any bytes (surrogateescape), usable with open()/os.*."""
    return os.fsdecode(raw)


def read_manifest(path: str) -> list[dict]:
    """CSV / JSONL / Parquet with a `path` column and optional `caption`, `group_id`; relative
    paths resolve against the manifest's folder."""
    from .media.fetch import is_remote
    if is_remote(path):
        return _read_remote_manifest(path)
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
    return _manifest_items(rows, str(p.parent), str(p), remote_base=None)


def _parse_rows(text_or_bytes, suffix: str, name: str) -> list[dict]:
    if suffix == ".csv":
        import csv
        import io
        return list(csv.DictReader(io.StringIO(text_or_bytes.decode("utf-8"))))
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text_or_bytes.decode("utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"{name}:{n}: not valid JSON ({e.msg})") from None
        return rows
    import io
    import pyarrow.parquet as pq
    return pq.read_table(io.BytesIO(text_or_bytes)).to_pylist()


def _read_remote_manifest(uri: str) -> list[dict]:
    from .media.fetch import open_fs
    fs, path = open_fs(uri)
    with fs.open(path, "rb") as f:
        data = f.read()
    rows = _parse_rows(data, os.path.splitext(path)[1].lower(), uri)
    return _manifest_items(rows, uri.rsplit("/", 1)[0], uri, remote_base=uri.rsplit("/", 1)[0])


def _manifest_items(rows: list[dict], base: str, name: str, remote_base: str | None) -> list[dict]:
    """Manifest rows as items: URIs kept (file:// made local), relative paths joined to the
    manifest's folder (a URI folder for a remote manifest)."""
    from .media.fetch import file_uri_to_path, is_remote, is_uri, uri_exists
    if rows and "path" not in rows[0]:
        raise InputError(f"manifest {name} has no `path` column (columns: {sorted(rows[0])})")
    items = []
    for r in rows:
        rp = str(r.get("path") or "")
        cap, grp = _opt(r.get("caption")), _opt(r.get("group_id"))
        if is_uri(rp) and not is_remote(rp):
            rp = file_uri_to_path(rp)
        if is_remote(rp) or (remote_base and not os.path.isabs(rp)):
            uri = rp if is_remote(rp) else f"{remote_base}/{rp}"
            item = _remote_item(uri, cap, grp)
            if not uri_exists(uri):
                item["missing"] = True
            items.append(item)
            continue
        full = rp if os.path.isabs(rp) else str(Path(base) / rp)
        item = {"path": full, "caption": cap, "group_id": grp}
        if not os.path.lexists(full):
            item["missing"] = True
        items.append(item)
    return items


def input_id(path: str) -> str:
    """schema.video_id_for for a path or URI: the same bytes give the same id wherever they live."""
    from .media.fetch import is_remote, video_id_for_uri
    from .schema import video_id_for
    return video_id_for_uri(path) if is_remote(path) else video_id_for(path)


def _opt(v) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None
