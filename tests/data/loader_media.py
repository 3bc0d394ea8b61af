"""Fixture media for the loader tests: clips whose frames carry their own index, RGBA crops cut
from those clips, an export folder (samples.parquet in sample_schema) and WebDataset shards.

Every frame of a `barcode clip` has its decode index written as 8 black/white blocks across its
top band, so the index of any frame a loader returns can be read back from its pixels, with no
decoder in the loop.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from s2vforge.corpus.synth import load_photo, moving_shot
from s2vforge.schema import clip_id_for, sample_schema, table_from_rows
from s2vforge.stages.subjects.rle import mask_to_rle

# The export section the tests run with (the recipe block of docs/loader.md, small frames).
EXPORT_CFG = {
    "refs": {"mode": "both", "max_refs": 4, "min_refs": 0, "categories": ["face", "person", "animal", "object"],
             "duplicate_mask_iou": 0.9},
    "caption": {"text": "long", "require": False},
    "loader": {"num_frames": 4, "stride": 3, "size": [64, 96], "buckets": None, "sampling": "center",
               "short": "shrink_stride", "refs": "any", "ref_size": [32, 32], "max_refs": 4, "normalize": None,
               "seed": 0, "decode_threads": 1, "shuffle_buffer": 0},
}

A = clip_id_for("vaaaaaaaaaaaaaaaa", 0, 60)
B = clip_id_for("vbbbbbbbbbbbbbbbb", 0, 40)
C = clip_id_for("vcccccccccccccccc", 0, 8)
D = clip_id_for("vdddddddddddddddd", 0, 30)
E = clip_id_for("veeeeeeeeeeeeeeee", 0, 30)
BANDS = clip_id_for("vffffffffffffffff", 0, 12)
PATCH_RGB = (200, 100, 30)

BITS = 8
BAND = 12          # rows of the barcode band


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 25, gop: int = 12) -> Path:
    """H.264 yuv420p MP4 with a keyframe every `gop` frames (so seeks have somewhere to land)."""
    from s2vforge.corpus.synth import write_video
    write_video(path, frames, fps, crf=16, gop=gop)
    return path


def stamp_index(frame: np.ndarray, index: int) -> np.ndarray:
    out = frame.copy()
    w = out.shape[1]
    bw = w // BITS
    for b in range(BITS):
        out[:BAND, b * bw:(b + 1) * bw] = 255 if (index >> b) & 1 else 0
    return out


def read_index(frame: np.ndarray, width: int | None = None) -> int:
    """The index stamped on a frame of native size (or of `width` when scaled horizontally only)."""
    w = frame.shape[1] if width is None else width
    bw = w // BITS
    v = 0
    for b in range(BITS):
        block = frame[2:BAND - 2, b * bw + 2:(b + 1) * bw - 2]
        if block.mean() > 128:
            v |= 1 << b
    return v


def barcode_frames(photo: str, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    shot = list(moving_shot(load_photo(photo), n / 25.0, 25, size=size, motion="pan"))[:n]
    return [stamp_index(f, i) for i, f in enumerate(shot)]


def band_frames(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Three vertical colour bands (red | green | blue) over the width, for crop geometry."""
    w, h = size
    f = np.zeros((h, w, 3), dtype=np.uint8)
    f[:, : w // 3] = (230, 20, 20)
    f[:, w // 3: 2 * w // 3] = (20, 230, 20)
    f[:, 2 * w // 3:] = (20, 20, 230)
    return [f] * n


def ellipse_mask(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy, rx, ry = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


def rgba_crop(frame: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    rgba = np.zeros((y1 - y0, x1 - x0, 4), dtype=np.uint8)
    rgba[..., :3] = frame[y0:y1, x0:x1]
    rgba[..., 3] = np.where(mask[y0:y1, x0:x1], 255, 0)
    return rgba


def save_png(path: Path, rgba: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, mode="RGBA").save(path, format="PNG")


def reference(subject_id: str, kind: str, source_clip: str, frame_idx: int, box, frame_hw, mask,
              phrase: str, similarity: float | None = None, rgba_path: str | None = None) -> dict:
    h, w = frame_hw
    return {"subject_id": subject_id, "target_subject_id": subject_id, "kind": kind,
            "source_clip_id": source_clip, "source_video_id": source_clip.split("-")[0],
            "category": "face" if phrase != "cup" else "object", "phrase": phrase, "frame_idx": frame_idx,
            "bbox": list(box), "frame_size": [w, h], "mask_rle": json.dumps(mask_to_rle(mask)),
            "rgba_path": rgba_path or f"subjects/{subject_id}.png", "rgb_path": None, "mask_path": None,
            "similarity": similarity, "pair_id": None, "det_score": 0.9, "synthetic": False}


def sample_row(clip_id: str, n_frames: int, size: tuple[int, int], refs: list[dict], split: str | None,
               keep: bool = True, caption: str = "", background_tags: list[str] | None = None) -> dict:
    w, h = size
    return {"sample_id": clip_id, "clip_id": clip_id, "video_id": clip_id.split("-")[0], "group_id": None,
            "keep": keep, "drop_reasons": [] if keep else ["duplicate"], "split": split if keep else None,
            "clip_path": f"clips/{clip_id}.mp4", "fps": 25.0, "n_frames": n_frames, "width": w, "height": h,
            "caption": caption, "caption_long": caption, "background_tags": background_tags or [],
            "subject_tags": [], "object_tags": [], "ref_mode": "both", "references": refs, "n_refs": len(refs),
            "score_aesthetic": 5.0}


def write_samples(root: Path, rows: list[dict]) -> Path:
    import pyarrow.parquet as pq
    table = table_from_rows(sorted(rows, key=lambda r: r["sample_id"]), sample_schema(["score_aesthetic"]))
    pq.write_table(table, root / "samples.parquet")
    return root / "samples.parquet"


def write_shard(path: Path, root: Path, rows: list[dict]) -> int:
    """A WebDataset-layout tar of export rows: {key}.mp4/.json/.txt/.ref{i}.png, fixed metadata; the
    JSON without mask_rle and machine-local paths, as the export's webdataset writer has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for row in rows:
            key = row["sample_id"]
            record = {k: v for k, v in row.items() if k not in ("source_clip_path", "source_video_path")}
            record["references"] = [{k: v for k, v in r.items() if k != "mask_rle"} for r in row["references"]]
            members = [(f"{key}.mp4", (root / row["clip_path"]).read_bytes()),
                       (f"{key}.json", json.dumps(record, sort_keys=True).encode("utf-8")),
                       (f"{key}.txt", (row.get("caption") or "").encode("utf-8"))]
            for i, ref in enumerate(row.get("references") or []):
                p = root / ref["rgba_path"]
                if p.is_file():
                    members.append((f"{key}.ref{i}.png", p.read_bytes()))
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
                tf.addfile(info, io.BytesIO(data))
            n += 1
    return n
