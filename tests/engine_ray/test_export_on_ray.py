"""The export stage on a local Ray writes the local engine's samples and files byte for byte."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from s2vforge.cli import run_export_command

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.relative_to(root).as_posix().startswith(".work")
            and p.name not in ("export_run.json", "report.html")}


def test_export_on_ray_equals_local(ray_session, demo_chain, tmp_path):
    a, b = tmp_path / "local", tmp_path / "ray"
    ds = demo_chain["dataset"]
    assert run_export_command(ds, a, "samples,webdataset", None, 1, split="val=0.3", quiet=True) == 0
    assert run_export_command(ds, b, "samples,webdataset", None, 2, split="val=0.3", engine="ray", quiet=True) == 0
    ta, tb = _tree(a), _tree(b)
    assert ta == tb and "samples.parquet" in ta and any(k.startswith("webdataset/") for k in ta)
    assert run_export_command(ds, b, "samples,webdataset", None, 2, split="val=0.3", engine="ray", quiet=True) == 0
    s = json.loads((b / "export_run.json").read_text())["summary"]
    assert s["n_skipped_done"] == s["n_items"] > 0
