"""A small OpenS2V-5M style file set written by hand to the published schema, with known truth.

Layout and keys follow docs/opens2v-format.md (OpenS2V-Nexus step5-2 records, step6-2 pair
records): a Jsons/mask_and_bbox/total_part7.json of five records (two clips of cluster
"clusterA" annotated on different source frames, one whose video is missing, one broken record
that does not parse, one without the required keys), a cluster pair file with one resolvable
pair and one that names a subject no clip has, and cluster_videos.json. The videos are real
(Ken Burns shots of scikit-image photos, s2vforge.corpus.synth).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2vforge.corpus.synth import load_photo, moving_shot, write_video
from s2vforge.stages.subjects.rle import mask_to_rle

PART = "total_part7"
FPS = 12.0
KEY1 = "clusterA_part1_step1-0-24_step2-2-20_step4_step5_step6"
KEY2 = "clusterA_part2_step1-0-24_step2-0-24_step4_step5_step6"
KEY_MISSING = "clusterB_part1_step1-0-24_step2-0-24_step4_step5_step6"
KEY_BROKEN = "clusterC_part1_step1-0-24_step2-0-24_step4_step5_step6"
KEY_NO_CROP = "clusterD_part1_step1-0-24_step2-0-24_step4_step5_step6"
BROKEN_TEXT = '{"metadata": {"path": "clusterC_part1.mp4" "cut": [0, 24]}, "word_tags": {"subject": ["man"]}}'


def ellipse(h: int, w: int, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0


def rect(h: int, w: int, box) -> np.ndarray:
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    m[y0:y1, x0:x1] = True
    return m


@dataclass
class Published:
    root: Path
    videos: Path
    records_file: Path
    pairs_file: Path
    clusters_file: Path
    records: dict                          # key -> the record as written (the parsable ones)
    masks: dict = field(default_factory=dict)   # (key, class_name) -> bool mask (clip-frame pixels)
    text: str = ""

    def offset_of(self, key: str) -> int:
        """Character offset of the value of `key` in the records file."""
        i = self.text.index(json.dumps(key) + ": ")
        return i + len(json.dumps(key)) + 2


def _annotation(frame: int, h: int, w: int, objects, masks: dict, key: str) -> dict:
    anns, mask_map, mann = [], {}, {}
    for i, (name, box, shape, gme, aes) in enumerate(objects, 1):
        m = shape(h, w, box)
        masks[(key, name)] = m
        anns.append({"class_name": name, "bbox": [float(v) for v in box], "gme_score": gme, "aes_score": aes})
        mask_map[str(i)] = {"class_name": name}
        mann[str(i)] = {**mask_to_rle(m), "score": [0.9921875 - 0.01 * i]}
    return {"ann_frame_data": {"ann_frame_idx": frame, "annotations": anns, "box_format": "xyxy",
                               "img_width": w, "img_height": h, "foreground_ase_score": 4.9773945808410645,
                               "background_ase_score": 4.653539657592773},
            "mask_map": mask_map, "mask_annotation": {str(frame): mann}}


def _metadata(path: str, cut, face_cut, crop, tech, motion, aes, cap, face_cap) -> dict:
    w, h = crop[1] - crop[0], crop[3] - crop[2]
    return {"cut": cut, "crop": crop, "tech": tech, "motion": motion, "fps": FPS, "num_frames": face_cut[1] - face_cut[0],
            "resolution": {"height": h, "width": w}, "cap": [cap], "path": path, "aesthetic": aes,
            "face_cut": face_cut, "face_cap_qwen": face_cap}


def write_published(root: Path) -> Published:
    root = Path(root)
    videos = root / "Videos"
    (videos / PART).mkdir(parents=True)
    write_video(videos / PART / "clusterA_part1.mp4", moving_shot(load_photo("astronaut"), 2.0, FPS, (160, 120)), FPS)
    write_video(videos / "clusterA_part2.mp4", moving_shot(load_photo("coffee"), 2.0, FPS, (160, 120),
                                                           motion="zoom"), FPS)
    masks: dict = {}
    tags1 = {"background": ["grass"], "subject": ["woman"], "object": ["red cup"], "pre_define": ["person", "human head"]}
    rec1 = {"metadata": _metadata("clusterA_part1.mp4", [0, 24], [2, 20], [16, 144, 8, 104], 2.082, 0.01223986130207777,
                                  5.070407867431641, "An astronaut poses.",
                                  "A woman in a white suit smiles. She holds a red cup.\n\nThe camera pans slowly."),
            "word_tags": tags1,
            "annotation": _annotation(2, 96, 128, [("woman", [20.4, 10.7, 70.2, 90.0], ellipse, 0.48, 4.99),
                                                   ("red cup", [80.0, 50.5, 120.9, 88.2], rect, 0.40625, 4.2),
                                                   ("grass", [0.0, 60.0, 128.0, 96.0], rect, 0.30, 4.78)],
                                      masks, KEY1)}
    tags2 = {"background": [], "subject": ["woman", "person"], "object": [], "pre_define": ["person", "human head"]}
    rec2 = {"metadata": _metadata("clusterA_part2.mp4", [0, 24], [0, 24], [0, 160, 0, 120], 1.5, 0.25, 4.5,
                                  "Coffee on a table.", "A woman drinks coffee at a table."),
            "word_tags": tags2,
            "annotation": _annotation(5, 120, 160, [("woman", [30.0, 20.0, 90.0, 110.0], ellipse, 0.61, 5.2),
                                                    ("person", [100.2, 15.0, 150.0, 115.5], rect, 0.33, 3.9)],
                                      masks, KEY2)}
    rec_missing = {"metadata": _metadata("clusterB_part1.mp4", [0, 24], [0, 24], [0, 160, 0, 120], 1.0, 0.1, 4.0,
                                         "Gone.", "A man walks away."),
                   "word_tags": {"background": [], "subject": ["man"], "object": [], "pre_define": ["person"]},
                   "annotation": _annotation(0, 120, 160, [("man", [10.0, 10.0, 50.0, 100.0], rect, 0.5, 4.0)],
                                             masks, KEY_MISSING)}
    rec_no_crop = {"metadata": {"path": "clusterD_part1.mp4", "cut": [0, 24], "fps": FPS}}
    parts = [(KEY1, json.dumps(rec1, indent=4)), (KEY2, json.dumps(rec2, indent=4)),
             (KEY_BROKEN, BROKEN_TEXT), (KEY_MISSING, json.dumps(rec_missing, indent=4)),
             (KEY_NO_CROP, json.dumps(rec_no_crop, indent=4))]
    text = "{\n" + ",\n".join(f"    {json.dumps(k)}: " + v.replace("\n", "\n    ") for k, v in parts) + "\n}"
    records_file = root / "Jsons" / "mask_and_bbox" / f"{PART}.json"
    records_file.parent.mkdir(parents=True)
    records_file.write_text(text)
    pairs_dir = root / "Jsons" / "cross_video_pairs"
    pairs_dir.mkdir(parents=True)
    pair = {"cur_id": f"{PART}/{KEY1}", "aft_id": f"{PART}/{KEY2}", "cur_class_name": "woman",
            "aft_class_name": "woman", "text_similarity": 0.99951171875, "image_similarity": 0.87109375,
            "cur_frame_idx": 2, "aft_frame_idx": 5}
    dangling = {**pair, "aft_class_name": "dog", "image_similarity": 0.7}
    pairs_file = pairs_dir / "clusterA.json"
    pairs_file.write_text(json.dumps([pair, dangling], indent=2))
    clusters_file = pairs_dir / "cluster_videos.json"
    clusters_file.write_text(json.dumps({"clusterA": [f"{PART}/{KEY1}", f"{PART}/{KEY2}"]}, indent=4))
    return Published(root, videos, records_file, pairs_file, clusters_file,
                     {KEY1: rec1, KEY2: rec2, KEY_MISSING: rec_missing, KEY_NO_CROP: rec_no_crop}, masks, text)
