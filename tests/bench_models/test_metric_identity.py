"""Every backend of every model metric says what it is: instance name (the runner files rows
under it), whether it is the official metric, whether the official normalisation applies, and
the settings that decide its values. Construction only: no model is loaded."""
from __future__ import annotations

import pytest

from s2vforge.bench.opens2v.metrics.aesthetic import AestheticScore
from s2vforge.bench.opens2v.metrics.facesim import FaceSimCur
from s2vforge.bench.opens2v.metrics.gme import GmeScore
from s2vforge.bench.opens2v.metrics.natural import NaturalScore
from s2vforge.bench.opens2v.metrics.nexus import NexusScore
from s2vforge.bench.opens2v.metrics.smoothness import MotionSmoothness

# (constructor, kwargs) -> (instance name, comparable, same_scale)
CASES = [
    (AestheticScore, {}, ("aesthetic", True, True)),
    (AestheticScore, {"n_frames": 8}, ("aesthetic", False, True)),
    (FaceSimCur, {}, ("facesim", True, True)),
    (FaceSimCur, {"n_frames": 4}, ("facesim", False, True)),
    (FaceSimCur, {"backend": "dlib"}, ("facesim_dlib", False, False)),
    (GmeScore, {}, ("gme", True, True)),
    (GmeScore, {"variant": "2B"}, ("gme_2b", False, True)),
    (GmeScore, {"backend": "clip"}, ("gme_clip", False, False)),
    (MotionSmoothness, {}, ("motion_smoothness", True, True)),
    (MotionSmoothness, {"thr": 0.05}, ("motion_smoothness", False, True)),
    (MotionSmoothness, {"backend": "vlm"}, ("smoothness_vlm", False, True)),
    (MotionSmoothness, {"backend": "brisque"}, ("smoothness_brisque", False, False)),
    (NexusScore, {"detector": "yoloworld"}, ("nexus", True, True)),
    (NexusScore, {"detector": "yoloworld", "keep_conf": 0.3}, ("nexus", False, True)),
    (NexusScore, {}, ("nexus_owlv2", False, True)),
    (NexusScore, {"backend": "gdino"}, ("nexus_grounding_dino", False, True)),
    (NexusScore, {"detector": "grounding-dino", "variant": "2b"}, ("nexus_grounding_dino_gme2b", False, True)),
    (NexusScore, {"embedder": "clip"}, ("nexus_owlv2_clip", False, False)),
    (NexusScore, {"detector": "yoloworld", "embedder": "clip"}, ("nexus_clip", False, False)),
]


@pytest.mark.parametrize("cls,kw,expected", CASES, ids=[f"{c.__name__}-{k}" for c, k, _ in CASES])
def test_backend_identity(cls, kw, expected):
    m = cls(**kw)
    assert (m.name, m.comparable, m.same_scale) == expected
    s = m.settings()
    assert s and all(isinstance(v, (str, int, float, bool, type(None))) for v in s.values())


def test_settings_tell_apart_what_changes_the_values():
    assert FaceSimCur(backend="dlib").settings() == {"backend": "dlib", "n_frames": 32}
    assert GmeScore(variant="2b").settings() == {"backend": "gme", "n_frames": 32, "variant": "2b"}
    a, b = NexusScore(prompt="text").settings(), NexusScore().settings()
    assert a["prompt"] == "text" and b["prompt"] == "auto" and a != b
    assert MotionSmoothness(backend="vlm", model_dir="/m/Qwen2-VL-2B").settings()["model"] == "Qwen2-VL-2B"
    assert MotionSmoothness(backend="brisque", long_side=256).settings()["long_side"] == 256


def test_bad_backend_choices_fail_at_construction():
    with pytest.raises(ValueError, match="unknown NexusScore detector"):
        NexusScore(detector="yolov8")
    with pytest.raises(ValueError, match="variant"):
        GmeScore(variant="72b")
    with pytest.raises(ValueError, match="prompt"):
        NexusScore(prompt="both")
    with pytest.raises(TypeError):
        NaturalScore(rnus=3)                 # a typo in -O natural.runs=3 is an error, not ignored


def test_natural_says_when_it_is_not_the_leaderboard_judge(tmp_path, monkeypatch):
    for k in ("S2VFORGE_JUDGE_MODEL", "S2VFORGE_JUDGE_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(k, raising=False)
    assert "reconstruction" in NaturalScore().fidelity_note()
    assert "judge qwen" in NaturalScore(model="qwen").fidelity_note()
    prompt = tmp_path / "official_prompt.txt"
    prompt.write_text("Rate 1-5.")
    m = NaturalScore(prompt_path=prompt)
    assert m.fidelity_note() is None
    assert m.settings()["prompt"].startswith("file official_prompt.txt sha256:")
    before = m.settings()["prompt"]
    prompt.write_text("Rate from 1 to 5.")
    assert m.settings()["prompt"] != before          # another prompt text: rows are not resumed across it
