"""A small export folder with known content for the format writers (webdataset, lance, hf).

Seven samples over two splits: real short clips (moving shots of packaged photos), RGBA crops
with an elliptical alpha mask (+ the .rgb.png / .mask.png the export writes), one sample with
0 references, one with 3, one with a two-line caption and a NaN score, and one keep=false
sample whose files do not exist (a writer that packs it fails).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from s2vforge.corpus.synth import load_photo, moving_shot, write_video
from s2vforge.schema import sample_schema, table_from_rows

SCORES = ["score_aesthetic", "score_motion"]
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "grace_hopper", "motorcycle_left", "camera"]
# name -> (split, keep, photo index of each reference's source, caption)
PLAN = {
    "a": ("train", True, [0], "An astronaut in a white suit."),
    "b": ("train", True, [1, 2, 3], "A cup of coffee beside a cat and a rocket."),
    "c": ("train", True, [], "A street with no subject."),
    "d": ("val", True, [3], "A rocket on its launch pad."),
    "e": ("val", True, [4, 0], "A woman in uniform and an astronaut."),
    "f": ("train", False, [5], "A duplicate clip."),
    "g": ("train", True, [6], "A man with a camera\non a lawn."),
}


def png(arr: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def rgba_crop(photo: np.ndarray, seed: int) -> np.ndarray:
    """A 40x48 crop of the photo with an elliptical alpha (the mask) of varying size."""
    im = Image.fromarray(photo).resize((40 + seed, 48), Image.BILINEAR)
    rgb = np.asarray(im)
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    inside = ((xx - w / 2) / (w * (0.3 + 0.02 * seed))) ** 2 + ((yy - h / 2) / (h * 0.4)) ** 2 <= 1
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    return np.dstack([rgb, alpha])


def video_id(i: int) -> str:
    return "v" + f"{0x843952ccf40f30f5 + i:016x}"


def build_export(root: Path) -> Path:
    """Write the export folder (clips/, subjects/, samples.parquet) under root; returns it."""
    export = Path(root)
    (export / "clips").mkdir(parents=True, exist_ok=True)
    (export / "subjects").mkdir(exist_ok=True)
    photos = [load_photo(p) for p in PHOTOS]
    rows = []
    for i, (name, (split, keep, ref_photos, caption)) in enumerate(PLAN.items()):
        vid = video_id(i)
        clip_id = f"{vid}-{125 * i:07d}-{125 * i + 6:07d}"
        clip_path = f"clips/{clip_id}.mp4"
        if keep:
            write_video(export / clip_path, moving_shot(photos[i], seconds=0.6, fps=10.0, size=(96, 64)), fps=10.0)
        refs = []
        for j, p in enumerate(ref_photos):
            sid = f"{clip_id}-f{j:06d}-object-{i:02d}{j:02d}abcd"
            kind = "self" if j == 0 else ("cross_clip" if j == 1 else "cross_video")
            if keep:
                rgba = rgba_crop(photos[p], seed=i + j)
                (export / f"subjects/{sid}.png").write_bytes(png(rgba, "RGBA"))
                (export / f"subjects/{sid}.rgb.png").write_bytes(png(rgba[..., :3], "RGB"))
                (export / f"subjects/{sid}.mask.png").write_bytes(png(rgba[..., 3], "L"))
            refs.append({
                "subject_id": sid, "target_subject_id": sid, "kind": kind, "source_clip_id": clip_id,
                "source_video_id": vid, "category": "object", "phrase": PHOTOS[p], "frame_idx": j,
                "bbox": [2, 3, 42 + i + j, 51], "frame_size": [96, 64],
                "mask_rle": '{"size": [64, 96], "counts": "0"}',
                "rgba_path": f"subjects/{sid}.png", "rgb_path": f"subjects/{sid}.rgb.png",
                "mask_path": f"subjects/{sid}.mask.png", "similarity": None if j == 0 else 0.9 - 0.1 * j,
                "pair_id": None if j == 0 else f"p-{i:02d}{j:02d}", "det_score": 0.5 + 0.05 * j, "synthetic": False,
            })
        rows.append({
            "sample_id": clip_id, "clip_id": clip_id, "video_id": vid, "group_id": vid, "keep": keep,
            "drop_reasons": [] if keep else ["duplicate_of:" + rows[0]["sample_id"]],
            "split": split if keep else None, "split_group": "g:" + vid,
            "duplicate_of": None if keep else rows[0]["sample_id"],
            "clip_path": clip_path, "source_clip_path": f"/abs/dataset/{clip_path}",
            "source_video_path": f"/abs/videos/{name}.mp4", "fps": 10.0, "n_frames": 6, "width": 96,
            "height": 64, "duration_s": 0.6, "start_s": 12.5 * i, "end_s": 12.5 * i + 0.6,
            "start_frame": 125 * i, "end_frame": 125 * i + 6, "crop": [0, 0, 96, 64], "recut": None,
            "caption": caption, "caption_short": caption.split(".")[0], "caption_long": caption,
            "caption_structured": {"subjects": PHOTOS[i], "appearance": None, "action": None,
                                   "face_motion": None, "environment": "outdoors", "camera": "pan"},
            "subject_tags": [], "object_tags": [PHOTOS[p] for p in ref_photos], "background_tags": ["sky"],
            "captioner": "facts", "ref_mode": "both", "references": refs, "n_refs": len(refs),
            "score_aesthetic": float("nan") if name == "g" else 4.0 + 0.25 * i, "score_motion": 1.5 * i,
        })
    rows.sort(key=lambda r: r["sample_id"])
    pq.write_table(table_from_rows(rows, sample_schema(SCORES)), export / "samples.parquet")
    return export


def samples_table(export: Path):
    return pq.read_table(Path(export) / "samples.parquet")


def kept_rows(export: Path) -> list[dict]:
    return sorted((r for r in samples_table(export).to_pylist() if r["keep"]), key=lambda r: r["sample_id"])
