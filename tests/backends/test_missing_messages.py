"""What a missing model or a missing extra tells the user, through the commands.

- missing reference weights: the model, every place looked, $S2VFORGE_MODELS and `--models DIR`;
- `--models DIR` (every stage command) is what the backends and the workers search;
- a missing extra: one line naming the extra and its `pip install` command, however deep the
  import failed (no nested, repeated messages).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from s2vforge.backends.errors import (BackendUnavailable, MissingExtra, ModelNotFound, missing_extra,
                                      missing_extra_message)
from s2vforge.backends.paths import MODELS_ENV, find_model_dir, model_search_dirs, set_models_dir
from s2vforge.cli import app


@pytest.fixture
def no_model_caches(tmp_path, monkeypatch):
    """No weights anywhere: an empty home, HF cache and no $S2VFORGE_MODELS (restored afterwards,
    also when a command sets it)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv(MODELS_ENV, raising=False)
    return home


@pytest.fixture(scope="module")
def identity_dataset(tmp_path_factory) -> Path:
    """A tiny dataset with subjects (real packaged photos composited into clips), built once."""
    from s2vforge.corpus.identity import build_identity_dataset
    ds = tmp_path_factory.mktemp("ids") / "ds"
    build_identity_dataset(ds, seed=1, scale="tiny")
    return ds


@pytest.fixture
def fresh_dataset(identity_dataset, tmp_path, monkeypatch):
    """A copy nobody paired yet, and no embedder cached in this process."""
    from s2vforge.stages.pairs import diversity, embed
    monkeypatch.setattr(diversity, "_EMBEDDERS", {})
    embed.clear_embedder_cache()
    ds = tmp_path / "ds"
    shutil.copytree(identity_dataset, ds)
    yield ds
    embed.clear_embedder_cache()


def _pair(ds: Path, *args):
    recipe = ds.parent / "dinov2.yaml"
    recipe.write_text("pairs:\n  context: {backend: dinov2, device: cpu}\n")
    return CliRunner().invoke(app, ["pair", str(ds), "-r", str(recipe), "-w", "1", *map(str, args)])


def _notes(output: str) -> dict[str, str]:
    out = {}
    for line in output.splitlines():
        if line.startswith("note: ") and " not computed: " in line:
            name, why = line[len("note: "):].split(" not computed: ", 1)
            out[name] = why
    return out


def _child_env(name: str):
    return os.environ.get(name)


# ------------------------------------------------------------------------------- missing weights

def test_model_not_found_names_model_places_env_and_option(no_model_caches, tmp_path, monkeypatch):
    with pytest.raises(ModelNotFound) as info:
        find_model_dir("dinov2-base", "facebook/dinov2-base", model_label="DINOv2 (dinov2-base)")
    msg = str(info.value)
    assert msg.startswith("DINOv2 (dinov2-base) is not available. Looked in: ")
    for d in model_search_dirs("dinov2-base", "facebook/dinov2-base"):
        assert str(d) in msg
    assert str(no_model_caches / ".cache" / "s2vforge" / "models" / "dinov2-base") in msg
    assert "$S2VFORGE_MODELS=DIR" in msg and "`--models DIR`" in msg and "DIR/dinov2-base/" in msg
    assert "$S2VFORGE_MODELS is not set now" in msg
    # with $S2VFORGE_MODELS set, its folder is among the places looked
    monkeypatch.setenv(MODELS_ENV, str(tmp_path / "models"))
    with pytest.raises(ModelNotFound) as info:
        find_model_dir("dinov2-base", "facebook/dinov2-base", explicit=tmp_path / "given")
    msg = str(info.value)
    assert f"{tmp_path / 'given'}; {tmp_path / 'models' / 'dinov2-base'}; " in msg and "not set now" not in msg


def test_every_model_not_found_says_how_to_point_at_a_models_folder(no_model_caches):
    """Also the searches that build their own ModelNotFound (ONNX files found recursively)."""
    from s2vforge.backends.identity import find_face_onnx
    with pytest.raises(ModelNotFound) as info:
        find_face_onnx("arcface")
    msg = str(info.value)
    assert "arcface face embedding ONNX" in msg and "S2VFORGE_MODELS" in msg and "--models DIR" in msg
    assert "DIR/insightface-buffalo_l/" in msg        # named from the directories it searched


def test_set_models_dir_is_what_find_model_dir_searches(no_model_caches, tmp_path, monkeypatch):
    weights = tmp_path / "my models" / "tiny-model"
    weights.mkdir(parents=True)
    (weights / "config.json").write_text("{}")
    set_models_dir(tmp_path / "my models")
    assert os.environ[MODELS_ENV] == str((tmp_path / "my models").resolve())
    assert find_model_dir("tiny-model") == weights
    # a spawned worker (the local engine's pool, a local Ray) inherits it
    with mp.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_child_env, (MODELS_ENV,)) == str((tmp_path / "my models").resolve())


@pytest.mark.parametrize("command", ["curate", "subjects", "pair", "demo"])
def test_every_stage_command_takes_models(command):
    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert res.exit_code == 0 and "--models" in res.output and "S2VFORGE_MODELS" in res.output, res.output


def test_models_folder_that_does_not_exist_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.delenv(MODELS_ENV, raising=False)
    (tmp_path / "data").mkdir()
    res = CliRunner().invoke(app, ["subjects", str(tmp_path / "data"), "--models", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.strip().splitlines() == [
        f"error: --models {tmp_path / 'nope'}: no such folder (it should hold one folder of weights per model, "
        f"DIR/<model name>/)"]


@pytest.mark.reference
def test_pair_without_weights_then_with_models_dir(no_model_caches, identity_dataset, fresh_dataset, tmp_path):
    """A recipe selecting DINOv2 (the cheapest reference backend of a stage): without weights the
    run says what is missing, in one note line; `pair --models DIR` with tiny saved DINOv2
    weights in DIR/dinov2-base uses them (and sets $S2VFORGE_MODELS for its workers)."""
    transformers = pytest.importorskip("transformers")
    res = _pair(fresh_dataset)
    assert res.exit_code == 0, res.output
    why = _notes(res.output)["context"]
    assert why.startswith("DINOv2 (dinov2-base) is not available. Looked in: ")
    assert "$S2VFORGE_MODELS=DIR" in why and "`--models DIR`" in why and "DIR/dinov2-base/" in why
    for d in model_search_dirs("dinov2-base", "facebook/dinov2-base"):
        assert str(d) in why

    models = tmp_path / "models"
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64, image_size=56, patch_size=14)
    transformers.Dinov2Model(cfg).eval().save_pretrained(models / "dinov2-base")
    again = tmp_path / "again"
    shutil.copytree(identity_dataset, again)
    res = _pair(again, "--models", models, "--json", "-q")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert "context" not in summary["unavailable"], summary["unavailable"]
    assert os.environ[MODELS_ENV] == str(models.resolve())      # what spawned workers inherit
    run = json.loads((again / "pairs_run.json").read_text())
    assert run["config"]["context"]["backend"] == "dinov2"


# ------------------------------------------------------------------------------- missing extras

def test_missing_extra_is_one_line_without_the_nested_errors():
    try:
        import dlib_is_not_installed  # noqa: F401
    except ImportError as exc:
        inner = missing_extra("faces", "dlib face embeddings (facesim_dlib)", ModuleNotFoundError(
            "No module named 'dlib'", name="dlib"))
        outer = BackendUnavailable.missing_extra("faces", "dlib face identity (dlib-face-128)", inner)
        other = missing_extra("faces", "dlib HOG face detector", exc)
    assert str(inner) == "dlib face embeddings (facesim_dlib) needs the faces extra: pip install 's2vforge[faces]'"
    assert str(outer) == "dlib face identity (dlib-face-128) needs the faces extra: pip install 's2vforge[faces]'"
    assert isinstance(outer, MissingExtra) and isinstance(outer, BackendUnavailable) and outer.extra == "faces"
    assert str(other).endswith("pip install 's2vforge[faces]' (no module named 'dlib_is_not_installed')")
    # an installed but too old package: the short reason, without the file path
    old = ImportError("cannot import name 'Sam2Model' from 'transformers' (/venv/site-packages/transformers/__init__.py)",
                      name="transformers")
    assert missing_extra_message("reference", "SAM 2", old) == (
        "SAM 2 needs the reference extra: pip install 's2vforge[reference]' "
        "(cannot import name 'Sam2Model' from 'transformers')")


def test_reference_helpers_say_the_extra(monkeypatch):
    from s2vforge.backends.hf import import_first, require_torch_transformers
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingExtra) as info:
        require_torch_transformers("DINOv2 background embedder")
    assert str(info.value) == "DINOv2 background embedder needs the reference extra: pip install 's2vforge[reference]'"
    with pytest.raises(MissingExtra) as info:
        import_first("CLIP processor", "transformers:CLIPImageProcessorFast", "transformers:CLIPImageProcessor")
    assert str(info.value) == "CLIP processor needs the reference extra: pip install 's2vforge[reference]'"


def test_engine_ray_without_ray_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    (tmp_path / "videos").mkdir()
    res = CliRunner().invoke(app, ["curate", str(tmp_path / "videos"), "--out", str(tmp_path / "out"),
                                   "--engine", "ray"])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines() == ["error: --engine ray needs the ray extra: pip install 's2vforge[ray]'"]


@pytest.mark.reference
def test_pair_without_faces_and_reference_extras_says_each_once(no_model_caches, fresh_dataset, monkeypatch):
    """dlib and torch not importable (as on a machine without the faces / reference extras): `pair`
    still runs, and each backend's note is one line naming its extra and the pip command."""
    monkeypatch.setitem(sys.modules, "dlib", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    res = _pair(fresh_dataset)
    assert res.exit_code == 0, res.output
    notes = _notes(res.output)
    faces = "dlib face identity (dlib-face-128) needs the faces extra: pip install 's2vforge[faces]'"
    assert notes["embed_face"] == faces and notes["embed_person"] == faces, notes
    assert notes["context"] == "DINOv2 background embedder needs the reference extra: pip install 's2vforge[reference]'"
    for line in res.output.splitlines():
        assert line.count("pip install") <= 1 and "is not available" not in line, line
