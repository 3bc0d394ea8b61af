"""Reference open-vocabulary grounding per caption phrase (backends/detection.py), and the
missing-weights behaviour: recorded as unavailable while the embedded detectors still run."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from s2vforge.corpus.synth import load_photo
from s2vforge.recipes import load_recipe
from s2vforge.stages.subjects.detect import load_detectors
from s2vforge.stages.subjects.phrases import extract_phrases

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
DETECT = load_recipe(None)["subjects"]["detect"]       # the default recipe's subjects.detect


@pytest.mark.reference
def test_tiny_owlv2_grounds_each_caption_phrase(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch
    from bench_models.tiny_models import save_tiny_owlv2
    torch.set_num_threads(1)
    model_dir = save_tiny_owlv2(tmp_path / "owlv2")
    ds = load_detectors({**DETECT, "face": "none", "person": "none", "objects": "none", "grounding": "owlv2",
                         "grounding_model_dir": str(model_dir), "grounding_box_threshold": -1.0})
    assert ds.unavailable == {} and ds.names()["grounding"] == "owlv2"
    phrases = extract_phrases("A cat sits next to a red cup.", "spacy").phrases
    cands = ds.candidates(load_photo("chelsea"), phrases)
    assert cands, "a threshold of -1 keeps every box of the random model"
    assert {c["phrase"] for c in cands} == {"cat", "red cup"}
    assert {c["category"] for c in cands if c["phrase"] == "cat"} == {"animal"}
    assert all(c["backend"] == "owlv2" and c["single_instance"] for c in cands)
    h, w = load_photo("chelsea").shape[:2]
    assert all(0 <= c["box"][0] < c["box"][2] <= w and 0 <= c["box"][1] < c["box"][3] <= h for c in cands)


def test_missing_grounding_weights_are_recorded_and_embedded_detectors_still_run(tmp_path, monkeypatch):
    monkeypatch.setenv("S2VFORGE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ds = load_detectors({**DETECT, "grounding": "grounding-dino", "person": "none"})
    why = ds.unavailable["grounding:grounding-dino"]
    assert "IDEA-Research/grounding-dino-base" in why and str(tmp_path / "models") in why
    assert ds.grounding is None and ds.face is not None
    assert os.environ["HOME"] == str(tmp_path / "home")
