"""Face tracks on a clip stitched from real faces with known shot boundaries."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from s2vforge.recipes import load_recipe
from s2vforge.stages.subjects.facetrack import longest_face_segment, segments, track_faces

from .faceclip import DT, stitched_clip

TRACK = load_recipe(None)["subjects"]["face_track"]      # the default recipe's subjects.face_track

SHOTS = [("carphone_a", 4), ("hopper", 6), ("collins", 4), ("no_face", 1), ("carphone_b", 4)]


class CachedFaces:
    """dlib detector + embedder (upsample 0: the faces here are >= 70 px) with results cached
    per frame content, so tests that reuse frames pay for each frame once."""

    def __init__(self):
        from s2vforge.backends.face import DlibFaces
        self.inner = DlibFaces(upsample=0)
        self.dets, self.embs = {}, {}
        self.detect_calls = 0

    @staticmethod
    def _key(frame):
        return hashlib.blake2b(np.ascontiguousarray(frame).tobytes(), digest_size=16).digest()

    def detect(self, frame):
        self.detect_calls += 1
        k = self._key(frame)
        if k not in self.dets:
            self.dets[k] = self.inner.detect(frame)
        return self.dets[k]

    def embed(self, frame, face):
        k = (self._key(frame), tuple(np.round(face.bbox, 1)))
        if k not in self.embs:
            self.embs[k] = self.inner.embed(frame, face)
        return self.embs[k]


@pytest.fixture(scope="module")
def faces():
    return CachedFaces()


@pytest.fixture(scope="module")
def clip():
    return stitched_clip(SHOTS)


def test_longest_segment_is_one_identity(clip, faces):
    frames, times, labels = clip
    out = longest_face_segment(frames, times, detector=faces, embedder=faces, cfg=TRACK)
    # Hopper's 6 frames (0.8 s .. 1.8 s) win; Hopper + Collins back to back are 10 face frames,
    # so a tracker without identities would have returned 0.8 .. 2.6 s.
    assert out["start_s"] == pytest.approx(4 * DT)
    assert out["end_s"] == pytest.approx(9 * DT)
    assert (out["start_index"], out["end_index"]) == (4, 9)
    assert out["n_frames"] == 6 and out["n_face_frames"] == 6
    assert out["n_tracks"] == 3       # the carphone man, Grace Hopper, Eileen Collins
    assert faces.detect_calls == len(frames)


def test_tracks_match_the_shots(clip, faces):
    frames, _, labels = clip
    tracks = track_faces(frames, faces, faces, sim_threshold=TRACK["sim_threshold"], min_face_px=TRACK["min_face_px"],
                         max_faces_per_frame=TRACK["max_faces_per_frame"])
    by_frame = {i: t.track_id for t in tracks for i in t.frames}
    assert set(by_frame) == {i for i, l in enumerate(labels) if l != "no_face"}
    ids = {name: {by_frame[i] for i, l in enumerate(labels) if l == name} for name, _ in SHOTS if name != "no_face"}
    assert all(len(v) == 1 for v in ids.values()), ids                 # one track per shot
    assert ids["carphone_a"] == ids["carphone_b"]                       # the same man after the cut-aways
    assert len({next(iter(v)) for v in ids.values()}) == 3              # three different people


def test_gap_tolerance_bridges_a_missed_frame(clip, faces):
    frames, times, labels = clip
    a = [f for f, l in zip(frames, labels) if l == "carphone_a"]
    b = [f for f, l in zip(frames, labels) if l == "carphone_b"]
    gap = [f for f, l in zip(frames, labels) if l == "no_face"]
    sub = a + gap + b                                   # 9 frames: ceil(0.05 * 9) = 1 face-less frame tolerated
    t = [i * DT for i in range(len(sub))]
    out = longest_face_segment(sub, t, detector=faces, embedder=faces, cfg=TRACK)
    assert (out["start_index"], out["end_index"], out["n_frames"], out["n_face_frames"]) == (0, 8, 9, 8)
    strict = longest_face_segment(sub, t, detector=faces, embedder=faces, cfg={**TRACK, "gap_tolerance_share": 0.0})
    assert strict["n_frames"] == 4 and strict["n_tracks"] == 1


def test_no_face_and_threshold_extremes(clip, faces):
    frames, times, labels = clip
    empty = [f for f, l in zip(frames, labels) if l == "no_face"]
    out = longest_face_segment(empty, times[:len(empty)], detector=faces, embedder=faces, cfg=TRACK)
    assert out["n_frames"] == 0 and out["start_s"] is None and out["n_tracks"] == 0
    # a threshold no embedding pair reaches makes every face its own track
    loose = longest_face_segment(frames[:4], times[:4], detector=faces, embedder=faces,
                                 cfg={**TRACK, "sim_threshold": 1.01})
    assert loose["n_tracks"] == 4 and loose["n_frames"] == 1
    with pytest.raises(ValueError):
        longest_face_segment(frames[:3], times[:2], detector=faces, embedder=faces, cfg=TRACK)


def test_segments_rule():
    assert segments([0, 1, 2, 5, 6, 9], tolerance=2) == [(0, 9)]
    assert segments([0, 1, 2, 5, 6, 10], tolerance=2) == [(0, 6), (10, 10)]
    assert segments([0, 1, 2, 5, 6, 9], tolerance=1) == [(0, 2), (5, 6), (9, 9)]
    assert segments([], tolerance=3) == []
    assert 0.88 < TRACK["sim_threshold"] < 0.95   # between Hopper-vs-Collins (0.88) and carphone-vs-itself (>= 0.95)
