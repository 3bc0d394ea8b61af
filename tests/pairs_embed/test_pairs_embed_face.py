"""Embedded face and person identity on real photos and video frames (dlib 128-d)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("dlib")

from pairs_embed_media import (SUBJECTS, carphone_frames, embed_cfg, load_rgb, mpl_photo,  # noqa: E402
                               skimage_photo, variants)

from s2vforge.backends.errors import BackendUnavailable  # noqa: E402
from s2vforge.backends.identity import (DLIB_TYPICAL_RAW_NORM, DlibFaceIdentity, dlib_cosine_threshold,  # noqa: E402
                                        dlib_raw_distance)
from s2vforge.stages.pairs.embed import clear_embedder_cache, embedder_for  # noqa: E402


def face_crop(rgb: np.ndarray, box, margin: float = 0.15) -> np.ndarray:
    """What the subjects stage writes for a face: the detector box (+ margin) as RGBA, alpha = an ellipse."""
    import cv2
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    x0, y0 = max(0, int(x0 - mx)), max(0, int(y0 - my))
    x1, y1 = min(rgb.shape[1], int(x1 + mx)), min(rgb.shape[0], int(y1 + my))
    crop = rgb[y0:y1, x0:x1]
    alpha = np.zeros(crop.shape[:2], np.uint8)
    cv2.ellipse(alpha, (crop.shape[1] // 2, crop.shape[0] // 2), (crop.shape[1] // 2, crop.shape[0] // 2), 0, 0, 360, 255, -1)
    return np.dstack([crop, alpha])


# face boxes measured with dlib HOG on the packaged media (astronaut: the larger of its two hits)
CARPHONE_BOXES = {0: (69, 46, 112, 89), 60: (55, 38, 106, 90), 110: (43, 38, 95, 90)}
ASTRONAUT_BOX = (175, 76, 265, 166)
HOPPER_BOX = (180, 139, 366, 325)


@pytest.fixture(scope="module")
def faces():
    clear_embedder_cache()
    return embedder_for("face", embed_cfg(face={"backend": "dlib"}))


def test_same_person_across_carphone_frames_is_closer_than_two_different_people(faces):
    frames = carphone_frames((0, 60, 110))
    crops = [face_crop(frames[i], CARPHONE_BOXES[i]) for i in (0, 60, 110)]
    crops += [face_crop(load_rgb(str(skimage_photo("astronaut.png"))), ASTRONAUT_BOX),
              face_crop(load_rgb(str(mpl_photo("grace_hopper.jpg"))), HOPPER_BOX)]
    emb, info = faces.embed_with_info(crops)
    assert faces.name == "dlib-face-128" and emb.shape == (5, 128) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert [i["face"] for i in info] == ["hog"] * 5
    assert all(1.2 < i["raw_norm"] < 1.7 for i in info)          # why DLIB_TYPICAL_RAW_NORM is 1.43
    sim = emb @ emb.T
    same = [sim[0, 1], sim[0, 2], sim[1, 2]]
    different = sim[3, 4]
    assert min(same) > different + 0.05, (same, different)
    threshold = dlib_cosine_threshold()
    assert min(same) > threshold > different                      # dlib's 0.6 rule, in cosine
    assert max(sim[:3, 3:].ravel()) < threshold                   # carphone is neither of the others


def test_hog_miss_falls_back_to_the_crop_box_and_says_so(faces):
    frames = carphone_frames((0, 60, 110))
    crop = face_crop(frames[60], CARPHONE_BOXES[60])
    rotated = np.ascontiguousarray(np.rot90(crop))                # HOG is frontal-upright only
    tight = face_crop(frames[60], CARPHONE_BOXES[60], margin=0.0)    # the HOG box itself: cheeks cut, HOG misses
    ref = face_crop(frames[0], CARPHONE_BOXES[0])
    emb, info = faces.embed_with_info([rotated, crop, tight, ref])
    assert [i["face"] for i in info] == ["crop_box", "hog", "crop_box", "hog"]
    assert np.isfinite(emb).all()
    assert info[2]["box"][0] <= 1 and info[2]["box"][2] >= tight.shape[1] - 2   # the whole crop was the face box
    # the landmark fit on the crop box still lands on the same person
    assert emb[2] @ emb[3] > dlib_cosine_threshold()
    strict = DlibFaceIdentity(fallback_to_crop=False)
    emb2, info2 = strict.embed_with_info([rotated])
    assert info2[0]["face"] is None and np.isnan(emb2).all()


def test_crops_with_nothing_give_nan_rows_not_errors(faces):
    good = face_crop(carphone_frames((0, 60, 110))[0], CARPHONE_BOXES[0])
    empty_alpha = good.copy()
    empty_alpha[..., 3] = 0
    flat = np.full((80, 80, 3), 120, np.uint8)
    emb = faces.embed([empty_alpha, good, flat, np.zeros((0, 0, 4), np.uint8), good[:5, :5]])
    finite = np.isfinite(emb).all(axis=1)
    assert finite.tolist() == [False, True, False, False, False]
    assert np.isnan(emb[~finite]).all()


def test_dlib_distance_rule_converts_both_ways():
    c = dlib_cosine_threshold(0.6, DLIB_TYPICAL_RAW_NORM)
    assert c == pytest.approx(1 - 0.36 / (2 * 1.43 ** 2), abs=1e-9) and 0.90 < c < 0.92
    assert dlib_raw_distance(c) == pytest.approx(0.6, abs=1e-9)
    assert dlib_cosine_threshold(0.6, 1.0) == pytest.approx(0.82)   # unit vectors: 1 - d^2 / 2


def test_person_is_appearance_plus_face_and_separates_people():
    clear_embedder_cache()
    person = embedder_for("person", embed_cfg())
    subjects = {s.name: s for s in SUBJECTS}
    crops, labels = [], []
    for name in ("astronaut", "grace_hopper"):
        v = variants(subjects[name], 3, seed=1)
        crops += v
        labels += [name] * len(v)
    emb = person.embed(crops)
    assert emb.shape == (6, person.dim) and np.isfinite(emb).all()
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert "dlib-face-128" in person.name and "sift-colour-v1" in person.name
    face_dim = 128
    assert (np.abs(emb[:, -face_dim:]).sum(1) > 0).sum() >= 4       # the face is found in most crops
    sim = emb @ emb.T
    lab = np.array(labels)
    same = sim[lab[:, None] == lab[None]]
    same = same[same < 0.9999]
    diff = sim[lab[:, None] != lab[None]]
    assert same.min() > diff.max(), (same.min(), diff.max())


def test_missing_dlib_says_which_extra_to_install(monkeypatch):
    clear_embedder_cache()
    monkeypatch.setitem(sys.modules, "dlib", None)                  # import dlib -> ImportError
    with pytest.raises(BackendUnavailable, match=r"s2vforge\[faces\]"):
        embedder_for("face", embed_cfg())
    clear_embedder_cache()
