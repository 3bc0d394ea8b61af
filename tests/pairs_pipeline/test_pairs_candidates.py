"""Unit tests of the pairs stage's verification rules and the person face-row reuse (no media)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from s2vforge.stages.pairs.candidates import Candidate, CropCache, accepted, verify_candidate
from s2vforge.stages.pairs.embed import compose_person, embedder_key, person_parts, reuses_face_rows
from s2vforge.stages.pairs.pipeline import pairs_config
from s2vforge.stages.pairs.tracks import Instance, attach_face_rows
from s2vforge.stages.pairs.verify import Verdict


PAIRS = pairs_config({})                      # the default recipe's pairs section


def _embed(**categories) -> dict:
    """The default recipe's pairs.embed with some categories' settings overridden."""
    cfg = pairs_config({})["embed"]
    for cat, settings in categories.items():
        cfg[cat] = {**cfg[cat], **settings}
    return cfg


def _unit(*v):
    a = np.asarray(v, np.float32)
    return a / np.linalg.norm(a)


def _inst(sid, cat, vec, clip="c1", frame=3, bbox=(0, 0, 100, 200), crop=None):
    return Instance(sid, clip, "v1", "g1", cat, cat, frame, list(bbox), 1.0, 1.0, crop, vec, None)


FAKE_PERSON = SimpleNamespace(parts=[(SimpleNamespace(dim=4, name="sift-colour-v1"), 0.4),
                                     (SimpleNamespace(dim=3, name="dlib-face-128@top0.5"), 0.6)])


def _person_vec(app, face):
    v = np.concatenate([np.asarray(app, np.float32) * 0.4 ** 0.5, np.asarray(face, np.float32) * 0.6 ** 0.5])
    return v / np.linalg.norm(v)


def test_accepted_rules():
    geo_unknown = Verdict("geometric", None, None, "too few keypoints in target (1)")
    geo_fail = Verdict("geometric", False, 3.0, "inliers=3")
    strong = Verdict("accepted_on_similarity", True, 0.8, "cos=0.800>=0.75")
    assert not accepted([geo_unknown])                       # unknown alone decides nothing
    assert accepted([geo_unknown, strong])
    assert accepted([geo_fail, strong])                      # a strong similarity overrides geometry only
    assert not accepted([geo_fail])
    assert not accepted([geo_fail, strong, Verdict("text_match", False, 0.0, "")])   # the text prior still vetoes
    assert accepted([Verdict("face_agreement", True, 0.3), Verdict("vlm_identity", None, None, "endpoint down")])
    assert not accepted([Verdict("face_agreement", True, 0.3), Verdict("vlm_context", False, 0.0, "same room")])


@pytest.mark.parametrize("sim,expect", [(0.80, True), (0.70, False)])
def test_object_without_geometry_accepted_only_on_strong_similarity(tmp_path, sim, expect):
    cfg = pairs_config({"pairs": {"accept_similarity": {"object": 0.75}}})
    tgt = _inst("t", "object", _unit(1, 0), crop="subjects/missing.png")
    ref = _inst("r", "object", _unit(1, 0), clip="c2", crop="subjects/missing.png")
    verdicts = verify_candidate(tgt, Candidate("r", sim, "subject", "c2", "v2", "cross_video", inst=ref),
                                CropCache(tmp_path), cfg, None)
    assert verdicts[0].check == "geometric" and verdicts[0].ok is False      # crops unreadable
    assert accepted(verdicts) is expect
    assert any(str(v).startswith("accepted_on_similarity:ok:cos=0.800>=0.75") for v in verdicts) is expect


def test_animals_verified_by_embedding_not_homography(tmp_path):
    cfg = pairs_config({"pairs": {"accept_similarity": {"animal": 0.65}}})
    tgt, ref = _inst("t", "animal", _unit(1, 0)), _inst("r", "animal", _unit(1, 0), clip="c2")
    ok = verify_candidate(tgt, Candidate("r", 0.70, "subject", "c2", "v1", "cross_clip", inst=ref), CropCache(tmp_path), cfg, None)
    assert [v.check for v in ok] == ["embedding_agreement"] and accepted(ok)
    low = verify_candidate(tgt, Candidate("r", 0.62, "subject", "c2", "v1", "cross_clip", inst=ref), CropCache(tmp_path), cfg, None)
    assert not accepted(low) and str(low[0]) == "embedding_agreement:fail:cos=0.620<0.65"


def test_person_parts_and_compose():
    app, face = _unit(1, 2, 0, 1), _unit(0, 1, 1)
    v = _person_vec(app, face)
    parts = person_parts(FAKE_PERSON, v)
    assert np.allclose(parts["appearance"], app, atol=1e-6) and np.allclose(parts["face"], face, atol=1e-6)
    no_face = _person_vec(app, np.zeros(3))
    assert person_parts(FAKE_PERSON, no_face)["face"] is None
    new_face = _unit(1, 0, 0)
    c = compose_person(FAKE_PERSON, no_face, new_face)
    assert np.allclose(c, _person_vec(app, new_face), atol=1e-6)
    assert compose_person(FAKE_PERSON, no_face, _unit(1, 0)) is None        # another space (dim): not mixed


def test_attach_face_rows_uses_the_face_inside_the_person_box():
    app = _unit(1, 1, 1, 1)
    person = _inst("p", "person", _person_vec(app, np.zeros(3)), bbox=(10, 10, 110, 310))
    inside = _inst("f1", "face", _unit(0, 0, 1), bbox=(40, 20, 80, 70))
    elsewhere = _inst("f2", "face", _unit(1, 0, 0), bbox=(200, 20, 240, 70))        # another subject's face
    other_frame = _inst("f3", "face", _unit(0, 1, 0), frame=9, bbox=(40, 20, 80, 70))
    assert attach_face_rows([person, inside, elsewhere, other_frame], FAKE_PERSON, PAIRS) == 1
    assert person.face_subject_id == "f1"
    assert np.allclose(person_parts(FAKE_PERSON, person.vector)["face"], inside.vector, atol=1e-6)
    lonely = _inst("q", "person", _person_vec(app, _unit(0, 1, 0)), clip="c9")
    before = lonely.vector.copy()
    assert attach_face_rows([lonely, inside], FAKE_PERSON, PAIRS) == 0 and np.array_equal(lonely.vector, before)


def test_person_without_face_decided_by_appearance(tmp_path):
    from s2vforge.stages.pairs import candidates
    cfg = pairs_config({"pairs": {"accept_similarity": {"person": 0.8}}})
    app = _unit(1, 2, 0, 1)
    tgt = _inst("t", "person", _person_vec(app, np.zeros(3)))
    ref = _inst("r", "person", _person_vec(app, _unit(0, 1, 1)), clip="c2")
    orig = candidates.cached_embedder
    candidates.cached_embedder = lambda state, cat, cfg: FAKE_PERSON
    try:
        v = verify_candidate(tgt, Candidate("r", 0.9, "subject", "c2", "v1", "cross_clip", inst=ref), CropCache(tmp_path), cfg, None)
    finally:
        candidates.cached_embedder = orig
    assert [x.check for x in v] == ["face_agreement", "appearance_agreement"]
    assert v[0].ok is None and v[1].ok is True and accepted(v)


def test_face_row_reuse_is_part_of_the_person_embedder_key():
    assert reuses_face_rows(_embed()) is True
    assert reuses_face_rows(_embed(person={"reuse_face_rows": False})) is False
    assert reuses_face_rows(_embed(person={"face": "none"})) is False
    assert reuses_face_rows(_embed(face={"backend": "arcface"})) is False          # another space than the face rows
    assert embedder_key("person", _embed()) != embedder_key("person", _embed(person={"reuse_face_rows": False}))
