import dataclasses

import pytest

from s2vforge.recipes import load_recipe
from s2vforge.stages import scores
from s2vforge.stages.recipe_keys import MissingRecipeKey
from s2vforge.stages.scores import SCORERS, Scorer, run_scorers

PARAMS = load_recipe(None)["scorer_params"]           # the default recipe's scorer settings


def test_registry_names_and_columns():
    assert set(SCORERS) == {"luminance", "blur", "motion", "brisque", "nsfw", "aesthetic"}
    for name, scorer in SCORERS.items():
        assert scorer.name == name and scorer.description
        assert scorer.columns and all(c.startswith("score_") for c in scorer.columns)
    assert SCORERS["blur"].columns == ("score_blur_cpbd", "score_blur_laplacian")
    assert SCORERS["aesthetic"].needs_model and not SCORERS["luminance"].needs_model


def test_run_scorers_records_missing_backend_instead_of_raising(carphone, isolated_models, few_frames):
    names = ["luminance", "blur", "motion", "aesthetic"]
    values, unavailable, failed = run_scorers(few_frames(carphone, 3), names, PARAMS)
    assert set(values) == {c for n in names for c in SCORERS[n].columns}
    assert values["score_aesthetic"] is None
    assert all(isinstance(values[c], float) for c in values if c != "score_aesthetic")
    assert list(unavailable) == ["aesthetic"]
    reason = unavailable["aesthetic"]
    assert "clip-vit-large-patch14" in reason and str(isolated_models / "clip-vit-large-patch14") in reason


def test_run_scorers_survives_a_failing_scorer(carphone, monkeypatch):
    def boom(frames, **params):
        raise RuntimeError("decoder hiccup")

    monkeypatch.setitem(SCORERS, "boom", Scorer("boom", ("score_boom",), boom))
    values, unavailable, failed = run_scorers(carphone, ["boom", "luminance"], {})
    assert values["score_boom"] is None and values["score_luminance"] > 0
    assert "decoder hiccup" in failed["boom"] and carphone.clip_id in failed["boom"]
    assert unavailable == {}


def test_run_scorers_rejects_unknown_names(carphone):
    with pytest.raises(ValueError, match="sharpness"):
        run_scorers(carphone, ["sharpness"], {})


def test_run_scorers_turns_nan_into_none(carphone, monkeypatch):
    monkeypatch.setitem(SCORERS, "nan", Scorer("nan", ("score_nan",), lambda frames: {"score_nan": float("nan")}))
    values, unavailable, failed = run_scorers(carphone, ["nan"], {})
    assert values == {"score_nan": None} and unavailable == {} and failed == {}


def test_empty_clip_gives_none_everywhere(carphone):
    empty = dataclasses.replace(carphone, rgb=[], times=[], next_rgb=[], next_dt=[])
    names = ["luminance", "blur", "motion", "brisque", "nsfw"]
    values, unavailable, failed = run_scorers(empty, names, PARAMS)
    assert unavailable == {} and all(v is None for v in values.values())


def test_every_scorer_setting_comes_from_scorer_params(carphone):
    """Each scorer's settings are required keywords, all set by the default recipe; a missing one
    is a recipe error naming its key, raised before any clip is scored."""
    for name, scorer in SCORERS.items():
        assert set(scores.required_params(scorer)) == set(PARAMS[name]), name
    partial = {**PARAMS, "blur": {"long_side": 512}}
    with pytest.raises(MissingRecipeKey, match="scorer_params.blur.max_frames"):
        run_scorers(carphone, ["luminance", "blur"], partial)


def test_importing_the_registry_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, s2vforge.stages.scores; "
            "print(sorted(m for m in ('torch', 'transformers', 'onnxruntime', 'nudenet') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert scores.__all__ == ["Scorer", "SCORERS", "run_scorers"]
