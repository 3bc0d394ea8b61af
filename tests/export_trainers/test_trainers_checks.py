"""What the trainer writers refuse, report and guarantee: bad files become summary errors and
never rows, the shared export files are never touched, outputs are byte-identical per input,
and the settings come from the recipe with a named key when one is missing."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from s2vforge.stages.export.letterbox import fit_inside, letterbox
from s2vforge.stages.export.trainers import TRAINERS, one_line, write_trainer
from s2vforge.stages.recipe_keys import MissingRecipeKey
from trainer_export import SAMPLES, cfg, samples_table


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _broken_samples() -> list[dict]:
    """s1's only reference points at a missing file; s2's first reference at a file that is not
    an image; s0's clip is overwritten with garbage by the test."""
    rows = [json.loads(json.dumps(r)) for r in SAMPLES]
    by_id = {r["sample_id"]: r for r in rows}
    by_id["s1"]["references"][0]["rgb_path"] = "subjects/missing.rgb.png"
    by_id["s2"]["references"][0]["rgb_path"] = "subjects/not_an_image.rgb.png"
    return rows


def _manifest_ids(export_dir: Path, trainer: str) -> list[str]:
    base = export_dir / "trainers" / trainer
    if trainer == "videox-fun":
        return [Path(r["file_path"]).stem for r in json.loads((base / "metadata.json").read_text())]
    if trainer in ("diffsynth", "opensora"):
        import pandas as pd
        col = "video" if trainer == "diffsynth" else "path"
        return [Path(p).stem for p in pd.read_csv(base / "metadata.csv")[col]]
    if trainer == "finetrainers":
        return [Path(p).stem for p in (base / "videos.txt").read_text().splitlines()]
    return sorted(p.stem for p in (base / "videos").glob("*.mp4"))


def test_missing_and_unreadable_files_are_errors_and_never_rows(export_dir):
    (export_dir / "subjects" / "not_an_image.rgb.png").write_bytes(b"this is not a png")
    (export_dir / "clips" / "s0.mp4").write_bytes(b"\x00" * 2048)
    table = samples_table(_broken_samples())
    reasons = {}
    for trainer in TRAINERS:
        summary = write_trainer(export_dir, table, cfg(), trainer)
        errors = {e["sample_id"]: e["reason"] for e in summary["errors"]}
        reasons[trainer] = errors
        assert errors["s5"] == "clip file missing: clips/s5.mp4"
        assert errors["s0"].startswith("clip clips/s0.mp4 ") and "decode" in errors["s0"]
        written = _manifest_ids(export_dir, trainer)
        assert "s0" not in written and "s5" not in written and "s3" not in written
        refused = {k for k, v in errors.items() if not v.startswith("subject_images: ")}   # musubi: its 2nd dataset
        assert set(written).isdisjoint(refused)
        json.dumps(summary)                                   # JSON-able
    # the trainers that read references refuse s1 and s2; the others write them
    for trainer in ("videox-fun", "diffsynth"):
        assert reasons[trainer]["s1"] == "reference file missing: subjects/missing.rgb.png"
        assert reasons[trainer]["s2"].startswith("reference file subjects/not_an_image.rgb.png does not open")
    assert sorted(reasons["finetrainers"]) == sorted(reasons["opensora"]) == ["s0", "s5"]
    assert _manifest_ids(export_dir, "finetrainers") == ["s1", "s2", "s4"]
    # musubi writes the videos; its subject-image dataset refuses the bad references
    assert _manifest_ids(export_dir, "musubi") == ["s1", "s2", "s4"]
    assert reasons["musubi"]["s1"] == "subject_images: reference file missing: subjects/missing.rgb.png"
    assert sorted(p.stem for p in (export_dir / "trainers/musubi/subject_images/images").glob("*.png")) == ["s4"]


def test_outputs_are_byte_identical_and_shared_files_untouched(export_dir):
    shared_before = _tree_digest(export_dir)
    first, summaries = {}, {}
    for trainer in TRAINERS:
        summaries[trainer] = write_trainer(export_dir, samples_table(), cfg(), trainer)
    first = _tree_digest(export_dir / "trainers")
    assert {k: v for k, v in _tree_digest(export_dir).items() if not k.startswith("trainers/")} == shared_before
    shutil.rmtree(export_dir / "trainers")
    for trainer in TRAINERS:
        assert write_trainer(export_dir, samples_table(), cfg(), trainer) == summaries[trainer]
    assert _tree_digest(export_dir / "trainers") == first
    for trainer, s in summaries.items():
        assert s["files"] == sum(1 for k in first if k.startswith(f"{trainer}/"))
        assert s["bytes"] == sum((export_dir / "trainers" / k).stat().st_size for k in first if k.startswith(f"{trainer}/"))


def test_no_kept_samples_writes_empty_manifests(export_dir):
    rows = [{**r, "keep": False} for r in SAMPLES]
    for trainer in TRAINERS:
        s = write_trainer(export_dir, samples_table(rows), cfg(), trainer)
        assert s["rows"] == 0 and s["samples"] == 0 and s["errors"] == []


def test_settings_errors_name_the_key():
    table = samples_table()
    with pytest.raises(ValueError, match="unknown trainer 'sora'"):
        write_trainer(Path("/nonexistent"), table, cfg(), "sora")
    c = cfg()
    del c["trainers"]["videox-fun"]["max_refs"]
    with pytest.raises(MissingRecipeKey, match="export.trainers.videox-fun.max_refs"):
        write_trainer(Path("/tmp/never-written"), table, c, "videox-fun")
    with pytest.raises(MissingRecipeKey, match="'export.trainers'"):
        write_trainer(Path("/tmp/never-written"), table, {}, "opensora")


def test_videox_fun_refuses_more_than_four_and_unknown_presets(export_dir):
    c = cfg()
    c["trainers"]["videox-fun"]["max_refs"] = 5
    with pytest.raises(ValueError, match="at most 4"):
        write_trainer(export_dir, samples_table(), c, "videox-fun")
    c = cfg()
    c["trainers"]["diffsynth"]["preset"] = "hunyuan"
    with pytest.raises(ValueError, match="'hunyuan' is not one of"):
        write_trainer(export_dir, samples_table(), c, "diffsynth")


def test_a_smaller_cap_keeps_the_first_references(export_dir):
    c = cfg()
    c["trainers"]["videox-fun"]["max_refs"] = 2
    s = write_trainer(export_dir, samples_table(), c, "videox-fun")
    rows = {Path(r["file_path"]).stem: r for r in json.loads((export_dir / s["manifest"]).read_text())}
    assert [Path(p).name for p in rows["s2"]["object_file_path"]] == ["r_wide.rgb.png", "r_cat.rgb.png"]
    assert s["references_dropped"] == 3


def test_missing_sample_facts_are_read_from_the_clip(export_dir):
    rows = [{**r, "fps": None, "n_frames": None, "width": None, "height": None} for r in SAMPLES]
    s = write_trainer(export_dir, samples_table(rows), cfg(), "opensora")
    import pandas as pd
    data = pd.read_csv(export_dir / s["manifest"]).set_index("text", drop=False)
    by_stem = {Path(p).stem: row for p, row in zip(data["path"], data.to_dict("records"))}
    assert (by_stem["s4"]["num_frames"], by_stem["s4"]["fps"]) == (40, 25.0)
    assert (by_stem["s0"]["width"], by_stem["s0"]["height"], by_stem["s0"]["num_frames"]) == (160, 96, 81)


def test_one_line_breaks_nothing_splitlines_would_split():
    text = "a\nb\r\nc\u2028d\u2029e\x85f\x0bg\x0ch\x1ci\x1dj\x1ek\tl  m"
    assert one_line(text) == "a b c d e f g h i j k l m"
    assert one_line(text).splitlines() == [one_line(text)]
    assert one_line(None) is None and one_line("   ") is None      # no caption stays no caption


def test_letterbox_fits_centres_and_pads_white():
    assert fit_inside((420, 80), (832, 480)) == (832, 158)
    assert fit_inside((150, 380), (832, 480)) == (189, 480)
    assert fit_inside((832, 480), (832, 480)) == (832, 480)
    red = Image.new("RGB", (100, 50), (255, 0, 0))
    out = letterbox(red, (100, 100))
    assert out.size == (100, 100)
    assert out.getpixel((50, 10)) == (255, 255, 255) and out.getpixel((50, 50)) == (255, 0, 0)
    assert out.getpixel((50, 24)) == (255, 255, 255) and out.getpixel((50, 25)) == (255, 0, 0)


def test_the_default_recipe_sets_every_key_the_writers_read(export_dir):
    from s2vforge.recipes import load_recipe, section
    export = section(load_recipe(), "export")
    if "trainers" not in export:
        pytest.skip("the default recipe has no export.trainers block yet (the report gives it)")
    for trainer in TRAINERS:
        write_trainer(export_dir, samples_table(), export, trainer)
