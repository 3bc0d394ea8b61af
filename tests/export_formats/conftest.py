"""Fixtures of the format-writer tests: the fixture export (formats_fixture.build_export), copies of it, the cfg."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from formats_fixture import build_export


@pytest.fixture(scope="session")
def export_template(tmp_path_factory) -> Path:
    """The fixture export, built once; copy it (export_copy) before writing into it."""
    return build_export(tmp_path_factory.mktemp("export_template") / "export")


@pytest.fixture()
def export_copy(export_template, tmp_path):
    """A fresh copy of the fixture export: copy(name) -> its path."""
    def copy(name: str = "export") -> Path:
        dest = tmp_path / name
        shutil.copytree(export_template, dest)
        return dest
    return copy


@pytest.fixture(scope="session")
def format_cfg() -> dict:
    """The export section keys the three writers read (values as the recipe block in docs/formats.md)."""
    return {"webdataset": {"shard_size": 3_000_000_000, "max_samples_per_shard": 100_000},
            "lance": {"clip_blob": True, "batch_rows": 64},
            "hf": {"max_shard_size": 500_000_000, "row_group_bytes": 100_000_000}}
