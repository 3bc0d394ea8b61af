"""Face tracks: the longest stretch of a clip in which one person's face is visible.

OpenS2V-Nexus cuts each clip to its face-present frames (data_process/
step2_get_pure_person_clip.py, the clip's `face_cut`): frames with a detected face, gaps of up
to ceil(5 % of the clip's frames) without one tolerated, trailing gap frames trimmed, segments
of at least 81 frames kept. It does not ask *whose* face it is; here faces are also linked
into identities, so a cut between two people ends the segment.

`longest_face_segment(frames, times, cfg=...)`, cfg = the recipe's `subjects.face_track`
section (values and sources in recipes/openhumanvid.yaml; no defaults here):

1. detect faces in every frame (when no detector is given: dlib HOG, backends/face.DlibFaces),
   keep up to `max_faces_per_frame` of the largest with a short side >= `min_face_px`;
2. embed each face (when no embedder is given: dlib's 128-d ResNet descriptor, L2-normalised,
   the same DlibFaces) and link it to the track whose mean embedding is most similar, if the
   cosine similarity is >= `sim_threshold` (greedy, one face per track per frame); otherwise it
   starts a new track;
3. split each track's frames into segments with OpenS2V-Nexus' gap tolerance
   (ceil(`gap_tolerance_share` x the frames)); the longest segment (by time span, then by face
   frames) wins.

Returns {"start_s", "end_s", "n_frames", "n_face_frames", "track_id", "n_tracks",
"start_index", "end_index"}: the times of the segment's first and last face frames (the
last is inclusive), the frames it spans (gap frames included, as OpenS2V counts them) and
how many of them show the face. No face at all gives None times and n_frames 0.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..recipe_keys import need

# subjects.face_track.sim_threshold (0.91 in the default recipe): face_recognition's tolerance 0.6
# is a Euclidean distance between raw dlib descriptors, whose norms are ~1.4: that is a cosine
# similarity of ~0.91 between the unit vectors compared here. Measured (tests/subjects_masks):
# the carphone face against itself 0.95-1.00 over 4 s; Grace Hopper vs Eileen Collins 0.88;
# carphone vs either 0.81-0.87.


@dataclass
class _Track:
    track_id: int
    sum_emb: np.ndarray
    frames: list[int] = field(default_factory=list)

    @property
    def mean(self) -> np.ndarray:
        return self.sum_emb / max(float(np.linalg.norm(self.sum_emb)), 1e-12)


@functools.lru_cache(maxsize=1)
def default_faces():
    """dlib detector + embedder (backends/face.DlibFaces), built once per process."""
    from s2vforge.backends.face import DlibFaces
    return DlibFaces()


def _embed_fn(embedder) -> Callable[[np.ndarray, object], np.ndarray]:
    if hasattr(embedder, "embed"):
        return embedder.embed
    if callable(embedder):
        return embedder
    raise TypeError("embedder must have .embed(rgb, face) or be callable(rgb, face)")


def _face_side(face) -> float:
    x0, y0, x1, y1 = (float(v) for v in face.bbox)
    return min(x1 - x0, y1 - y0)


def track_faces(frames: Sequence[np.ndarray], detector=None, embedder=None, *, sim_threshold: float,
                min_face_px: int, max_faces_per_frame: int) -> list[_Track]:
    """Identity tracks over the frames (see module docstring, steps 1-2)."""
    if detector is None or embedder is None:
        faces_backend = default_faces()
        detector = faces_backend if detector is None else detector
        embedder = faces_backend if embedder is None else embedder
    embed = _embed_fn(embedder)
    tracks: list[_Track] = []
    for idx, frame in enumerate(frames):
        faces = [f for f in detector.detect(frame) if _face_side(f) >= min_face_px]
        faces = sorted(faces, key=lambda f: -f.area)[:max_faces_per_frame]
        if not faces:
            continue
        embs = [np.asarray(embed(frame, f), np.float64).ravel() for f in faces]
        embs = [e / max(float(np.linalg.norm(e)), 1e-12) for e in embs]
        pairs = []
        for fi, e in enumerate(embs):
            for ti, t in enumerate(tracks):
                sim = float(e @ t.mean)
                if sim >= sim_threshold:
                    pairs.append((sim, fi, ti))
        used_faces, used_tracks = set(), set()
        for sim, fi, ti in sorted(pairs, reverse=True):
            if fi in used_faces or ti in used_tracks:
                continue
            used_faces.add(fi)
            used_tracks.add(ti)
            tracks[ti].frames.append(idx)
            tracks[ti].sum_emb = tracks[ti].sum_emb + embs[fi]
        for fi, e in enumerate(embs):
            if fi not in used_faces:
                tracks.append(_Track(len(tracks), e.copy(), [idx]))
    return tracks


def segments(present: Sequence[int], tolerance: int) -> list[tuple[int, int]]:
    """(first, last) frame indices of runs of `present` (sorted) allowing up to `tolerance`
    missing frames inside a run; runs start and end on present frames."""
    out: list[tuple[int, int]] = []
    start = prev = None
    for i in present:
        if start is None:
            start = prev = i
        elif i - prev - 1 <= tolerance:
            prev = i
        else:
            out.append((start, prev))
            start = prev = i
    if start is not None:
        out.append((start, prev))
    return out


def longest_face_segment(frames: list[np.ndarray], times: list[float], detector=None, embedder=None, *,
                         cfg: dict) -> dict:
    """The longest face-present segment of one identity (see module docstring); `cfg` is the
    recipe's `subjects.face_track` section (sim_threshold, gap_tolerance_share, min_face_px,
    max_faces_per_frame; MissingRecipeKey when one is absent)."""
    where = "subjects.face_track"
    sim_threshold = float(need(cfg, "sim_threshold", where))
    share = float(need(cfg, "gap_tolerance_share", where))
    min_face_px, max_faces = int(need(cfg, "min_face_px", where)), int(need(cfg, "max_faces_per_frame", where))
    if len(frames) != len(times):
        raise ValueError(f"{len(frames)} frames but {len(times)} times")
    n = len(frames)
    tol = math.ceil(share * n)    # face-less frames tolerated inside a segment (OpenS2V-Nexus step2)
    tracks = track_faces(frames, detector, embedder, sim_threshold=sim_threshold, min_face_px=min_face_px,
                         max_faces_per_frame=max_faces)
    best = None
    for t in tracks:
        present = set(t.frames)
        for a, b in segments(t.frames, tol):
            n_face = sum(1 for i in range(a, b + 1) if i in present)
            key = (float(times[b]) - float(times[a]), n_face, -a)
            if best is None or key > best[0]:
                best = (key, t.track_id, a, b, n_face)
    if best is None:
        return {"start_s": None, "end_s": None, "n_frames": 0, "n_face_frames": 0, "track_id": None,
                "n_tracks": 0, "start_index": None, "end_index": None}
    _, track_id, a, b, n_face = best
    return {"start_s": float(times[a]), "end_s": float(times[b]), "n_frames": b - a + 1, "n_face_frames": n_face,
            "track_id": track_id, "n_tracks": len(tracks), "start_index": a, "end_index": b}
