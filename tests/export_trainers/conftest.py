"""Fixtures: the small export folder of trainer_export.py, built once, copied per test."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trainer_export import build_export


@pytest.fixture(scope="session")
def base_export(tmp_path_factory) -> Path:
    return build_export(tmp_path_factory.mktemp("export_base") / "EXPORT")


@pytest.fixture()
def export_dir(base_export, tmp_path) -> Path:
    """A fresh copy of the export folder (no trainers/ yet) per test."""
    dest = tmp_path / "EXPORT"
    shutil.copytree(base_export, dest)
    return dest
