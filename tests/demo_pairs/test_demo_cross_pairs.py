"""Issue 14: the demo corpus yields kept cross pairs, and each is right by ground_truth.json.

The cast videos (corpus/synth.CAST_VIDEOS) show Grace Hopper in two shots of one video (living
subjects pair across clips of one group; a corpus folder's group_id is its video_id) and one
coffee cup in two videos (objects pair across videos). The truth says who is in every shot of
every video and, in the cast videos, the cut-out's box in every frame, so each subject row can be
named: the shot's identities whose kind fits the row's category and, where boxes are known,
whose box holds most of the row's box.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow      # demo build + curate + caption + subjects + pair: ~1 min on 2 cores

CROSS_KINDS = ("cross_clip", "cross_video")
MIN_INSIDE = 0.5                   # share of a subject's box inside the identity's box that names it


def inside_share(box, outer) -> float:
    """The share of `box`'s area that lies inside `outer` (both x0, y0, x1, y1)."""
    w = max(0.0, min(box[2], outer[2]) - max(box[0], outer[0]))
    h = max(0.0, min(box[3], outer[3]) - max(box[1], outer[1]))
    area = max(1e-9, (box[2] - box[0]) * (box[3] - box[1]))
    return w * h / area


def locate(demo: dict, subject: dict) -> tuple[str, int, int]:
    """(video name, shot index, frame in the video) of a subject row."""
    clip = demo["clips"][subject["clip_id"]]
    name = demo["videos"][clip["video_id"]]
    frame = clip["start_frame"] + int(subject["frame_idx"])
    shots = demo["truth"]["videos"][name]["shots"]
    k = next(i for i, s in enumerate(shots) if s["start_frame"] <= frame < s["end_frame"])
    return name, k, frame


def identities_of(demo: dict, subject: dict) -> set[str]:
    """Who the truth says this subject row shows (empty: nobody the truth knows of)."""
    truth = demo["truth"]
    name, k, frame = locate(demo, subject)
    shot = truth["videos"][name]["shots"][k]
    if shot["identities"] is None:             # unlabelled footage (bikes)
        return set()
    clip = demo["clips"][subject["clip_id"]]
    x0, y0 = clip["crop"][0], clip["crop"][1]  # subject boxes are in the (cropped) clip's pixels
    box = [subject["bbox"][0] + x0, subject["bbox"][1] + y0, subject["bbox"][2] + x0, subject["bbox"][3] + y0]
    found = set()
    for ident in shot["identities"]:
        if subject["category"] not in truth["identities"][ident]["categories"]:
            continue
        placed = [s for s in shot.get("subjects") or [] if s["identity"] == ident]
        if placed:
            where = placed[0]["boxes"][frame - shot["start_frame"]]
            if where is None or inside_share(box, where) < MIN_INSIDE:
                continue
        found.add(ident)
    return found


def pair_identities(demo: dict, pair: dict) -> tuple[set[str], list[set[str]]]:
    subs = demo["subjects"]
    return (identities_of(demo, subs[pair["target_subject_id"]]),
            [identities_of(demo, subs[r]) for r in pair["reference_subject_ids"]])


def pair_is_one_identity(demo: dict, pair: dict) -> bool:
    target, refs = pair_identities(demo, pair)
    return bool(refs) and all(target & r for r in refs)


def kept_cross(demo: dict) -> list[dict]:
    return [p for p in demo["pairs"] if p["keep"] and p["kind"] in CROSS_KINDS]


def test_truth_names_the_cast_subjects(demo_pairs):
    """The checker itself: kept rows in the cast shots are named by their cut-out; a row moved off
    the cut-out, or of a category the identity cannot be, is nobody's."""
    named: dict[tuple, list[set]] = {}
    for s in demo_pairs["subjects"].values():
        name, k, _ = locate(demo_pairs, s) if s["keep"] else (None, None, None)
        if name in ("interview", "still_life"):
            named.setdefault((name, k, s["category"]), []).append(identities_of(demo_pairs, s))
    for where, who in ((("interview", 0, "face"), "hopper"), (("interview", 1, "face"), "hopper"),
                       (("interview", 2, "object"), "coffee_cup"), (("still_life", 0, "object"), "coffee_cup")):
        assert named.get(where) and all(n == {who} for n in named[where]), (where, named.get(where))
    face = next(s for s in demo_pairs["subjects"].values()
                if s["keep"] and s["category"] == "face" and locate(demo_pairs, s)[:2] == ("interview", 0))
    assert identities_of(demo_pairs, {**face, "bbox": [0, 0, 30, 30]}) == set()        # off the cut-out
    assert identities_of(demo_pairs, {**face, "category": "object"}) == set()          # a person is no object
    cup = next(s for s in demo_pairs["subjects"].values()
               if s["keep"] and s["category"] == "object" and locate(demo_pairs, s)[:2] == ("still_life", 0))
    wrong = {"target_subject_id": face["subject_id"], "reference_subject_ids": [cup["subject_id"]]}
    assert not pair_is_one_identity(demo_pairs, wrong)


@pytest.mark.parametrize("kind, identity", [("cross_clip", "hopper"), ("cross_video", "coffee_cup")])
def test_expected_cross_pair_is_kept_and_right(demo_pairs, kind, identity):
    """Hopper's two interview shots pair cross_clip, the two cups cross_video: kept, between the
    shots the truth names, with the target and every reference showing that identity."""
    (expected,) = [e for e in demo_pairs["truth"]["expected_cross_pairs"]
                   if e["kind"] == kind and e["identity"] == identity]
    shots = {(b["video"], b["shot"]) for b in expected["between"]}
    found = []
    for p in kept_cross(demo_pairs):
        if p["kind"] != kind or p["category"] not in expected["categories"]:
            continue
        ends = [demo_pairs["subjects"][p["target_subject_id"]]] + [demo_pairs["subjects"][r]
                                                                   for r in p["reference_subject_ids"]]
        target, refs = pair_identities(demo_pairs, p)
        if {locate(demo_pairs, s)[:2] for s in ends} == shots and target == {identity} \
                and all(r == {identity} for r in refs):
            found.append(p)
    assert found, [(p["kind"], p["category"], p["target_subject_id"], p["reference_subject_ids"])
                   for p in kept_cross(demo_pairs)]
    assert all(p["reference_source"] == "subject" and p["similarity"] is not None for p in found)


def test_every_kept_cross_pair_is_one_identity(demo_pairs):
    """No kept cross pair joins two different identities, nor anything the truth cannot name."""
    pairs = kept_cross(demo_pairs)
    assert {p["kind"] for p in pairs} == set(CROSS_KINDS)
    wrong = [(p["kind"], p["category"], p["target_subject_id"], *pair_identities(demo_pairs, p))
             for p in pairs if not pair_is_one_identity(demo_pairs, p)]
    assert not wrong, wrong
