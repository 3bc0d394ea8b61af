"""Builders of a small export folder (the contract's layout) with real clips and crops.

Samples (sorted ids): s0 no reference; s1 one tall reference; s2 five references (the first
wide); s3 keep=false; s4 two references, a caption with a newline, a tab and U+2028, and a
25 fps / 40 frame clip (off the Wan preset); s5 whose clip file is missing.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from s2vforge.corpus.synth import load_photo, moving_shot, write_video
from s2vforge.schema import TableSpec, sample_schema

# the recipe block of the report (export.trainers), as the tests run it
TRAINERS_CFG = {
    "presets": {
        "wan": {"fps": 16, "frames": 81, "width": 832, "height": 480},
        "opensora": {"fps": 24, "frames": 129, "width": 256, "height": 256},
    },
    "videox-fun": {"preset": "wan", "max_refs": 4},
    "diffsynth": {"preset": "wan"},
    "finetrainers": {"preset": "wan", "reshape_mode": "bicubic"},
    "opensora": {"preset": "opensora"},
    "musubi": {"preset": "wan", "frame_extraction": "head", "batch_size": 1, "enable_bucket": True,
               "subject_images": True, "max_control_images": 3},
}

CLIP_SIZE = (160, 96)
NEWLINE_CAPTION = "A woman in a red coat\nwalks past\ta cafe.\u2028 She smiles."
NEWLINE_CAPTION_ONE_LINE = "A woman in a red coat walks past a cafe. She smiles."

# (photo, crop box x0, y0, x1, y1): the tall one and the wide one matter (letterbox tests)
CROPS = {
    "r_tall": ("astronaut", (180, 20, 330, 400)),     # 150 x 380
    "r_wide": ("rocket", (0, 300, 420, 380)),         # 420 x 80
    "r_cat": ("chelsea", (60, 20, 300, 280)),
    "r_cup": ("coffee", (150, 60, 450, 360)),
    "r_face": ("grace_hopper", (120, 40, 400, 360)),
    "r_bike": ("motorcycle_left", (20, 60, 300, 260)),
    "r_brick": ("brick", (0, 0, 200, 120)),
}


def cfg() -> dict:
    """The export section the writers are handed (a fresh copy per call)."""
    return {"trainers": copy.deepcopy(TRAINERS_CFG)}


def _write_reference(export: Path, sid: str, photo: str, box) -> None:
    """subjects/<id>.png (RGBA, elliptical alpha), .rgb.png (on white), .mask.png (0/255)."""
    rgb = load_photo(photo)[box[1]:box[3], box[0]:box[2]]
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2 <= 1.0
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    subjects = export / "subjects"
    subjects.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(subjects / f"{sid}.png")
    on_white = np.where(inside[..., None], rgb, 255).astype(np.uint8)
    Image.fromarray(on_white, "RGB").save(subjects / f"{sid}.rgb.png")
    Image.fromarray(alpha, "L").save(subjects / f"{sid}.mask.png")


def _ref(sid: str, kind: str = "cross_clip") -> dict:
    return {"subject_id": sid, "target_subject_id": sid, "kind": kind, "category": "object", "phrase": sid,
            "frame_idx": 0, "bbox": [0, 0, 10, 10], "frame_size": list(CLIP_SIZE),
            "rgba_path": f"subjects/{sid}.png", "rgb_path": f"subjects/{sid}.rgb.png",
            "mask_path": f"subjects/{sid}.mask.png", "similarity": 0.8, "pair_id": f"p-{sid}", "synthetic": False}


def _sample(sid: str, *, keep=True, caption="A person walks through the frame.", refs=(), fps=16.0, n=81) -> dict:
    return {"sample_id": sid, "clip_id": sid, "video_id": "v" + sid, "group_id": "g" + sid, "keep": keep,
            "drop_reasons": [] if keep else ["duplicate"], "split": "train" if keep else None,
            "clip_path": f"clips/{sid}.mp4", "fps": fps, "n_frames": n, "width": CLIP_SIZE[0],
            "height": CLIP_SIZE[1], "duration_s": n / fps, "recut": None, "caption": caption,
            "references": [_ref(r) for r in refs], "n_refs": len(refs), "ref_mode": "cross"}


SAMPLES = [
    _sample("s0"),
    _sample("s1", refs=["r_tall"]),
    _sample("s2", refs=["r_wide", "r_cat", "r_cup", "r_face", "r_bike"]),
    _sample("s3", keep=False, refs=["r_brick"]),
    _sample("s4", caption=NEWLINE_CAPTION, refs=["r_cup", "r_tall"], fps=25.0, n=40),
    _sample("s5", refs=["r_cat"]),                      # its clip file is never written
]
PHOTO_OF_CLIP = {"s0": "astronaut", "s1": "chelsea", "s2": "coffee", "s3": "rocket", "s4": "grace_hopper"}


def samples_table(rows=SAMPLES) -> pa.Table:
    return TableSpec(sample_schema([]), "sample_id").table(list(rows))


def build_export(export: Path) -> Path:
    export.mkdir(parents=True, exist_ok=True)
    (export / "clips").mkdir(exist_ok=True)
    for row in SAMPLES:
        sid = row["sample_id"]
        if sid in PHOTO_OF_CLIP:
            frames = moving_shot(load_photo(PHOTO_OF_CLIP[sid]), row["n_frames"] / row["fps"], row["fps"], CLIP_SIZE)
            n = write_video(export / row["clip_path"], frames, row["fps"], preset="ultrafast")
            assert n == row["n_frames"]
    for sid, (photo, box) in CROPS.items():
        _write_reference(export, sid, photo, box)
    pq.write_table(samples_table(), export / "samples.parquet")
    return export
