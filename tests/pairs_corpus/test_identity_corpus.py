"""The identity corpus (s2vforge.corpus.identity): its truth is consistent and deterministic.

Built once per session from packaged media only (face_photos=None), the layout the pairs stage
reads: every subject has a label, crops match their masks, clip files decode to the stated
frame count, and the group structure is as designed (several identities per group, each
living identity twice in a group, objects in >= 2 videos).
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from s2vforge.corpus.identity import TRUTH_NAME, build_identity_dataset, eligible_partners
from s2vforge.corpus.synth import video_info
from s2vforge.schema import clip_id_for
from s2vforge.stages.subjects.pipeline import SUBJECT_SCHEMA, subject_id_for
from s2vforge.stages.subjects.rle import mask_bbox, rle_to_mask


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("identity") / "ds"
    summary = build_identity_dataset(out, seed=0, scale="tiny")
    assert summary["n_clips"] == 12 and summary["n_subjects"] > 12
    return out


def _load(ds: Path):
    truth = json.loads((ds / TRUTH_NAME).read_text())
    subjects = pq.read_table(ds / "subjects.parquet").to_pylist()
    clips = pq.read_table(ds / "clips.parquet").to_pylist()
    videos = pq.read_table(ds / "videos.parquet").to_pylist()
    return truth, subjects, clips, videos


def test_every_subject_has_a_label_and_ids_follow_the_helpers(corpus):
    truth, subjects, clips, videos = _load(corpus)
    assert pq.read_schema(corpus / "subjects.parquet").names == SUBJECT_SCHEMA.names
    assert {s["subject_id"] for s in subjects} == set(truth["subjects"])
    clip_by_id = {c["clip_id"]: c for c in clips}
    assert set(truth["clips"]) == set(clip_by_id)
    for c in clips:
        assert c["clip_id"] == clip_id_for(c["video_id"], c["start_frame"], c["end_frame"])
        assert c["keep"] and c["path"] == f"clips/{c['clip_id']}.mp4"
        assert truth["clips"][c["clip_id"]]["context"]
    video_group = {v["video_id"]: v["group_id"] for v in videos}
    for s in subjects:
        t = truth["subjects"][s["subject_id"]]
        assert t["identity"] in truth["identities"]
        assert s["subject_id"] == subject_id_for(s["clip_id"], s["frame_idx"], s["category"], s["bbox"], s["phrase"])
        assert s["category"] == t["category"] and s["category"] in ("face", "person", "animal", "object")
        assert s["video_id"] == clip_by_id[s["clip_id"]]["video_id"] == t["video_id"]
        assert s["group_id"] == video_group[s["video_id"]] == t["group_id"]
        assert t["context"] == truth["clips"][s["clip_id"]]["context"]
        assert s["keep"] and s["checks"] == []


def test_crops_match_masks_and_frames(corpus):
    truth, subjects, clips, _ = _load(corpus)
    W, H = truth["size"]
    import av
    for s in subjects:
        m = rle_to_mask(json.loads(s["mask_rle"]))
        assert m.shape == (H, W)
        assert list(mask_bbox(m)) == s["bbox"]
        x0, y0, x1, y1 = s["bbox"]
        rgba = np.asarray(Image.open(corpus / s["crop_path"]))
        assert rgba.shape == (y1 - y0, x1 - x0, 4)
        assert np.array_equal(rgba[..., 3] > 0, m[y0:y1, x0:x1])
        assert m.sum() > 200
    # a crop's pixels are the clip's pixels at frame_idx (up to H.264 loss)
    s = max(subjects, key=lambda r: (r["bbox"][2] - r["bbox"][0]) * (r["bbox"][3] - r["bbox"][1]))
    with av.open(str(corpus / "clips" / f"{s['clip_id']}.mp4")) as c:
        frame = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][s["frame_idx"]]
    x0, y0, x1, y1 = s["bbox"]
    rgba = np.asarray(Image.open(corpus / s["crop_path"])).astype(np.float32)
    inside = rgba[..., 3] > 0
    err = np.abs(rgba[..., :3] - frame[y0:y1, x0:x1].astype(np.float32))[inside].mean()
    assert err < 6.0, err
    # a face row's mask lies inside its person's mask (same appearance)
    by_clip = defaultdict(dict)
    for r in subjects:
        by_clip[r["clip_id"]][r["category"]] = r
    checked = 0
    for rows in by_clip.values():
        if "face" in rows:
            f = rle_to_mask(json.loads(rows["face"]["mask_rle"]))
            p = rle_to_mask(json.loads(rows["person"]["mask_rle"]))
            assert not (f & ~p).any() and f.sum() < p.sum()
            checked += 1
    assert checked >= 3


def test_clip_files_decode_to_the_stated_frames(corpus):
    truth, _, clips, videos = _load(corpus)
    for c in clips:
        info = video_info(corpus / c["path"])
        assert info["n_frames"] == c["end_frame"] - c["start_frame"] == truth["clips"][c["clip_id"]]["n_frames"]
        assert (info["width"], info["height"]) == tuple(truth["size"])
        assert abs(c["end_s"] - c["start_s"] - info["n_frames"] / info["fps"]) < 1e-6
    for v in videos:
        assert video_info(v["path"])["n_frames"] == v["n_frames"] == v["n_clips"] * 12


def test_group_structure_as_designed(corpus):
    truth, subjects, clips, _ = _load(corpus)
    groups = defaultdict(lambda: defaultdict(set))     # group -> living identity -> clips
    objects = defaultdict(set)                          # object identity -> videos
    for sid, t in truth["subjects"].items():
        if t["kind"] == "object":
            objects[t["identity"]].add(t["video_id"])
        else:
            groups[t["group_id"]][t["identity"]].add(t["clip_id"])
    for g, ids in groups.items():
        assert len(ids) >= 2, f"group {g} holds one living identity: the same-group prior would be trivial"
        twice = [i for i, cs in ids.items() if len(cs) >= 2]
        assert twice, g
        for i in twice:   # the same identity in one group appears on different backgrounds
            contexts = {truth["clips"][c]["context"] for c in ids[i]}
            assert len(contexts) == len(ids[i])
    assert sum(len(v) >= 2 for v in objects.values()) >= 5
    assert {"rocket", "shuttle"} <= set(objects)   # look-alike distractors both present
    # at most one living subject and one object per clip, never on its own source photo
    per_clip = Counter((t["clip_id"], t["kind"] == "object") for t in truth["subjects"].values() if t["category"] != "face")
    assert max(per_clip.values()) == 1
    assert not any(t["identity"] == "cat" and t["context"] == "chelsea" for t in truth["subjects"].values())
    # eligibility follows the priors
    n_eligible = 0
    for sid, t in truth["subjects"].items():
        for p in eligible_partners(truth, sid):
            u = truth["subjects"][p]
            assert u["identity"] == t["identity"] and u["category"] == t["category"] and u["clip_id"] != t["clip_id"]
            assert (u["video_id"] != t["video_id"]) if t["kind"] == "object" else (u["group_id"] == t["group_id"])
            n_eligible += 1
    assert n_eligible >= 10


def test_deterministic_for_a_seed(corpus, tmp_path):
    again = tmp_path / "again"
    build_identity_dataset(again, seed=0, scale="tiny")
    for name in ("subjects.parquet", "clips.parquet", TRUTH_NAME):
        a, b = corpus / name, again / name
        if name.endswith(".parquet"):
            ta, tb = pq.read_table(a).to_pylist(), pq.read_table(b).to_pylist()
            assert ta == tb
        else:
            assert a.read_text() == b.read_text()
    for s in pq.read_table(corpus / "subjects.parquet").column("crop_path").to_pylist()[:5]:
        assert (corpus / s).read_bytes() == (again / s).read_bytes()
    build_identity_dataset(tmp_path / "seed1", seed=1, scale="tiny")
    other = json.loads((tmp_path / "seed1" / TRUTH_NAME).read_text())
    assert other["clips"] != json.loads((corpus / TRUTH_NAME).read_text())["clips"]   # another seed, another layout


def test_face_photos_must_be_complete(tmp_path):
    with pytest.raises(FileNotFoundError, match="obama"):
        build_identity_dataset(tmp_path / "x", face_photos=tmp_path)
