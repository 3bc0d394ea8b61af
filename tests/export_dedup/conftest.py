"""The small duplicate corpus (real packaged media, known truth), built and embedded once per session."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest



@pytest.fixture(scope="session")
def dedup_cfg() -> dict:
    from s2vforge.recipes import load_recipe
    return load_recipe()["export"]["dedup"]       # the shipped defaults


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> tuple[dict, Path]:
    from s2vforge.corpus.duplicates import build_duplicate_corpus
    root = tmp_path_factory.mktemp("dup_corpus")
    truth = build_duplicate_corpus(root, "small")
    assert json.loads((root / "truth.json").read_text())["clips"] == truth["clips"]
    return truth, root


@pytest.fixture(scope="session")
def small_vectors(small_corpus, dedup_cfg) -> tuple[list[dict], np.ndarray]:
    """(clip rows as find_duplicates reads them, their vectors) in clip_id order."""
    from s2vforge.corpus.duplicates import clip_rows
    from s2vforge.stages.export.dedup import ClipEmbedder
    truth, root = small_corpus
    emb = ClipEmbedder(dedup_cfg)
    emb.setup()
    rows = clip_rows(truth, root)
    return rows, np.stack([emb.embed(Path(r["path"])) for r in rows])
