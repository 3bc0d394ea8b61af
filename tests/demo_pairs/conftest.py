"""The demo chain's tables (tests/conftest.py demo_chain) plus its ground truth, keyed for the checks."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from s2vforge.corpus.synth import DEMO_TRUTH_NAME


@pytest.fixture(scope="session")
def demo_pairs(demo_chain) -> dict:
    """demo_chain (tests/conftest.py: the demo corpus through curate -> caption -> subjects -> pair,
    shared with the export and loader tests) as tables keyed for the checks."""
    corpus, ds = demo_chain["corpus"], demo_chain["dataset"]
    truth = json.loads((corpus / DEMO_TRUTH_NAME).read_text())

    def rows(name: str) -> list[dict]:
        return pq.read_table(ds / f"{name}.parquet").to_pylist()

    file_to_name = {v["file"]: k for k, v in truth["videos"].items()}
    videos = {v["video_id"]: file_to_name[Path(v["path"]).name] for v in rows("videos")}
    return {"dataset": ds, "truth": truth, "videos": videos, "clips": {c["clip_id"]: c for c in rows("clips")},
            "subjects": {s["subject_id"]: s for s in rows("subjects")}, "pairs": rows("pairs")}
