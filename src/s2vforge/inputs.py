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


def expand_inputs(args: list[str | bytes], exclude: list[str | os.PathLike] = ()) -> list[dict]:
    """[{path, caption, group_id}] in a stable order (argument order, then sorted within folders).
    Folders in `exclude` (the run's own output) are never walked into. An input that cannot be
    listed or read (a manifest line, a folder) is an item with an `error`: it gets an error row."""
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
            items.extend(_walk(raw, {os.path.realpath(os.fsencode(x)) for x in exclude}))
        elif raw.lower().endswith(tuple(s.encode() for s in MANIFEST_SUFFIXES)) and os.path.isfile(raw):
            items.extend(read_manifest(os.fsdecode(raw)))
        elif os.path.lexists(raw):
            items.append({"path": _fs(raw), "caption": None, "group_id": None})
        else:
            # a missing path is still an input the user asked for: it gets an error row
            items.append({"path": _fs(raw), "caption": None, "group_id": None, "missing": True})
    return items


def _walk(root: bytes, exclude: set[bytes]) -> list[dict]:
    out: list[dict] = []

    def unreadable(e: OSError) -> None:     # os.walk would skip it silently
        where = e.filename if e.filename is not None else root
        out.append(_error_item(_fs(os.fsencode(where)), f"cannot read folder: {e.strerror or e}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(b".")
                             and os.path.realpath(os.path.join(dirpath, d)) not in exclude)
        for name in sorted(filenames):
            if name.startswith(b"."):
                continue
            if os.path.splitext(name)[1].lower() in SIDECAR_SUFFIXES:
                continue
            out.append({"path": _fs(os.path.join(dirpath, name)), "caption": None, "group_id": None})
    return out


def _error_item(where: str, message: str) -> dict:
    """An input that could not even be listed: its row says why."""
    return {"path": where, "caption": None, "group_id": None, "error": message}


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
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read manifest {p}: {e.strerror or e}") from None
    rows = _parse_rows(data, p.suffix.lower(), str(p))
    return _manifest_items(rows, str(p.parent), str(p), remote_base=None)


def manifest_lines(data: bytes, name: str) -> list[tuple[int, str | None, str | None]]:
    """(line number, text, error) for each line of a text manifest. UTF-8 (a BOM is dropped);
    a file with no UTF-8 multi-byte sequence at all but bytes >= 0x80 is Latin-1; in a UTF-8
    file, a line that does not decode is an error of that line only."""
    import re
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "utf-8" if re.search(rb"[\xc2-\xf4][\x80-\xbf]", data) else "latin-1"
    out = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            out.append((n, raw.decode(encoding), None))
        except UnicodeDecodeError as e:
            out.append((n, None, f"{name}:{n}: not valid {encoding} text (byte 0x{raw[e.start]:02x} at column {e.start + 1})"))
    return out


def _parse_rows(data: bytes, suffix: str, name: str) -> list[dict]:
    """Manifest rows; a line that cannot be read is a row {"_error": ...} of its own."""
    if suffix in (".csv", ".jsonl"):
        lines = manifest_lines(data, name)
        bad = [{"_error": err, "_line": n} for n, _, err in lines if err]
        good = [(n, text) for n, text, err in lines if not err]
        rows = _csv_rows(good, name) if suffix == ".csv" else _jsonl_rows(good, name)
        return sorted(rows + bad, key=lambda r: r["_line"])
    import io
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as e:   # noqa: BLE001 - any Arrow error: the manifest as a whole is unreadable
        raise InputError(f"manifest {name} is not a readable Parquet file: {e}") from None
    if "path" not in table.column_names:
        raise InputError(f"manifest {name} has no `path` column (columns: {sorted(table.column_names)})")
    return [{**r, "_line": k + 1} for k, r in enumerate(table.to_pylist())]


def _csv_rows(lines: list[tuple[int, str]], name: str) -> list[dict]:
    import csv
    numbers = [n for n, _ in lines]
    reader = csv.reader(text for _, text in lines)
    header, rows, start = None, [], 0
    try:
        for rec in reader:
            n = numbers[start] if start < len(numbers) else numbers[-1]
            start = reader.line_num
            if header is None:
                header = [h.strip() for h in rec]
                continue
            if not rec:        # an empty line; a line of empty cells is a row with a blank path
                continue
            rows.append({**dict(zip(header, rec)), "_line": n})
    except csv.Error as e:
        rows.append({"_error": f"{name}:{numbers[min(start, len(numbers) - 1)]}: {e}", "_line": numbers[-1]})
    if header is None:
        raise InputError(f"manifest {name} is empty: it needs a header line with a `path` column")
    if "path" not in header:
        raise InputError(f"manifest {name} has no `path` column (columns: {sorted(header)})")
    return rows


def _jsonl_rows(lines: list[tuple[int, str]], name: str) -> list[dict]:
    rows = []
    for n, text in lines:
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            rows.append({"_error": f"{name}:{n}: not valid JSON ({e.msg})", "_line": n})
            continue
        if not isinstance(row, dict):
            rows.append({"_error": f"{name}:{n}: a line must be a JSON object with a `path`", "_line": n})
            continue
        rows.append({**row, "_line": n})
    return rows


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
    items = []
    for r in rows:
        where = f"{name}:{r.get('_line')}"
        if r.get("_error"):
            items.append(_error_item(where, r["_error"]))
            continue
        rp = str(r.get("path") or "").strip()
        if not rp:
            items.append(_error_item(where, f"{where}: the `path` cell is empty"))
            continue
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
