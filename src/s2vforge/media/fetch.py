"""Inputs named by fsspec URIs (s3://, gs://, memory://, file://): one place that turns a URI
into bytes a decoder can read.

Decoders (PyAV/FFmpeg, OpenCV) want a local file; a remote object is streamed to a
worker-local temporary file for the duration of one stage call and removed afterwards. Ids
must not depend on where bytes live: `uri_fingerprint` hashes exactly what
`schema.content_fingerprint` hashes, so the same video has the same video_id as a local path
or as a URI.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from typing import Iterator


COPY_CHUNK = 8 << 20


def is_uri(path) -> bool:
    """True for `proto://...` strings other than plain local paths (file:// counts as a URI)."""
    return isinstance(path, str) and "://" in path[:32] and path.split("://", 1)[0].isidentifier()


def is_remote(path) -> bool:
    """A URI whose bytes are not on the local filesystem (everything but file://)."""
    return is_uri(path) and not path.startswith("file://")


def file_uri_to_path(uri: str) -> str:
    from urllib.parse import unquote, urlparse
    p = urlparse(uri)
    if p.netloc not in ("", "localhost"):
        raise ValueError(f"file URI with a host is not local: {uri}")
    return unquote(p.path)


def open_fs(uri: str):
    import fsspec
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def uri_exists(uri: str) -> bool:
    """Whether `uri` names a file. A filesystem that cannot be imported (fsspec, or its s3fs /
    gcsfs for the URI's protocol) is an InputError carrying the ImportError, not a missing file."""
    try:
        fs, path = open_fs(uri)
        return fs.isfile(path)
    except ImportError as e:
        from ..inputs import InputError
        raise InputError(f"cannot open {uri}: {e}") from e
    except (OSError, ValueError):
        return False


def uri_size(uri: str) -> int:
    fs, path = open_fs(uri)
    return int(fs.size(path))


def uri_fingerprint(uri: str) -> str:
    """schema.content_fingerprint over a URI's bytes, reading only the sampled chunks."""
    from ..schema import fingerprint_stream
    fs, path = open_fs(uri)
    with fs.open(path, "rb") as f:
        return fingerprint_stream(f, int(fs.size(path)))


def video_id_for_uri(uri: str) -> str:
    """schema.video_id_for for a URI: content id when readable and non-empty, else path id."""
    try:
        if uri_size(uri) > 0:
            return "v" + uri_fingerprint(uri)[:16]
    except (OSError, ValueError):
        pass
    return "v" + hashlib.blake2b(b"path:" + uri.encode(), digest_size=8).hexdigest()


@contextlib.contextmanager
def local_copy(path_or_uri, tmp_dir: str | None = None) -> Iterator[str]:
    """A local path holding the bytes of `path_or_uri` for the duration of the block.

    Local paths and file:// URIs are yielded as they are (no copy); other URIs are streamed in
    8 MiB chunks to a temporary file (keeping the suffix, which FFmpeg uses as a format hint)
    that is removed on exit."""
    if not is_uri(path_or_uri):
        yield path_or_uri
        return
    if path_or_uri.startswith("file://"):
        yield file_uri_to_path(path_or_uri)
        return
    fs, rpath = open_fs(path_or_uri)
    suffix = os.path.splitext(rpath)[1][:16]
    fd, tmp = tempfile.mkstemp(prefix="s2vforge-fetch-", suffix=suffix, dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as dst, fs.open(rpath, "rb") as src:
            shutil.copyfileobj(src, dst, COPY_CHUNK)
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
