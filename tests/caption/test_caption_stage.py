"""The caption stage end to end on a small curated dataset of known content (conftest.SHOWS)."""
from __future__ import annotations

import pytest

from s2vforge.cli import run_caption_command, run_curate, run_subjects_command

from conftest import rows_by_video

MANIFEST_CAPTIONS = {"chelsea": "A tabby cat lies on a wooden floor and looks into the camera.",
                     "coffee": "A cup stands in a kitchen."}   # one object named: the salient region is it


@pytest.fixture(scope="module")
def manifest_ds(captioned_corpus, fast_recipe, tmp_path_factory):
    """Two clips whose videos come with manifest captions naming an animal and an object."""
    m = tmp_path_factory.mktemp("manifest") / "videos.csv"
    m.write_text("path,caption\n" + "".join(f'{captioned_corpus / (k + ".mp4")},"{v}"\n'
                                             for k, v in MANIFEST_CAPTIONS.items()))
    ds = m.parent / "ds"
    assert run_curate([str(m)], ds, str(fast_recipe), 1, False, quiet=True) == 0
    return ds


def test_manifest_captions_pass_through_and_subjects_ground_what_they_name(manifest_ds, fast_recipe):
    assert run_caption_command(manifest_ds, str(fast_recipe), 1, quiet=True) == 0
    caps = rows_by_video(manifest_ds, "captions")
    cat, = caps["chelsea"]
    assert cat["captioner"] == "manifest" and cat["long"] == MANIFEST_CAPTIONS["chelsea"]
    assert "tabby cat" in cat["subject_tags"] and cat["short"].startswith("A tabby cat")
    cup, = caps["coffee"]
    assert cup["object_tags"] == ["cup"]
    assert run_subjects_command(manifest_ds, str(fast_recipe), 1, quiet=True) == 0
    subs = rows_by_video(manifest_ds, "subjects")
    animals = [s for s in subs["chelsea"] if s["keep"] and s["category"] == "animal"]
    assert animals and animals[0]["phrase"] == "tabby cat" and animals[0]["crop_path"]
    assert (manifest_ds / animals[0]["crop_path"]).is_file()
    assert not [s for s in subs["chelsea"] if s["keep"] and s["category"] == "face"]     # no cat faces
    objects = [s for s in subs["coffee"] if s["keep"] and s["category"] == "object"]
    assert objects and objects[0]["phrase"] == "cup"


def test_the_embedded_default_writes_facts_marked_as_facts(curated, fast_recipe, tmp_path):
    import shutil
    ds = tmp_path / "ds"
    shutil.copytree(curated, ds)
    assert run_caption_command(ds, str(fast_recipe), 1, quiet=True) == 0
    caps = rows_by_video(ds, "captions")
    assert {r["captioner"] for rows in caps.values() for r in rows} == {"facts"}
    astro, = caps["astronaut"]
    assert "person" in astro["subject_tags"] and "1 person" in astro["short"]
    assert astro["model"].startswith("s2vforge-facts") and astro["structured"]["camera"]
    cup, = caps["coffee"]
    assert "person" not in cup["subject_tags"]
