"""Embedded detectors on real photos pasted at known boxes onto real backgrounds."""
from __future__ import annotations

import cv2
import pytest

from s2vforge.corpus.synth import load_photo
from s2vforge.stages.subjects.boxrules import box_iou

# face boxes in the source photos: mean of MediaPipe's and dlib's boxes, checked by eye
# (the same table as benchmarks/bench_subjects_detection.py)
FACES = {"astronaut": (176, 79, 268, 172), "grace_hopper": (175, 142, 365, 333)}


def paste_face(canvas, photo, face_box, face_width, xy):
    """Paste a head-and-shoulders patch so the face is face_width px wide at xy; return the face box."""
    x0, y0, x1, y1 = face_box
    fw, fh = x1 - x0, y1 - y0
    px0, py0 = max(0, int(x0 - 0.8 * fw)), max(0, int(y0 - 0.6 * fh))
    px1, py1 = min(photo.shape[1], int(x1 + 0.8 * fw)), min(photo.shape[0], int(y1 + 1.2 * fh))
    s = face_width / fw
    patch = cv2.resize(photo[py0:py1, px0:px1], (round((px1 - px0) * s), round((py1 - py0) * s)), interpolation=cv2.INTER_AREA)
    canvas[xy[1]:xy[1] + patch.shape[0], xy[0]:xy[0] + patch.shape[1]] = patch
    return (xy[0] + (x0 - px0) * s, xy[1] + (y0 - py0) * s, xy[0] + (x1 - px0) * s, xy[1] + (y1 - py0) * s)


@pytest.fixture(scope="module")
def face_detector():
    from s2vforge.backends.facedet import load_face_detector
    return load_face_detector("mediapipe")


@pytest.mark.parametrize("bg", ["bikes", "rocket"])
def test_blazeface_finds_real_faces_at_known_positions_down_to_64px(face_detector, backgrounds, bg):
    canvas = backgrounds[bg].copy()
    gts = [paste_face(canvas, load_photo("astronaut"), FACES["astronaut"], 64, (40, 380)),
           paste_face(canvas, load_photo("grace_hopper"), FACES["grace_hopper"], 96, (420, 60)),
           paste_face(canvas, load_photo("astronaut"), FACES["astronaut"], 180, (790, 150))]
    dets = face_detector.detect(canvas)
    for gt in gts:
        best = max((box_iou(d.box, gt) for d in dets), default=0.0)
        assert best >= 0.5, f"face at {gt} not found (best IoU {best:.2f}); got {[d.box for d in dets]}"
    assert all(d.label == "face" and 0.5 <= d.score <= 1.0 for d in dets)


def test_no_face_on_a_photo_without_people(face_detector, backgrounds):
    assert face_detector.detect(backgrounds["brick"]) == []


def test_person_box_contains_the_face(backgrounds):
    from s2vforge.backends.persondet import load_person_detector
    canvas = backgrounds["rocket"].copy()
    photo = load_photo("astronaut")
    s = 1.2
    patch = cv2.resize(photo, (round(512 * s), round(512 * s)))[:720 - 60]
    canvas[60:60 + patch.shape[0], 300:300 + patch.shape[1]] = patch
    person_gt = (300 + 18 * s, 60 + 14 * s, 300 + 368 * s, 720)           # drawn by eye on the photo
    face_gt = tuple(v * s + o for v, o in zip(FACES["astronaut"], (300, 60, 300, 60)))
    dets = load_person_detector("mediapipe-pose").detect(canvas)
    assert len(dets) == 1
    box = dets[0].box
    assert box_iou(box, person_gt) >= 0.5
    assert box[0] <= face_gt[0] and box[1] <= face_gt[1] + 5 and box[2] >= face_gt[2] and box[3] >= face_gt[3]


@pytest.mark.parametrize("bg", ["brick", "grass"])
def test_class_agnostic_saliency_boxes_a_pasted_object(backgrounds, bg):
    from s2vforge.backends.saliency import SalientObjects
    cup = load_photo("coffee")[15:395, 75:485]          # tight crop of cup and saucer, drawn by eye
    canvas = backgrounds[bg].copy()
    h, w = int(cup.shape[0] * 0.8), int(cup.shape[1] * 0.8)
    canvas[200:200 + h, 500:500 + w] = cv2.resize(cup, (w, h), interpolation=cv2.INTER_AREA)
    dets = SalientObjects().detect(canvas)
    assert dets and all(d.label == "object" and d.backend.startswith("saliency-") for d in dets)
    assert max(box_iou(d.box, (500, 200, 500 + w, 200 + h)) for d in dets) >= 0.8


def test_unknown_backends_are_rejected():
    from s2vforge.backends.facedet import load_face_detector
    from s2vforge.backends.persondet import load_person_detector
    from s2vforge.backends.saliency import SalientObjects
    with pytest.raises(ValueError):
        load_face_detector("yolo")
    with pytest.raises(ValueError):
        load_person_detector("yolo")
    with pytest.raises(ValueError):
        SalientObjects(method="magic")


def test_scrfd_without_weights_says_where_it_looked(tmp_path, monkeypatch):
    from s2vforge.backends.errors import ModelNotFound
    from s2vforge.backends.facedet import load_face_detector
    monkeypatch.setenv("S2VFORGE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ModelNotFound, match="det_10g.onnx") as e:
        load_face_detector("scrfd")
    assert str(tmp_path / "models") in str(e.value)
