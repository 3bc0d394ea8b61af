"""Stage 2 of `pair`: subject instances and in-clip identity tracks.

An `Instance` is one kept subject row with its embeddings. Within a clip, instances of one
category on different frames whose identity cosine reaches `in_clip_threshold.<category>` or
whose boxes overlap (`in_clip_box_iou`) are one identity, a `Track`; its best instance
(detector score, sharpness, then closeness to the middle frame) is the target of a pairs row.

`attach_face_rows` gives a person instance the face vector of the face row found in the same
clip and frame inside its box (embed.PERSON_FACE_SOURCE says why).

Thresholds come from the recipe's `pairs` section (in_clip_threshold, in_clip_box_iou,
embed.person.face_row_inside_share; values and sources in recipes/openhumanvid.yaml).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from ...backends import boxes
from ..recipe_keys import need


@dataclass
class Instance:
    subject_id: str
    clip_id: str
    video_id: str | None
    group_id: str | None
    category: str
    phrase: str | None
    frame_idx: int | None
    bbox: list[int] | None
    det_score: float
    quality: float
    crop_path: str | None
    vector: np.ndarray | None
    context: np.ndarray | None
    track: int = -1
    face_subject_id: str | None = None      # the face row whose vector is this person's face part


@dataclass
class Track:
    clip_id: str
    category: str
    members: list[Instance] = field(default_factory=list)

    @property
    def target(self) -> Instance:
        return self.members[0]


def box_iou(a, b) -> float:
    """backends.boxes.box_iou; 0 when either instance has no box."""
    return 0.0 if a is None or b is None else boxes.box_iou(a, b)


def quality_score(row: dict) -> float:
    """Higher is better: the detector score, nudged by crop sharpness when the subjects stage measured it."""
    q = 0.0
    try:
        qd = json.loads(row["quality"]) if row.get("quality") else {}
        s = qd.get("sharpness")
        if isinstance(s, (int, float)) and math.isfinite(s):
            q = min(1.0, float(s) / 1000.0) * 0.1
    except ValueError:
        pass
    return float(row.get("det_score") or 0.0) + q


def build_tracks(instances: list[Instance], cfg: dict) -> list[Track]:
    """Group one clip's instances of one identity (see module doc); target = best quality, ties
    broken by closeness to the clip's middle frame, then subject_id."""
    thr = need(cfg, "in_clip_threshold", "pairs")
    iou_thr = float(need(cfg, "in_clip_box_iou", "pairs"))
    by_key: dict[tuple[str, str], list[Instance]] = {}
    for inst in instances:
        by_key.setdefault((inst.clip_id, inst.category), []).append(inst)
    tracks: list[Track] = []
    for (clip_id, cat), insts in sorted(by_key.items()):
        insts = sorted(insts, key=lambda i: i.subject_id)
        parent = list(range(len(insts)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i
        for i in range(len(insts)):
            for j in range(i + 1, len(insts)):
                a, b = insts[i], insts[j]
                if a.frame_idx == b.frame_idx:
                    continue    # two boxes on one frame are two subjects
                same = box_iou(a.bbox, b.bbox) >= iou_thr
                if not same and a.vector is not None and b.vector is not None:
                    same = float(a.vector @ b.vector) >= float(need(thr, cat, "pairs.in_clip_threshold"))
                if same:
                    parent[find(i)] = find(j)
        groups: dict[int, list[Instance]] = {}
        for i, inst in enumerate(insts):
            groups.setdefault(find(i), []).append(inst)
        frames = [i.frame_idx for i in insts if i.frame_idx is not None]
        mid = (min(frames) + max(frames)) / 2 if frames else 0
        for members in groups.values():
            members.sort(key=lambda i: (i.vector is None, -round(i.quality, 3),
                                        abs((i.frame_idx or 0) - mid), i.subject_id))
            tracks.append(Track(clip_id, cat, members))
    tracks.sort(key=lambda t: t.target.subject_id)
    for k, t in enumerate(tracks):
        for m in t.members:
            m.track = k
    return tracks



def _inside_share(inner, outer) -> float:
    """Share of box `inner`'s area that lies inside box `outer`."""
    if inner is None or outer is None:
        return 0.0
    ix = max(0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    iy = max(0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return ix * iy / area if area > 0 else 0.0


def attach_face_rows(instances: list[Instance], person_embedder, cfg: dict) -> int:
    """Replace the face part of each person vector by the vector of the face instance of the same
    clip and frame whose box lies inside the person box (the largest such face); returns how many
    persons got one. A person without such a face keeps its own (re-detected or empty) face part,
    so verification falls back to appearance when a side has no face.

    "Inside": at least `pairs.embed.person.face_row_inside_share` of the face box's area (`cfg` is
    the pairs section; the subjects stage's face boxes are tight, person boxes loose)."""
    from .embed import compose_person
    inside_share = float(need(need(need(cfg, "embed", "pairs"), "person", "pairs.embed"), "face_row_inside_share",
                              "pairs.embed.person"))
    faces: dict[tuple[str, int | None], list[Instance]] = {}
    for i in instances:
        if i.category == "face" and i.vector is not None and i.bbox:
            faces.setdefault((i.clip_id, i.frame_idx), []).append(i)
    n = 0
    for p in instances:
        if p.category != "person" or p.vector is None or not p.bbox:
            continue
        inside = [f for f in faces.get((p.clip_id, p.frame_idx), ()) if _inside_share(f.bbox, p.bbox) >= inside_share]
        if not inside:
            continue
        best = max(inside, key=lambda f: ((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]), f.subject_id))
        v = compose_person(person_embedder, p.vector, best.vector)
        if v is not None:
            p.vector, p.face_subject_id = v, best.subject_id
            n += 1
    return n
