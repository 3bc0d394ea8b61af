"""`s2vforge export` on the demo chain (curate -> caption -> subjects -> pair): samples with cross
references, hard-linked clips, reproducible across workers, resumable, repairing, leak-free
splits, near-duplicates marked, and bad clips as error rows."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from s2vforge.cli import app

pytestmark = pytest.mark.slow


def _export(dataset: Path, out: Path, *extra) -> tuple[int, dict]:
    res = CliRunner().invoke(app, ["export", str(dataset), "--out", str(out), "--json", *map(str, extra)])
    text = res.stdout
    start = text.index("{") if "{" in text else None
    return res.exit_code, (json.loads(text[start:]) if start is not None else {"output": res.output})


def _tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith(".work") and not rel.endswith("_run.json") and rel != "report.html":
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def exported(demo_chain, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "export"
    code, summary = _export(demo_chain["dataset"], out, "--workers", 2, "--split", "val=0.3,test=0.3")
    assert code == 0, summary
    return out, summary


def test_samples_have_cross_references_and_linked_files(demo_chain, exported):
    out, summary = exported
    rows = pq.read_table(out / "samples.parquet").to_pylist()
    kept = [r for r in rows if r["keep"]]
    assert kept and summary["n_kept"] == len(kept)
    kinds = {ref["kind"] for r in kept for ref in r["references"]}
    assert {"cross_clip", "cross_video", "self"} <= kinds, kinds
    ds = demo_chain["dataset"]
    for r in kept:
        clip = out / r["clip_path"]
        assert clip.is_file() and os.path.samefile(clip, ds / r["clip_path"])      # a hard link, no copy
        for ref in r["references"]:
            assert (out / ref["rgba_path"]).is_file() and (out / ref["rgb_path"]).is_file()
            assert (out / ref["mask_path"]).is_file()
            if ref["kind"] != "self":
                assert ref["source_clip_id"] != r["clip_id"] and ref["similarity"] is not None
    for r in rows:
        assert r["keep"] or r["drop_reasons"]
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["export"]["splits"]["fractions"] == {"val": 0.3, "test": 0.3}


def test_splits_never_split_a_group_or_an_identity(exported):
    out, _ = exported
    rows = [r for r in pq.read_table(out / "samples.parquet").to_pylist() if r["keep"]]
    by_group: dict = {}
    for r in rows:
        by_group.setdefault(r["group_id"], set()).add(r["split"])
        for ref in r["references"]:       # a cross reference's source clip is in the same split
            src = next((s for s in rows if s["clip_id"] == ref["source_clip_id"]), None)
            if src is not None:
                assert src["split"] == r["split"]
    assert all(len(v) == 1 for v in by_group.values()), by_group


def test_same_bytes_with_one_worker_and_a_rerun_does_nothing(demo_chain, exported, tmp_path):
    out, _ = exported
    out1 = tmp_path / "w1"
    code, _ = _export(demo_chain["dataset"], out1, "--workers", 1, "--split", "val=0.3,test=0.3")
    assert code == 0
    assert _tree_digest(out1) == _tree_digest(out)
    code, again = _export(demo_chain["dataset"], out1, "--workers", 1, "--split", "val=0.3,test=0.3")
    assert code == 0 and again["n_skipped_done"] == again["n_items"]
    # a damaged clip is rebuilt on the next run
    victim = next(r for r in pq.read_table(out1 / "samples.parquet").to_pylist() if r["keep"])
    (out1 / victim["clip_path"]).unlink()
    code, fixed = _export(demo_chain["dataset"], out1, "--workers", 1, "--split", "val=0.3,test=0.3")
    assert code == 0 and victim["sample_id"] in fixed["repaired"]
    assert _tree_digest(out1) == _tree_digest(out)


def test_recut_for_wan(demo_chain, tmp_path):
    import av
    out = tmp_path / "wan"
    code, summary = _export(demo_chain["dataset"], out, "--fps", 16, "--frames", 81, "--length-rule", "4k+1",
                            "--format", "diffsynth")
    assert code == 0, summary
    rows = [r for r in pq.read_table(out / "samples.parquet").to_pylist() if r["keep"]]
    for r in rows:
        assert r["fps"] == 16.0 and r["n_frames"] % 4 == 1 and r["n_frames"] <= 81
        with av.open(str(out / r["clip_path"])) as c:
            assert sum(1 for _ in c.decode(video=0)) == r["n_frames"]
    assert summary["formats"]["diffsynth"]["errors"] == []


def test_duplicates_are_marked_and_share_a_split(demo_chain, tmp_path):
    """A re-encoded, brightened, lower-quality copy of a demo video: its clips are duplicates of the
    originals, the originals are kept, and each pair is in one split."""
    import numpy as np

    from s2vforge.corpus.synth import read_frames, write_video
    corpus = tmp_path / "corpus"
    shutil.copytree(demo_chain["corpus"], corpus)
    src = next(p for p in sorted(corpus.glob("*.mp4")) if p.name.startswith("interview"))
    frames = [np.clip(f.astype(np.int16) + 12, 0, 255).astype(np.uint8) for f in read_frames(src)]
    write_video(corpus / "interview_reupload.mp4", frames, 25.0, crf=32)
    ds = tmp_path / "dataset"
    for args in (("curate", corpus, "--out", ds), ("caption", ds), ("subjects", ds), ("pair", ds)):
        res = CliRunner().invoke(app, [str(a) for a in args] + ["--workers", "2", "--quiet"])
        assert res.exit_code == 0, res.output[-2000:]
    code, summary = _export(ds, tmp_path / "export", "--split", "val=0.3,test=0.3")
    assert code == 0, summary
    rows = {r["sample_id"]: r for r in pq.read_table(tmp_path / "export" / "samples.parquet").to_pylist()}
    videos = {v["video_id"]: Path(v["path"]).name for v in pq.read_table(ds / "videos.parquet").to_pylist()}
    dups = [r for r in rows.values() if r["duplicate_of"]]
    assert dups, "the re-upload's clips are not marked"
    for r in dups:
        kept = rows[r["duplicate_of"]]
        names = {videos[r["video_id"]], videos[kept["video_id"]]}
        assert names == {"interview.mp4", "interview_reupload.mp4"}, names
        assert not r["keep"] and any(d.startswith("duplicate_of:") for d in r["drop_reasons"])
        assert kept["keep"] and r["duplicate_cluster"] == kept["duplicate_cluster"]
    interview = {r["sample_id"] for r in rows.values() if videos[r["video_id"]] == "interview.mp4" and r["n_refs"]}
    assert {r["duplicate_of"] for r in dups} <= interview | {r["sample_id"] for r in dups}
    assert summary["n_duplicates"] == len(dups)


def test_a_clip_that_does_not_decode_is_an_error_row(demo_chain, tmp_path):
    ds = tmp_path / "dataset"
    shutil.copytree(demo_chain["dataset"], ds, ignore=shutil.ignore_patterns(".work"))
    victim = next(r for r in pq.read_table(ds / "clips.parquet").to_pylist() if r["keep"])
    (ds / victim["path"]).write_bytes(b"\x00" * 4096)
    code, summary = _export(ds, tmp_path / "export")
    assert code == 1
    assert [e["key"] for e in summary["errors"]] == [victim["clip_id"]]
    row = next(r for r in pq.read_table(tmp_path / "export" / "samples.parquet").to_pylist()
               if r["sample_id"] == victim["clip_id"])
    assert not row["keep"] and any(d.startswith("error:") for d in row["drop_reasons"])
    assert summary["n_kept"] >= 1
