"""A broken `--recipe` file is a usage error (exit 2) told in one line per problem, before any work:
YAML mistakes as FILE:LINE:COL from yaml's problem mark, and every key the default recipe does
not have as FILE:LINE:COL of the key with its dotted name and the closest valid key."""
from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from s2vforge.cli import app
from s2vforge.recipes import RecipeError, builtin_names, load_recipe

STAGES = ("curate", "subjects", "pair")


def _run(stage: str, tmp_path, recipe):
    """The stage command with `recipe`; the dataset / inputs are empty folders (the recipe is
    loaded before they are looked at)."""
    target = tmp_path / "data"
    target.mkdir(exist_ok=True)
    args = [stage, str(target)] + (["--out", str(tmp_path / "out")] if stage == "curate" else [])
    return CliRunner().invoke(app, args + ["-r", str(recipe), "-q"])


def _error_lines(res) -> list[str]:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert "Traceback" not in res.output, res.output
    assert all(ln.startswith("error: ") for ln in lines), res.output
    return [ln[len("error: "):] for ln in lines]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("text, where, needle", [
    ("split:\n  min_s: 2\n   max_s: 3\n", "3:9", "mapping values are not allowed here"),
    ("split:\n  min_s: [1, 2\nfilters: {}\n", "3:8", "while parsing a flow sequence at 2:10"),
    ("split:\n\tmin_s: 2\n", "2:1", "indent with spaces, not tabs"),
    ("write:\n  crf: 20\n  preset: \"fast\n", "4:1", "while scanning a quoted scalar at 3:11"),
    ("split: {min_s: 1}\n---\nsplit: {min_s: 2}\n", "2:1", "expected a single document"),
    ("name: x\ndescription: a\x07b\n", "2:15", "character #x0007"),
])
def test_malformed_yaml_is_one_line_with_file_line_and_column(stage, tmp_path, text, where, needle):
    bad = tmp_path / "recipe.yaml"
    bad.write_text(text)
    res = _run(stage, tmp_path, bad)
    assert res.exit_code == 2, res.output
    lines = _error_lines(res)
    assert len(lines) == 1, res.output
    assert lines[0].startswith(f"{bad}:{where}: not valid YAML: "), lines[0]
    assert needle in lines[0]


def test_line_and_column_are_yamls_problem_mark(tmp_path):
    text = "crop:\n  enabled: true\nsplit:\n  min_s: 2\n  max_s: {a: 1\n"
    bad = tmp_path / "r.yaml"
    bad.write_text(text)
    with pytest.raises(yaml.MarkedYAMLError) as info:
        yaml.safe_load(text)
    mark = info.value.problem_mark
    with pytest.raises(RecipeError, match=rf"^{bad}:{mark.line + 1}:{mark.column + 1}: not valid YAML: "):
        load_recipe(str(bad))


def test_not_utf8_and_not_a_mapping(tmp_path):
    raw = tmp_path / "latin1.yaml"
    raw.write_bytes(b"name: x\ndescription: caf\xe9\n")
    with pytest.raises(RecipeError, match=rf"^{raw}:2:17: not valid YAML: not UTF-8 text \(byte 0xe9\)$"):
        load_recipe(str(raw))
    lst = tmp_path / "list.yaml"
    lst.write_text("- split\n- filters\n")
    res = _run("curate", tmp_path, lst)
    assert res.exit_code == 2 and _error_lines(res) == [
        f"{lst}:1:1: a recipe must be a mapping of sections (split:, filters:, ...), not list"]
    typed = tmp_path / "typed.yaml"
    typed.write_text("name: x\nsplit: 3\n")
    res = _run("curate", tmp_path, typed)
    assert res.exit_code == 2 and _error_lines(res) == [f"{typed}:2:1: recipe `split:` must be a mapping, not int 3"]


TYPOS = """\
name: typos
split:
  min_s: 2.0
  maxs: 30
filters:
  score_luminance: {min: 10, mx: 200}
  score_aesthetc: {min: 4.5}
scorer_params:
  blur:
    long_sid: 300
min_s: 3
resources:
  subjects: {num_gpus: 1, gpu: 1}
subjects:
  detect:
    grounding_box_treshold: 0.3
pairs:
  embed:
    person: {backend: embedded, weigths: {face: 1}}
  verify:
    vlm: {enabled: false, base_ur: http://x}
"""

EXPECTED = [
    "4:3: unknown key split.maxs (did you mean split.max_s?)",
    "6:30: unknown key filters.score_luminance.mx (did you mean filters.score_luminance.max?)",
    "7:3: unknown key filters.score_aesthetc (did you mean filters.score_aesthetic?)",
    "10:5: unknown key scorer_params.blur.long_sid (did you mean scorer_params.blur.long_side?)",
    "11:1: unknown key min_s (did you mean split.min_s?)",
    "13:27: unknown key resources.subjects.gpu (did you mean resources.subjects.num_gpus?)",
    "16:5: unknown key subjects.detect.grounding_box_treshold (did you mean subjects.detect.grounding_box_threshold?)",
    "19:33: unknown key pairs.embed.person.weigths (did you mean pairs.embed.person.weights?)",
    "21:27: unknown key pairs.verify.vlm.base_ur (did you mean pairs.verify.vlm.base_url?)",
]


@pytest.mark.parametrize("stage", STAGES)
def test_every_unknown_key_is_listed_with_position_and_closest_key(stage, tmp_path):
    rec = tmp_path / "recipe.yaml"
    rec.write_text(TYPOS)
    res = _run(stage, tmp_path, rec)
    assert res.exit_code == 2, res.output
    assert _error_lines(res) == [f"{rec}:{e}" for e in EXPECTED]


def test_unknown_key_json_error_and_no_output_written(tmp_path):
    import json
    rec = tmp_path / "recipe.yaml"
    rec.write_text("filters:\n  score_aesthetic: {min: 4.5}\n  score_aesthetc: {min: 4.5}\n")
    (tmp_path / "data").mkdir()
    res = CliRunner().invoke(app, ["curate", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-r", str(rec),
                                   "--json"])
    assert res.exit_code == 2
    obj = json.loads(res.stdout)
    assert obj == {"error": f"{rec}:3:3: unknown key filters.score_aesthetc (did you mean filters.score_aesthetic?)",
                   "exit_code": 2}
    assert not (tmp_path / "out").exists()


def test_the_full_key_set_is_accepted(tmp_path):
    """Built-in recipes, the default recipe written out whole, and the tables whose keys the
    default does not fix: any scorer's column (or a clip column) in filters, every engine
    resource, free-form values where the default has null (descriptor_weights), null sections."""
    for name in builtin_names():
        load_recipe(name)
    whole = tmp_path / "whole.yaml"
    whole.write_text(yaml.safe_dump(load_recipe(None)))
    assert load_recipe(str(whole)) == load_recipe(None)
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({
        "filters": {"score_blur_laplacian": {"min": 5, "min_inclusive": False}, "duration_s": {"max": 10},
                    "score_ocr_area": {"max": 0.5}},
        "resources": {"pairs": {"memory": 2_000_000_000, "num_gpus": 0.25}},
        "pairs": {"embed": {"object": {"descriptor_weights": {"colour": 0.3, "anything": 1}}},
                  "verify": {"vlm": None}},
        "subjects": {"phrases": {"endpoint": None}},
    }))
    rec = load_recipe(str(ok))
    assert rec["filters"]["duration_s"] == {"max": 10}
    # YAML anchors / merge keys: the merged keys are checked where the anchor defines them
    anchors = tmp_path / "anchors.yaml"
    anchors.write_text("split: &s {min_s: 1.0, max_s: 9.0}\nsubjects:\n  face_track: {<<: {fps: 1.0, fsp: 2}}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(str(anchors))
    assert str(info.value) == (f"{anchors}:3:31: unknown key subjects.face_track.fsp "
                               f"(did you mean subjects.face_track.fps?)")


def test_overrides_are_checked_too():
    with pytest.raises(RecipeError, match=r"^recipe overrides: unknown key crop\.ocr_frame \(did you mean "
                                          r"crop\.ocr_frames\?\)$"):
        load_recipe(None, {"crop": {"ocr_frame": 2}})


def test_a_bad_setting_value_is_a_usage_error_before_any_video(tmp_path):
    """write.sample_aspect takes square|keep: anything else stops the command (exit 2), it is not
    an error row per video."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("write:\n  sample_aspect: stretch\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.mp4").write_bytes(b"not looked at")
    res = _run("curate", tmp_path, recipe)
    assert res.exit_code == 2, res.output
    assert _error_lines(res) == ["write.sample_aspect must be one of ('square', 'keep'), got 'stretch'"]
    assert not (tmp_path / "out" / "videos.parquet").exists()
