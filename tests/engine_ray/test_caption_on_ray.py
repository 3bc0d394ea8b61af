"""The caption stage on a local Ray gives the local engine's table byte for byte."""
from __future__ import annotations

import shutil

import pytest

from s2vforge.cli import run_caption_command

pytest.importorskip("ray")


def test_caption_on_ray_equals_local(ray_session, local_ds, recipe, tmp_path):
    a, b = tmp_path / "local", tmp_path / "ray"
    for d in (a, b):
        shutil.copytree(local_ds, d)
        shutil.rmtree(d / ".work" / "caption", ignore_errors=True)
    assert run_caption_command(a, str(recipe), 1, quiet=True) == 0
    assert run_caption_command(b, str(recipe), 2, engine="ray", quiet=True) == 0
    assert (a / "captions.parquet").read_bytes() == (b / "captions.parquet").read_bytes()
    # a rerun on Ray redoes nothing
    assert run_caption_command(b, str(recipe), 2, engine="ray", quiet=True) == 0
    import json
    s = json.loads((b / "caption_run.json").read_text())["summary"]
    assert s["n_skipped_done"] == s["n_items"] > 0
