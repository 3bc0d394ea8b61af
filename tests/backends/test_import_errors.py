"""A backend whose import fails is reported with the import error, never silently."""
from __future__ import annotations

import pytest

from s2vforge.backends.errors import BackendUnavailable
from s2vforge.backends.hf import import_first


def test_import_first_takes_the_first_that_imports():
    import json
    assert import_first("json dumps", "s2vforge_no_such_module:dumps", "json:dumps") is json.dumps
    assert import_first("json loads", "json:loads", "json:dumps") is json.loads


def test_import_first_carries_every_error_when_none_imports():
    with pytest.raises(BackendUnavailable) as info:
        import_first("CLIP image processor (PIL)", "json:NoSuchClassA", "s2vforge_no_such_module:B")
    msg = str(info.value)
    assert "CLIP image processor (PIL)" in msg
    assert "cannot import name 'NoSuchClassA' from 'json'" in msg
    assert "No module named 's2vforge_no_such_module'" in msg


def test_uri_exists_reports_a_filesystem_that_cannot_be_imported(monkeypatch):
    from s2vforge.inputs import InputError
    from s2vforge.media import fetch

    def no_s3fs(uri):
        raise ImportError("Install s3fs to access S3")
    monkeypatch.setattr(fetch, "open_fs", no_s3fs)
    with pytest.raises(InputError, match="cannot open s3://bucket/a.mp4: Install s3fs to access S3"):
        fetch.uri_exists("s3://bucket/a.mp4")


def test_uri_exists_is_false_for_a_missing_file(tmp_path):
    from s2vforge.media.fetch import uri_exists
    assert uri_exists(f"file://{tmp_path}/nope.mp4") is False
    (tmp_path / "yes.mp4").write_bytes(b"x")
    assert uri_exists(f"file://{tmp_path}/yes.mp4") is True
