"""A small dataset of real photos composited into short clips, with its subjects table.

Identities (all from packaged photos, see corpus/synth.packaged_media):
- the astronaut's face (Eileen Collins) in clips A1, A2 (video vA, group gA, different
  backgrounds, the second mirrored and rescaled) and in B1 (video vB, another group);
- Grace Hopper's face in G1 only (its own group): no cross-clip partner;
- the coffee cup photo in A1 (video vA), A2 (video vA again) and O1 (video vO).

Each clip is 12 frames; subjects sit on frames 1, 6 and 10 (Phantom-Data's 0.05/0.5/0.95 of the
clip). Face boxes come from dlib run on the composited frame; crops are RGBA PNGs (alpha = box),
written as the subjects stage writes them. Building takes ~2 s.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from s2vforge.corpus.synth import load_photo, packaged_media, read_frames, write_video

W, H = 640, 360
N_FRAMES = 12
FRAMES = (1, 6, 10)
FPS = 25.0


def _backgrounds() -> dict[str, np.ndarray]:
    media = packaged_media()
    out = {}
    for name in ("rocket", "brick", "grass", "camera"):
        if name in media:
            out[name] = cv2.resize(load_photo(name), (W, H), interpolation=cv2.INTER_AREA)
    bikes = read_frames(media["bikes"], max_frames=31)[30]
    out["bikes"] = cv2.resize(bikes, (W, H), interpolation=cv2.INTER_AREA)
    return out


def _portrait(name: str) -> np.ndarray:
    img = load_photo(name)
    if name == "astronaut":
        img = img[0:300, 100:380]        # head and shoulders
    else:
        img = img[0:420, 60:460]
    return img


def _paste(bg: np.ndarray, img: np.ndarray, x: int, y: int, scale: float, flip: bool = False,
           gain: float = 1.0) -> tuple[np.ndarray, list[int]]:
    im = cv2.resize(img, (max(8, round(img.shape[1] * scale)), max(8, round(img.shape[0] * scale))),
                    interpolation=cv2.INTER_AREA)
    if flip:
        im = im[:, ::-1]
    im = np.clip(im.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    h, w = im.shape[:2]
    out = bg.copy()
    out[y:y + h, x:x + w] = im
    return out, [x, y, x + w, y + h]


# clip_id -> (video_id, group_id, background, [(identity, photo, x, y, scale, flip, gain)])
LAYOUT = {
    "A1": ("vA", "gA", "bikes", [("astro", "astronaut", 20, 20, 1.0, False, 1.0),
                                 ("cup", "coffee", 380, 150, 0.40, False, 1.0)]),
    "A2": ("vA", "gA", "rocket", [("astro", "astronaut", 330, 40, 0.95, True, 0.9),
                                  ("cup", "coffee", 20, 170, 0.36, False, 0.92)]),
    "B1": ("vB", "gB", "brick", [("astro", "astronaut", 200, 30, 1.05, False, 1.1)]),
    "G1": ("vG", "gG", "grass", [("grace", "grace_hopper", 180, 10, 0.8, False, 1.0)]),
    "O1": ("vO", "gO", "camera", [("cup", "coffee", 150, 60, 0.55, True, 1.05)]),
}


_DLIB: list = []


def _face_box(rgb: np.ndarray, region: list[int]) -> list[int] | None:
    from s2vforge.backends.face import DlibFaces
    if not _DLIB:
        _DLIB.append(DlibFaces())
    x0, y0, x1, y1 = region
    faces = _DLIB[0].detect(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    if not faces:
        return None
    f = max(faces, key=lambda f: f.area)
    fx0, fy0, fx1, fy1 = (int(v) for v in f.bbox)
    mx, my = (fx1 - fx0) // 4, (fy1 - fy0) // 3
    return [max(0, x0 + fx0 - mx), max(0, y0 + fy0 - my), min(W, x0 + fx1 + mx), min(H, y0 + fy1 + my)]


def build_dataset(root: Path) -> Path:
    """Write the dataset described in the module doc under root/ds; returns its path."""
    from s2vforge.schema import VIDEO_SCHEMA, clip_schema, table_from_rows
    from s2vforge.engine.writer import write_bytes
    from s2vforge.stages.subjects.pipeline import SUBJECT_SCHEMA, png_bytes, subject_id_for
    from s2vforge.stages.subjects.rle import mask_to_rle

    ds = root / "ds"
    (ds / "clips").mkdir(parents=True)
    (ds / "subjects").mkdir()
    bgs = _backgrounds()
    photos = {n: (_portrait(n) if n in ("astronaut", "grace_hopper") else load_photo(n))
              for n in ("astronaut", "grace_hopper", "coffee")}
    videos, clips, subjects = {}, [], []
    for clip_id, (video_id, group_id, bg_name, items) in LAYOUT.items():
        frame = bgs[bg_name]
        placed = []
        for ident, photo, x, y, scale, flip, gain in items:
            frame, box = _paste(frame, photos[photo], x, y, scale, flip, gain)
            placed.append((ident, photo, box))
        # a little camera drift so the frames are not identical
        frames = [np.roll(frame, k // 3, axis=1) for k in range(N_FRAMES)]
        write_video(ds / "clips" / f"{clip_id}.mp4", frames, FPS, preset="ultrafast")
        videos[video_id] = {"video_id": video_id, "path": f"/src/{video_id}.mp4", "status": "ok", "duration_s": 1.0,
                            "fps": FPS, "width": W, "height": H, "group_id": group_id}
        clips.append({"clip_id": clip_id, "video_id": video_id, "group_id": group_id, "start_s": 0.0,
                      "end_s": N_FRAMES / FPS, "duration_s": N_FRAMES / FPS, "start_frame": 0, "end_frame": N_FRAMES,
                      "crop": [0, 0, W, H], "path": f"clips/{clip_id}.mp4", "keep": True, "reject_reasons": []})
        for fi in FRAMES:
            rgb = frames[fi]
            for ident, photo, box in placed:
                shift = fi // 3
                b = [min(W, box[0] + shift), box[1], min(W, box[2] + shift), box[3]]
                if photo in ("astronaut", "grace_hopper"):
                    fb = _face_box(rgb, b)
                    assert fb is not None, f"dlib found no face for {ident} in {clip_id} frame {fi}"
                    b, cat, phrase = fb, "face", "face"
                else:
                    cat, phrase = "object", "cup of coffee"
                mask = np.zeros((H, W), bool)
                mask[b[1]:b[3], b[0]:b[2]] = True
                sid = subject_id_for(clip_id, fi, cat, b, phrase)
                rgba = np.dstack([rgb[b[1]:b[3], b[0]:b[2]], np.full((b[3] - b[1], b[2] - b[0]), 255, np.uint8)])
                write_bytes(ds / "subjects" / f"{sid}.png", png_bytes(rgba))
                subjects.append({"subject_id": sid, "clip_id": clip_id, "video_id": video_id, "group_id": group_id,
                                 "frame_idx": fi, "time_s": fi / FPS, "phrase": phrase, "category": cat, "bbox": b,
                                 "mask_rle": json.dumps(mask_to_rle(mask), sort_keys=True),
                                 "crop_path": f"subjects/{sid}.png", "det_score": 0.9 - 0.01 * abs(fi - 6),
                                 "backend": "test", "quality": json.dumps({"sharpness": 100.0}), "checks": [],
                                 "keep": True, "caption_verdicts": [], "caption_phrases": [phrase],
                                 "identity": ident})
    # a rejected row and a clip without subjects: both must be ignored
    subjects.append({"subject_id": "O1-f00006-object-rejected", "clip_id": "O1", "video_id": "vO", "group_id": "gO",
                     "frame_idx": 6, "category": "object", "phrase": "x", "bbox": [0, 0, 10, 10], "keep": False,
                     "checks": ["box_too_small"]})
    pq.write_table(table_from_rows(list(videos.values()), VIDEO_SCHEMA), ds / "videos.parquet")
    pq.write_table(table_from_rows(clips, clip_schema([])), ds / "clips.parquet")
    truth = {s["subject_id"]: s.get("identity") for s in subjects}
    pq.write_table(table_from_rows(subjects, SUBJECT_SCHEMA), ds / "subjects.parquet")
    (root / "truth.json").write_text(json.dumps(truth, sort_keys=True))
    return ds


@pytest.fixture(scope="session")
def pairs_source(tmp_path_factory) -> Path:
    """The built dataset (never modified: tests copy it)."""
    return build_dataset(tmp_path_factory.mktemp("pairs_src"))


@pytest.fixture(scope="session")
def truth(pairs_source) -> dict[str, str]:
    return json.loads((pairs_source.parent / "truth.json").read_text())


@pytest.fixture(scope="session")
def bank_folder(tmp_path_factory) -> Path:
    """A registrable image folder: a new Grace Hopper portrait (different crop, scale, gain) on
    a real background, and an RGBA cut-out of the coffee photo."""
    d = tmp_path_factory.mktemp("bank") / "extra"
    d.mkdir()
    bg = cv2.resize(load_photo("rocket"), (480, 360), interpolation=cv2.INTER_AREA)
    g = load_photo("grace_hopper")[20:480, 40:480]
    img, _ = _paste(bg, g, 100, 10, 0.72, True, 0.85)
    cv2.imwrite(str(d / "grace_bank.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cup = cv2.resize(load_photo("coffee"), (260, 173), interpolation=cv2.INTER_AREA)
    rgba = np.dstack([cup, np.full(cup.shape[:2], 255, np.uint8)])
    cv2.imwrite(str(d / "cup.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    return d
