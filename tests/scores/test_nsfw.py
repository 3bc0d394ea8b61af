import dataclasses

from s2vforge.recipes import load_recipe
from s2vforge.stages.scores import nsfw
from s2vforge.stages.scores.nsfw import max_exposed_score, score_nsfw as _score_nsfw

NSFW = load_recipe(None)["scorer_params"]["nsfw"]      # the default recipe's n_frames and exposed classes
EXPOSED_CLASSES = frozenset(NSFW["classes"])


def score_nsfw(frames):
    return _score_nsfw(frames, **NSFW)


def test_ordinary_clips_score_low(clip):
    value = score_nsfw(clip)["score_nsfw"]
    assert 0.0 <= value < 0.3


def test_detector_sees_the_face_in_carphone(carphone):
    """The ONNX model really runs on our frames: it finds the driver's face (a non-NSFW class)."""
    detector = nsfw.load_detector()
    assert detector is nsfw.load_detector()  # loaded once per process
    import cv2
    detections = detector.detect(cv2.cvtColor(carphone.rgb[0], cv2.COLOR_RGB2BGR))
    assert any(d["class"].startswith("FACE_") and d["score"] > 0.5 for d in detections)
    assert max_exposed_score(detections, EXPOSED_CLASSES) == 0.0


def test_only_exposed_classes_count():
    detections = [{"class": "FACE_FEMALE", "score": 0.9}, {"class": "BELLY_EXPOSED", "score": 0.8},
                  {"class": "FEMALE_BREAST_EXPOSED", "score": 0.55}, {"class": "BUTTOCKS_COVERED", "score": 0.7}]
    assert max_exposed_score(detections, EXPOSED_CLASSES) == 0.55
    assert max_exposed_score(detections[:2], EXPOSED_CLASSES) == 0.0
    assert "BELLY_EXPOSED" not in EXPOSED_CLASSES and "ANUS_EXPOSED" in EXPOSED_CLASSES


def test_nsfw_no_frames_gives_none(bikes):
    assert score_nsfw(dataclasses.replace(bikes, rgb=[], next_rgb=[])) == {"score_nsfw": None}
