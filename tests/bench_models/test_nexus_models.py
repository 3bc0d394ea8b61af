"""Open-vocabulary detectors (OWLv2, Grounding DINO) and NexusScore."""
from __future__ import annotations

import numpy as np
import pytest

from s2vforge.backends.boxes import nms
from s2vforge.backends.detection import Detections, cxcywh_to_xyxy, load_detector, postprocess
from s2vforge.backends.errors import BackendUnavailable, ModelNotFound
from s2vforge.bench.opens2v.metrics.base import Sample
from s2vforge.bench.opens2v.metrics.nexus import (NexusScore, crop_box, nexus_from_similarities,
                                                  nexus_references)

from .conftest import read_frames, video_with_frames


def test_nms_and_official_postprocess_order():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9]], np.float32)
    scores = np.array([0.9, 0.8, 0.55, 0.4], np.float32)
    assert list(nms(boxes, scores, 0.7)) == [0, 2]          # IoU(0,1)=0.81, IoU(0,3)=0.9 suppressed
    det = postprocess(boxes, scores, score_thr=0.5, nms_iou=0.7)
    np.testing.assert_allclose(det.scores, [0.9, 0.55])
    # NMS happens before the threshold: a suppressed box never resurfaces, a low one is dropped after
    det = postprocess(boxes[[1, 3]], scores[[1, 3]], score_thr=0.5, nms_iou=0.7)
    np.testing.assert_allclose(det.scores, [0.8])
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1000, (300, 2)).astype(np.float32)
    many = postprocess(np.c_[xy, xy + 1], rng.uniform(0.6, 1, 300), max_boxes=100)
    assert len(many) == 100 and many.scores.min() >= np.sort(many.scores)[0]


def test_owlv2_boxes_are_scaled_by_the_padded_square():
    # OWLv2 predicts on the image padded to a square: a box at normalised (0.5, 0.25, 0.2, 0.1)
    # on a 640x272 frame spans x 256..384 and y 54.4..81.6 of the 640x640 square
    got = cxcywh_to_xyxy(np.array([[0.5, 0.25, 0.2, 0.1]], np.float32), 640, 640)
    np.testing.assert_allclose(got, [[256, 128, 384, 192]], atol=1e-4)


def test_nexus_reference_rules_follow_the_original():
    s = Sample(id="faceobj_3", prompt="p", ref_paths=["a", "b", "c"], class_label=["Man", "Dog", "School"])
    assert nexus_references(s) == [(1, "Dog"), (2, "School")]
    s = Sample(id="humanobj_3", prompt="p", ref_paths=["a", "b"], class_label=["Woman", "Bird"])
    assert nexus_references(s) == [(0, "human"), (1, "Bird")]
    s = Sample(id="singleface_3", prompt="p", ref_paths=["a"], class_label=["Man"])
    assert nexus_references(s) == []


def test_nexus_arithmetic_official_and_undivided():
    conf = np.array([0.9, 0.7, 0.55, 0.95])
    text = np.array([0.4, 0.31, 0.9, 0.2])
    image = np.array([0.6, 0.8, 0.99, 0.99])
    official, undivided, kept = nexus_from_similarities(conf, text, image, frames_with_det=4)
    assert kept == 2 and undivided == pytest.approx(0.7) and official == pytest.approx(0.7 / 4)
    assert nexus_from_similarities(conf, text, np.zeros(4), 4) == (0.0, 0.0, 0)
    assert crop_box(np.zeros((10, 10, 3)), np.array([2.4, 2.6, 2.9, 9])) is None       # < 2 px wide
    assert crop_box(np.zeros((10, 10, 3)), np.array([-3, 1.6, 5.5, 40])).shape == (8, 6, 3)


class _ScriptedDetector:
    """Detects the reference in frames whose index is listed, with the given boxes/scores."""
    backend, supports_image_prompts = "scripted", True

    def __init__(self, hits):
        self.hits, self.calls = hits, 0

    def detect(self, image, *, text=None, prompt_image=None):
        out = self.hits.get(self.calls, Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
        self.calls += 1
        return out


class _AxisEmbedder:
    """Crops/refs embed by their mean colour direction; texts by a fixed unit vector."""
    backend = "gme"

    def embed_images(self, images):
        v = np.array([np.asarray(im, np.float64).reshape(-1, 3).mean(0) + 1 for im in images])
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def embed_texts(self, texts, instruction=None):
        return np.tile(np.ones(3) / np.sqrt(3), (len(texts), 1))


def test_nexus_metric_counts_frames_with_detections(tmp_path, media):
    from PIL import Image
    frames = read_frames(media["bikes"], n=4, step=5)
    ref = tmp_path / "ref.png"
    Image.fromarray(frames[0][50:150, 100:250]).save(ref)
    box = Detections(np.array([[100, 50, 250, 150], [0, 0, 1, 1]], np.float32), np.array([0.9, 0.7], np.float32))
    low = Detections(np.array([[10, 10, 60, 60]], np.float32), np.array([0.55], np.float32))
    metric = NexusScore(detector_obj=_ScriptedDetector({0: box, 2: low}), embedder_obj=_AxisEmbedder(), n_frames=4)
    rec = metric.compute_record(video_with_frames(media["bikes"], frames),
                                Sample(id="singleobj_1", prompt="p", ref_paths=[ref], class_label=["Bike"]))
    d = rec["details"]
    # frames 0 and 2 had detections -> T' = 2; the 1 px box is skipped; the 0.55 box fails conf > 0.6
    assert d["frames_with_detections"] == 2 and d["n_boxes"] == 3 and d["n_tiny_boxes_skipped"] == 1
    assert d["n_kept"] == 1 and d["nexus_undivided"] == pytest.approx(1.0, abs=1e-9)
    assert rec["value"] == pytest.approx(0.5)
    # OWLv2 (the default detector) stands in for YOLO-World: its own name, never the official one
    assert metric.name == "nexus_owlv2" and not metric.comparable and metric.same_scale


@pytest.mark.reference
def test_owlv2_and_grounding_dino_run_through_public_loaders(tiny_dirs, media):
    frame = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(media["chelsea"]).convert("RGB"))
    owl = load_detector("owlv2", tiny_dirs("owlv2"), score_thr=-1.0)
    assert owl.supports_image_prompts
    for det in (owl.detect(frame, prompt_image=frame[50:200, 100:300]), owl.detect(frame, text="a cat")):
        assert 0 < len(det) <= 100 and det.boxes.shape[1] == 4
        assert (det.boxes[:, [0, 2]] <= frame.shape[1]).all() and (det.boxes[:, [1, 3]] <= frame.shape[0]).all()
        assert (det.boxes[:, 2] > det.boxes[:, 0]).all() and (det.boxes[:, 3] > det.boxes[:, 1]).all()
    # batched path (each frame / prompt embedded once) == the per-(frame, prompt) reference call
    fr = [frame, frame[::-1].copy(), frame[:200]]
    prompts = [frame[50:200, 100:300], frame[150:300, 200:450]]
    batched = owl.detect_frames(fr, prompts, batch_size=2)
    for f, row in zip(fr, batched):
        for p, det in zip(prompts, row):
            ref = owl.detect(f, prompt_image=p)
            assert len(det) == len(ref)
            np.testing.assert_allclose(det.scores, ref.scores, atol=1e-5)
            np.testing.assert_allclose(det.boxes, ref.boxes, atol=1e-3)
    gd = load_detector("grounding-dino", tiny_dirs("gdino"), score_thr=0.0)
    assert not gd.supports_image_prompts
    det = gd.detect(frame, text="dog")
    assert 0 < len(det) <= 20 and (det.scores > 0).all() and (det.scores <= 1).all()
    with pytest.raises(ValueError):
        gd.detect(frame, prompt_image=frame)


@pytest.mark.reference
def test_nexus_with_tiny_owlv2_and_tiny_gme(tiny_dirs, media, tmp_path):
    from PIL import Image
    from s2vforge.backends.gme import GmeEmbedder
    frames = read_frames(media["bikes"], n=2, step=10)
    ref = tmp_path / "Images" / "singleobj" / "bike.png"
    ref.parent.mkdir(parents=True)
    Image.fromarray(frames[0][40:200, 100:400]).save(ref)
    metric = NexusScore(detector="owlv2", detector_dir=tiny_dirs("owlv2"), n_frames=2, keep_conf=-1.0, keep_text=-1.0,
                        embedder_obj=GmeEmbedder.from_dir(tiny_dirs("gme"), min_image_tokens=4, max_image_tokens=16))
    metric.load()
    metric.detector.score_thr, metric.detector.max_boxes = -1.0, 3      # random weights: keep a few boxes
    rec = metric.compute_record(video_with_frames(media["bikes"], frames),
                                Sample(id="singleobj_2", prompt="p", ref_paths=[ref], class_label=["Bicycle"]))
    d = rec["details"]
    assert d["prompt"] == "image" and d["detector"] == "owlv2" and d["frames_with_detections"] == 2
    assert d["n_kept"] >= 1 and -1 <= d["nexus_undivided"] <= 1
    assert rec["value"] == pytest.approx(d["nexus_undivided"] / 2)


def test_detector_errors_are_explicit(no_model_dirs):
    with pytest.raises(BackendUnavailable, match="mmyolo"):
        load_detector("yoloworld")
    with pytest.raises(ModelNotFound, match="google/owlv2-base-patch16-ensemble"):
        load_detector("owlv2")
    with pytest.raises(ModelNotFound, match="grounding-dino"):
        load_detector("grounding-dino")
