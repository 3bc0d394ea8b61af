"""Face agreement on dlib descriptors of real faces; the OCR text prior on rendered words."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from s2vforge.recipes import load_recipe
from s2vforge.stages.pairs.verify import (DLIB_RAW_NORM, normalise_text, text_similarity, verify_face_agreement,
                                          verify_text_match)

VERIFY = load_recipe(None)["pairs"]["verify"]     # the default recipe's thresholds
FACE, TEXT = VERIFY["face"], VERIFY["text"]


def test_different_people_disagree(face_vectors):
    for kind in ("raw", "unit"):
        v = face_vectors[kind]
        out = verify_face_agreement(v["astronaut"], v["grace_hopper"], **FACE)
        assert out.ok is False, (kind, str(out))
        assert out.score > 0.6
        assert verify_face_agreement(v["astronaut"], v["carphone0"], **FACE).ok is False


def test_same_person_two_frames_agree(face_vectors):
    for kind in ("raw", "unit"):
        v = face_vectors[kind]
        out = verify_face_agreement(v["carphone0"], v["carphone110"], **FACE)
        assert out.ok is True, (kind, str(out))
        assert out.score < 0.6
        assert out.detail.startswith("dist=")


def test_raw_and_unit_vectors_give_face_recognition_units(face_vectors):
    raw, unit = face_vectors["raw"], face_vectors["unit"]
    for a, b in (("astronaut", "grace_hopper"), ("carphone0", "carphone110")):
        plain = float(np.linalg.norm(raw[a] - raw[b]))          # face_recognition.face_distance
        d_raw = verify_face_agreement(raw[a], raw[b], **FACE).score
        d_unit = verify_face_agreement(unit[a], unit[b], **FACE).score
        assert d_raw == pytest.approx(d_unit, abs=1e-4)
        assert d_raw == pytest.approx(plain, rel=0.06)
    norms = [float(np.linalg.norm(x)) for x in raw.values()]
    assert all(abs(n - DLIB_RAW_NORM) < 0.08 for n in norms), norms


@pytest.mark.parametrize("a,b", [(None, np.ones(128)), (np.ones(128), None), (np.full(128, np.nan), np.ones(128)),
                                 (np.zeros(128), np.ones(128)), (np.ones(128), np.ones(64))])
def test_missing_or_invalid_vectors_are_undecided(a, b):
    v = verify_face_agreement(a, b, **FACE)
    assert v.ok is None and v.score is None and v.check == "face_agreement"


def _render(word, *, font=cv2.FONT_HERSHEY_SIMPLEX, scale=2.0, thick=4, color=(20, 20, 160), bg=(235, 225, 200),
            size=(420, 140)) -> np.ndarray:
    img = np.full((size[1], size[0], 3), bg, np.uint8)
    (tw, th), _ = cv2.getTextSize(word, font, scale, thick)
    cv2.putText(img, word, ((size[0] - tw) // 2, (size[1] + th) // 2), font, scale, color, thick, cv2.LINE_AA)
    return img


def test_text_match_same_word_two_renderings():
    ocr_kw = dict(font=cv2.FONT_HERSHEY_DUPLEX, scale=1.5, thick=3, color=(200, 30, 30), bg=(250, 250, 250),
                  size=(360, 120))
    ref = _render("BISCUIT")
    same = _render("BISCUIT", **ocr_kw)
    other = _render("ORANGE", **ocr_kw)
    ok = verify_text_match(ref, same, **TEXT)
    assert ok.ok is True and ok.score > 0.9, str(ok)
    bad = verify_text_match(ref, other, **TEXT)
    assert bad.ok is False and bad.score < 0.6, str(bad)
    blank = np.full((120, 200, 3), 200, np.uint8)
    none = verify_text_match(blank, blank.copy(), **TEXT)
    assert none.ok is None and none.score is None
    one = verify_text_match(ref, blank, **TEXT)
    assert one.ok is False and one.score == 0.0 and "only in reference" in one.detail


def test_text_similarity_normalises():
    assert normalise_text(" Coca-Cola® ") == "cocacola"
    assert text_similarity("COCA COLA", "coca-cola") == 1.0
    assert text_similarity("", "x") == 0.0
    assert 0.6 < text_similarity("BISCUIT", "B1SCUIT") < 1.0
