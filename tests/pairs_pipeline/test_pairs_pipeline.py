"""The pairs stage end to end on real photos composited into clips (see conftest.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from s2vforge.recipes import load_recipe
from s2vforge.schema import PAIR_SCHEMA
from s2vforge.stages.pairs.clipembed import embed_clip
from s2vforge.stages.pairs.pipeline import pairs_config, run_pairs


@pytest.fixture(scope="module")
def paired(pairs_source, tmp_path_factory):
    """One full run (the only one that embeds every clip); later tests copy its dataset."""
    ds = tmp_path_factory.mktemp("paired") / "ds"
    shutil.copytree(pairs_source, ds)
    summary = run_pairs(ds, {})
    rows = pq.read_table(ds / "pairs.parquet").to_pylist()
    return ds, summary, {r["target_subject_id"]: r for r in rows}


def _copy(ds: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(ds, dst)
    return dst


def _row(rows: dict, clip: str, category: str) -> dict:
    found = [r for r in rows.values() if r["target_clip_id"] == clip and r["category"] == category]
    assert len(found) == 1, (clip, category, found)   # one track per identity per clip
    return found[0]


def test_kinds_priors_and_identity(paired, truth):
    ds, summary, rows = paired
    assert summary["n_clips"] == 5 and summary["n_instances"] == 21 and summary["n_tracks"] == 7
    # the astronaut in A1 and A2 (same group gA, other clip, mirrored): cross_clip, verified by face agreement
    for clip, other in (("A1", "A2"), ("A2", "A1")):
        r = _row(rows, clip, "face")
        assert r["kind"] == "cross_clip" and r["reference_clip_ids"] == [other] and r["reference_source"] == "subject"
        assert any(v.startswith("face_agreement:ok") for v in r["verdicts"])
        # Grace Hopper is below the lower bound; never a reference
        assert not any(v.startswith("G1-") and "kept" in v for v in r["rejected"])
    # B1's astronaut (group gB): kept out by the group prior (A2, mirrored) or as a copy (A1, same photo)
    assert any(v.startswith("B1-") and "prior_different_group" in v for v in _row(rows, "A2", "face")["rejected"])
    assert any(v.startswith("B1-") and "near_duplicate>upper" in v for v in _row(rows, "A1", "face")["rejected"])
    # objects pair across videos only: A1's cup never takes A2's (same video vA)
    for clip in ("A1", "A2", "O1"):
        r = _row(rows, clip, "object")
        assert r["kind"] == "cross_video"
        assert any(v.startswith("geometric:ok") for v in r["verdicts"])
        ref_videos = {rid.split("-")[0] for rid in r["reference_subject_ids"]}
        assert ("O1" in ref_videos) if clip != "O1" else (ref_videos <= {"A1", "A2"})
    assert any("prior_same_video" in v for v in _row(rows, "A1", "object")["rejected"])
    # every cross reference shows the same identity as its target (pair precision on this set = 1)
    for r in rows.values():
        for ref in r["reference_subject_ids"]:
            assert truth[ref] == truth[r["target_subject_id"]], r
    # living references share the target's group
    subj = {s["subject_id"]: s for s in pq.read_table(ds / "subjects.parquet").to_pylist()}
    for r in rows.values():
        if r["kind"] == "cross_clip":
            assert all(subj[x]["group_id"] == r["group_id"] and subj[x]["clip_id"] != r["target_clip_id"]
                       for x in r["reference_subject_ids"])


def test_fallback_bounds_and_verdicts(paired):
    ds, summary, rows = paired
    face = pairs_config({})["bounds"]["face"]
    # Grace Hopper has no partner: in-pair fallback with another instance of her own track
    g = _row(rows, "G1", "face")
    assert g["kind"] == "in_pair" and g["verdicts"] == ["fallback:no_verified_cross_reference"]
    assert g["reference_subject_ids"][0] in g["track_subject_ids"] and g["reference_subject_ids"][0] != g["target_subject_id"]
    assert g["diversity"] is not None and g["diversity"] < 0.1      # same clip: nearly the same context
    # B1's astronaut is the same photo, only rescaled: a near-duplicate above the upper bound
    b = _row(rows, "B1", "face")
    assert b["kind"] == "in_pair"
    assert any("near_duplicate>upper" in v for v in b["rejected"])
    for r in rows.values():
        if r["kind"] in ("cross_clip", "cross_video"):
            lo, up = (pairs_config({})["bounds"][r["category"]][k] for k in ("lower", "upper"))
            assert lo <= r["similarity"] <= up
            assert r["diversity"] > 0.2             # another clip, another background
            assert r["verdicts"][0].startswith("bounds:ok")
    assert face["upper"] < 0.998


def test_tighter_upper_bound_rejects_and_records(paired, tmp_path):
    ds = _copy(paired[0], tmp_path)
    s = run_pairs(ds, {"pairs": {"bounds": {"face": {"upper": 0.95}}}})
    assert s["n_skipped_done"] == 5                 # bounds are not part of the embedding stamp
    rows = {r["target_subject_id"]: r for r in pq.read_table(ds / "pairs.parquet").to_pylist()}
    a1 = _row(rows, "A1", "face")
    assert a1["kind"] == "in_pair"
    assert any(v.startswith("A2-") and "near_duplicate>upper" in v for v in a1["rejected"])
    assert _row(rows, "A1", "object")["kind"] == "cross_video"     # other categories untouched


def test_clusters_and_run_json(paired):
    ds, summary, rows = paired
    a1, a2, g = _row(rows, "A1", "face"), _row(rows, "A2", "face"), _row(rows, "G1", "face")
    assert a1["cluster_id"] == a2["cluster_id"] != g["cluster_id"]
    cups = {_row(rows, c, "object")["cluster_id"] for c in ("A1", "A2", "O1")}
    assert len(cups) == 1
    run = json.loads((ds / "pairs_run.json").read_text())
    cl = run["summary"]["clusters"]
    # astronaut A1+A2 (6), astronaut B1 (3), Grace (3), cup (9)
    assert cl["n_clusters"] == 4 and cl["largest"] == 9
    assert run["pairs"]["bounds"]["face"] == load_recipe(None)["pairs"]["bounds"]["face"]    # the YAML's
    assert pq.read_schema(ds / "pairs.parquet").equals(PAIR_SCHEMA)
    assert (ds / "index" / "face" / "index.faiss").exists() and summary["banks"]["face"]["size"] == 12


def test_resume_after_losing_table_and_a_part(paired, tmp_path):
    ds = _copy(paired[0], tmp_path)
    before = pq.read_table(ds / "pairs.parquet")
    (ds / "pairs.parquet").unlink()
    (ds / ".work" / "pairs" / "A1.embeddings.parquet").unlink()   # its marker stays: the part must be redone
    s = run_pairs(ds, {})
    assert s["n_skipped_done"] == 4
    after = pq.read_table(ds / "pairs.parquet")
    assert after.equals(before)
    ids = after.column("pair_id").to_pylist()
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert s["banks"]["face"]["size"] == 12 and s["banks"]["object"]["size"] == 9   # appended nothing twice


def test_bank_folder_registration(paired, bank_folder, tmp_path):
    ds = _copy(paired[0], tmp_path)
    s = run_pairs(ds, {}, bank_dirs=[bank_folder])
    assert s["n_bank_entries"] >= 3          # Grace's face, her image as an object, the cup cut-out
    assert s["banks"]["face"]["size"] == 13
    rows = {r["target_subject_id"]: r for r in pq.read_table(ds / "pairs.parquet").to_pylist()}
    g = _row(rows, "G1", "face")
    assert g["kind"] == "cross_video" and g["reference_source"] == "bank"
    assert g["reference_subject_ids"][0].startswith("bank:extra/grace_bank.jpg#face")
    assert g["diversity"] > 0.2
    # a second run registers nothing twice
    s2 = run_pairs(ds, {}, bank_dirs=[bank_folder])
    assert s2["banks"] == s["banks"]


def test_embed_clip_records_unreadable_crop(pairs_source, tmp_path):
    ds = _copy(pairs_source, tmp_path)
    rows = [r for r in pq.read_table(ds / "subjects.parquet").to_pylist() if r["clip_id"] == "O1" and r["keep"]]
    (ds / rows[0]["crop_path"]).unlink()
    out, meta = embed_clip("O1", rows, pairs_config({}), ds)
    by = {r["subject_id"]: r for r in out}
    assert by[rows[0]["subject_id"]]["error"] == "crop_unreadable" and by[rows[0]["subject_id"]]["vector"] is None
    assert all(by[r["subject_id"]]["vector"] is not None for r in rows[1:])
    assert meta["n_embedded"] == len(rows) - 1 and meta["n_context"] == len(rows)


def test_cli_json_and_report(paired, tmp_path):
    from typer.testing import CliRunner

    from s2vforge.cli import app
    ds = _copy(paired[0], tmp_path)
    res = CliRunner().invoke(app, ["pair", str(ds), "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n_pairs"] == 7 and summary["kinds"]["cross_clip"] == 2
    assert summary["n_skipped_done"] == 5          # the built-in recipe embeds as the defaults do: nothing redone
    page = (ds / "report.html").read_text()
    assert "Identity pairs" in page and "cross_video" in page and "fallback:no_verified_cross_reference" in page
    assert page.count("data:image/jpeg;base64") >= 7 + 7      # target frames + references

    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["pair", str(empty)])
    assert res.exit_code == 2
    assert "run `s2vforge subjects" in res.output.replace("\n", " ")


def test_vlm_verdicts_recorded_and_respected(paired, tmp_path, monkeypatch):
    """A VLM verifier (endpoint stubbed in-process) that says "same context" vetoes the pair; its
    verdicts are recorded either way."""
    from s2vforge.stages.pairs import verify
    from s2vforge.stages.pairs.verify import Verdict

    calls = []

    class SameContextVlm:
        def verify(self, ref_crop, target_frame, phrase):
            calls.append((ref_crop.shape, target_frame.shape, phrase))
            return [Verdict("vlm_identity", True, 1.0, "same person"), Verdict("vlm_context", False, 0.0, "same room")]

    monkeypatch.setattr(verify, "vlm_verifier_from_config", lambda cfg: SameContextVlm())
    ds = _copy(paired[0], tmp_path)
    run_pairs(ds, {"pairs": {"verify": {"vlm": {"base_url": "http://127.0.0.1:9", "model": "stub"}}}})
    rows = {r["target_subject_id"]: r for r in pq.read_table(ds / "pairs.parquet").to_pylist()}
    a1 = _row(rows, "A1", "face")
    assert a1["kind"] == "in_pair"
    assert any("vlm_context:fail" in v and v.startswith("A2-") for v in a1["rejected"])
    assert calls and calls[0][1][:2] == (360, 640)      # the VLM sees the whole target frame
