"""import_opens2v over a hand-written OpenS2V-5M file set (published.py): every field lands in its
column, crops are cut from the video with the published mask, bad records become error rows, and
the streaming reader works with a buffer far smaller than one record."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from s2vforge.corpus.synth import read_frames
from s2vforge.schema import clip_id_for, video_id_for
from s2vforge.stages.export.import_opens2v import import_opens2v, iter_json_entries, register
from s2vforge.stages.subjects.rle import mask_to_rle

from .published import FPS, KEY1, KEY2, KEY_BROKEN, KEY_MISSING, KEY_NO_CROP, PART, write_published

TINY_CHUNK = 37        # characters: every record (> 2 KB) spans dozens of buffer refills


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("opens2v_pub")
    pub = write_published(root / "pub")
    out = root / "dataset"
    summary = import_opens2v([pub.records_file, pub.pairs_file, pub.clusters_file], pub.videos, out,
                             chunk_chars=TINY_CHUNK)
    tables = {name: pq.read_table(out / f"{name}.parquet").to_pylist()
              for name in ("videos", "clips", "captions", "subjects", "pairs", "opens2v_keys")}
    return pub, out, summary, tables


def _clip_of(tables, key):
    row = next(r for r in tables["opens2v_keys"] if r["kind"] == "clip" and r["key"] == key)
    return next(c for c in tables["clips"] if c["clip_id"] == row["clip_id"])


# ------------------------------------------------------------------ the streaming reader

@pytest.mark.parametrize("chunk", [1, 7, TINY_CHUNK, 4096, None])
def test_reader_gives_what_json_load_gives_at_any_buffer_size(tmp_path, chunk):
    pub = write_published(tmp_path / "pub")
    want = json.loads(pub.pairs_file.read_text())
    got = list(iter_json_entries(pub.pairs_file, chunk))
    assert [e.value for e in got] == want and [e.key for e in got] == [0, 1]
    assert all(e.error is None for e in got)
    text = pub.pairs_file.read_text()
    dec = json.JSONDecoder()
    for e in got:                                   # offsets point at the values
        assert dec.raw_decode(text, e.offset)[0] == e.value
    clusters = list(iter_json_entries(pub.clusters_file, chunk))
    assert [(e.key, e.value) for e in clusters] == list(json.loads(pub.clusters_file.read_text()).items())


@pytest.mark.parametrize("chunk", [1, 5, 64, None])
def test_reader_skips_a_broken_record_and_reads_on(tmp_path, chunk):
    pub = write_published(tmp_path / "pub")
    entries = list(iter_json_entries(pub.records_file, chunk))
    assert [e.key for e in entries] == [KEY1, KEY2, KEY_BROKEN, KEY_MISSING, KEY_NO_CROP]
    broken = entries[2]
    assert broken.value is None and "Expecting ',' delimiter" in broken.error
    assert broken.offset == pub.offset_of(KEY_BROKEN)
    assert entries[0].value == pub.records[KEY1] and entries[3].value == pub.records[KEY_MISSING]
    assert all(e.error is None for i, e in enumerate(entries) if i != 2)


def test_reader_reports_a_truncated_file(tmp_path):
    pub = write_published(tmp_path / "pub")
    text = pub.records_file.read_text()
    cut = pub.offset_of(KEY2) + 100               # inside the second record
    p = tmp_path / "truncated.json"
    p.write_text(text[:cut])
    entries = list(iter_json_entries(p, 64))
    assert entries[0].key == KEY1 and entries[0].value == pub.records[KEY1]
    assert entries[1].key == KEY2 and entries[1].value is None and "unterminated" in entries[1].error
    assert len(entries) == 2
    bad = tmp_path / "not_json.json"
    bad.write_text("hello")
    [e] = list(iter_json_entries(bad))
    assert e.error.startswith("not a JSON object or array")


# ------------------------------------------------------------------ fields -> columns

def test_videos_and_clips(imported):
    pub, out, summary, tables = imported
    v1 = video_id_for(pub.videos / PART / "clusterA_part1.mp4")     # found under --videos/<part>/
    v2 = video_id_for(pub.videos / "clusterA_part2.mp4")            # found under --videos/
    videos = {v["video_id"]: v for v in tables["videos"]}
    assert videos[v1]["status"] == "ok" and videos[v1]["width"] == 160 and videos[v1]["fps"] == pytest.approx(FPS)
    assert videos[v1]["group_id"] == "clusterA" and videos[v2]["group_id"] == "clusterA"
    missing = [v for v in tables["videos"] if v["status"] == "error"]
    assert len(missing) == 1 and "not found" in missing[0]["error"] and missing[0]["path"] == "clusterB_part1.mp4"
    assert len(tables["videos"]) == 3

    c1 = _clip_of(tables, KEY1)
    assert c1["clip_id"] == clip_id_for(v1, 2, 20)                   # face_cut [2, 20)
    assert (c1["start_frame"], c1["end_frame"]) == (2, 20)
    assert c1["crop"] == [16, 8, 144, 104]                           # published [x0, x1, y0, y1] -> ours
    assert c1["start_s"] == pytest.approx(2 / FPS, abs=1e-6) and c1["duration_s"] == pytest.approx(18 / FPS, abs=1e-6)
    assert c1["keep"] and c1["path"] == f"clips/{c1['clip_id']}.mp4" and c1["group_id"] == "clusterA"
    assert c1["caption"] == "An astronaut poses."
    assert c1["score_opens2v_tech"] == 2.082 and c1["score_opens2v_motion"] == 0.01223986130207777
    assert c1["score_aesthetic"] == 5.070407867431641
    c2 = _clip_of(tables, KEY2)
    assert c2["clip_id"] == clip_id_for(v2, 0, 24) and c2["crop"] == [0, 0, 160, 120]
    cm = _clip_of(tables, KEY_MISSING)
    assert not cm["keep"] and cm["path"] is None
    assert cm["rejects"][0]["code"] == "video_missing" and "clusterB_part1.mp4" in cm["reject_reasons"][0]
    assert [c["clip_id"] for c in tables["clips"]] == sorted(c["clip_id"] for c in tables["clips"])


def test_clip_file_holds_the_cut_and_cropped_frames(imported):
    pub, out, _, tables = imported
    c1 = _clip_of(tables, KEY1)
    clip = read_frames(out / c1["path"])
    source = read_frames(pub.videos / PART / "clusterA_part1.mp4")
    assert len(clip) == 18 and clip[0].shape == (96, 128, 3)
    crops = [f[8:104, 16:144].astype(int) for f in source]
    for k in (0, 9, 17):                                             # re-encoded, so: the nearest source frame
        dist = [np.abs(clip[k].astype(int) - c).mean() for c in crops]
        assert int(np.argmin(dist)) == 2 + k and dist[2 + k] < 6.0
    shifted = [np.abs(clip[0].astype(int) - f[0:96, 0:128].astype(int)).mean() for f in source]
    assert min(shifted) > 6.0                                        # and cropped where the record says


def test_captions(imported):
    _, _, _, tables = imported
    cap = next(c for c in tables["captions"] if c["clip_id"] == _clip_of(tables, KEY1)["clip_id"])
    assert cap["long"] == "A woman in a white suit smiles. She holds a red cup.\n\nThe camera pans slowly."
    assert cap["short"] == "A woman in a white suit smiles."
    assert (cap["subject_tags"], cap["object_tags"], cap["background_tags"]) == (["woman"], ["red cup"], ["grass"])
    assert cap["captioner"] == "opens2v" and cap["error"] is None


def test_subjects_masks_boxes_and_crops(imported):
    pub, out, _, tables = imported
    c1 = _clip_of(tables, KEY1)
    rows = {s["phrase"]: s for s in tables["subjects"] if s["clip_id"] == c1["clip_id"]}
    assert set(rows) == {"woman", "red cup", "grass"}
    woman, cup, grass = rows["woman"], rows["red cup"], rows["grass"]
    assert woman["frame_idx"] == 0 and woman["time_s"] == 0.0          # ann_frame_idx 2 = the clip's first frame
    assert woman["category"] == "person" and cup["category"] == "object"
    assert woman["bbox"] == [20, 10, 71, 90] and cup["bbox"] == [80, 50, 121, 89]   # floor / ceil of the floats
    assert json.loads(woman["mask_rle"]) == mask_to_rle(pub.masks[(KEY1, "woman")])
    assert json.loads(woman["quality"]) == {"aesthetic": 4.99, "gme_score": 0.48, "mask_score": [0.9821875]}
    assert woman["keep"] and cup["keep"] and woman["checks"] == []
    assert not grass["keep"] and grass["checks"] == ["background_phrase"] and grass["crop_path"] is None
    # the crop: the clip's frame 0 inside the box, alpha = the published mask
    rgba = np.asarray(Image.open(out / woman["crop_path"]))
    x0, y0, x1, y1 = woman["bbox"]
    assert rgba.shape == (y1 - y0, x1 - x0, 4)
    assert np.array_equal(rgba[..., 3] > 0, pub.masks[(KEY1, "woman")][y0:y1, x0:x1])
    frame0 = read_frames(out / c1["path"], max_frames=1)[0]
    assert np.array_equal(rgba[..., :3], frame0[y0:y1, x0:x1])
    # the second clip is annotated on its frame 5
    c2 = _clip_of(tables, KEY2)
    rows2 = {s["phrase"]: s for s in tables["subjects"] if s["clip_id"] == c2["clip_id"]}
    assert {s["frame_idx"] for s in rows2.values()} == {5}
    assert rows2["woman"]["time_s"] == pytest.approx(5 / FPS, abs=1e-6)
    rgba2 = np.asarray(Image.open(out / rows2["person"]["crop_path"]))
    frame5 = read_frames(out / c2["path"])[5]
    bx0, by0, bx1, by1 = rows2["person"]["bbox"]
    assert np.array_equal(rgba2[..., :3], frame5[by0:by1, bx0:bx1])
    # a clip without its video: the subjects are recorded, not kept, no crop
    cm = _clip_of(tables, KEY_MISSING)
    [man] = [s for s in tables["subjects"] if s["clip_id"] == cm["clip_id"]]
    assert not man["keep"] and man["crop_path"] is None and "clip_not_kept" in man["checks"]
    assert json.loads(man["mask_rle"]) == mask_to_rle(pub.masks[(KEY_MISSING, "man")])


def test_pairs(imported):
    _, _, _, tables = imported
    [p] = tables["pairs"]
    s1 = {s["phrase"]: s for s in tables["subjects"] if s["clip_id"] == _clip_of(tables, KEY1)["clip_id"]}
    s2 = {s["phrase"]: s for s in tables["subjects"] if s["clip_id"] == _clip_of(tables, KEY2)["clip_id"]}
    assert p["target_subject_id"] == s1["woman"]["subject_id"]
    assert p["reference_subject_ids"] == [s2["woman"]["subject_id"]]
    assert p["kind"] == "cross_video" and p["keep"] and p["group_id"] == "clusterA"
    assert p["similarity"] == 0.87109375 and p["verdicts"] == ["opens2v:text_similarity=0.99951171875"]


def test_bad_records_are_rows_with_file_offset_and_reason(imported):
    pub, _, summary, tables = imported
    errors = {(r["kind"], r["key"]): r for r in tables["opens2v_keys"] if r["status"] == "error"}
    broken = errors[("clip", KEY_BROKEN)]
    assert broken["file"] == str(pub.records_file) and broken["offset"] == pub.offset_of(KEY_BROKEN)
    assert "not valid JSON" in broken["error"]
    assert "metadata.crop" in errors[("clip", KEY_NO_CROP)]["error"]
    dangling = errors[("pair", KEY1)]
    assert dangling["file"] == str(pub.pairs_file) and "no subject 'dog'" in dangling["error"]
    assert dangling["part"] == PART
    assert summary["n_error"] == 3 and len(summary["errors"]) == 3
    assert summary["n_clips"] == 3 and summary["n_kept"] == 2 and summary["n_pairs"] == 1
    assert summary["n_cluster_lists_skipped"] == 1
    ok = {r["key"]: r for r in tables["opens2v_keys"] if r["status"] == "ok"}
    assert ok[KEY1]["part"] == PART and ok[KEY1]["pre_define"] == ["person", "human head"]
    assert ok[KEY1]["cut"] == [0, 24] and ok[KEY1]["face_cut"] == [2, 20]
    assert ok[KEY1]["foreground_aes_score"] == 4.9773945808410645


def test_importing_the_same_key_twice_keeps_the_first(tmp_path):
    pub = write_published(tmp_path / "pub")
    summary = import_opens2v([pub.records_file, pub.records_file], pub.videos, tmp_path / "ds")
    keys = pq.read_table(tmp_path / "ds" / "opens2v_keys.parquet").to_pylist()
    dups = [r for r in keys if r["status"] == "duplicate"]
    assert {r["key"] for r in dups} == {KEY1, KEY2, KEY_MISSING} and summary["n_clips"] == 3


def test_cli(tmp_path):
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop():           # a second command, so `import-opens2v` is a subcommand as in s2vforge's app
        pass

    pub = write_published(tmp_path / "pub")
    res = CliRunner().invoke(app, ["import-opens2v", str(pub.records_file), str(pub.pairs_file),
                                   "--videos", str(pub.videos), "--out", str(tmp_path / "ds"), "--json"])
    assert res.exit_code == 1, res.output                      # some records failed: exit 1
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["n_kept"] == 2 and summary["n_error"] == 3
    res = CliRunner().invoke(app, ["import-opens2v", str(tmp_path / "nope.json"), "--videos", str(pub.videos),
                                   "--out", str(tmp_path / "ds2")])
    assert res.exit_code == 2
