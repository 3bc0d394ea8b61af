"""Fixtures of the loader tests: an export folder with known truth, a bulk one, their shards."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from loader_media import (BANDS, EXPORT_CFG, PATCH_RGB, A, B, C, D, E, barcode_frames, band_frames,
                          ellipse_mask, reference, rgba_crop, sample_row, save_png, write_clip, write_samples,
                          write_shard)
from s2vforge.corpus.synth import MONTAGE_PHOTOS
from s2vforge.media.decode import iter_frames
from s2vforge.schema import clip_id_for


@pytest.fixture
def cfg() -> dict:
    return copy.deepcopy(EXPORT_CFG)


def _decoded(path) -> list[np.ndarray]:
    return [rgb for _, _, rgb in iter_frames(path)]


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    """Samples A (8 references: 3 good, 5 that must be dropped), B (portrait, 1 ref), C (8 frames),
    D (keep false), E (clip missing), BANDS (colour bands, for geometry). Returns (root, truth)."""
    root = tmp_path_factory.mktemp("export")
    (root / "clips").mkdir()
    clips = {A: ("astronaut", 60, (96, 64)), B: ("coffee", 40, (64, 96)), C: ("chelsea", 8, (96, 64)),
             D: ("rocket", 30, (96, 64))}
    decoded = {}
    for cid, (photo, n, size) in clips.items():
        write_clip(root / "clips" / f"{cid}.mp4", barcode_frames(photo, n, size))
        decoded[cid] = _decoded(root / "clips" / f"{cid}.mp4")
    write_clip(root / "clips" / f"{BANDS}.mp4", band_frames(12, (96, 64)))
    a_hw, b_hw = (64, 96), (96, 64)

    def crop(cid, frame_idx, box, hw, sid, mask=None):
        mask = ellipse_mask(*hw, box) if mask is None else mask
        save_png(root / "subjects" / f"{sid}.png", rgba_crop(decoded[cid][frame_idx], mask, box))
        return mask

    r0_id, r1_id = f"{A}-f5-face-0000aaaa", f"{B}-f10-face-0000bbbb"
    m0 = crop(A, 5, (20, 10, 60, 50), a_hw, r0_id)
    m1 = crop(B, 10, (10, 20, 50, 70), b_hw, r1_id)
    sky = np.zeros(a_hw, bool)
    sky[:20] = True
    crop(A, 5, (0, 0, 96, 20), a_hw, f"{A}-f5-object-0000cccc", sky)
    m3 = m0.copy()
    m3[30, 18:20] = True                                     # IoU with m0 just under 1
    crop(A, 5, (18, 10, 60, 50), a_hw, f"{A}-f5-face-0000dddd", m3)
    empty = np.zeros(a_hw, bool)
    crop(A, 7, (30, 20, 50, 40), a_hw, f"{A}-f7-face-0000eeee", empty)
    m5 = crop(A, 20, (20, 10, 60, 50), a_hw, f"{A}-f20-face-0000ffff")
    patch = np.zeros((30, 20, 4), np.uint8)
    patch[..., :3] = PATCH_RGB
    patch[4:26, 3:17, 3] = 255                               # transparent border, opaque inside
    patch_id = f"{A}-f9-object-00002222"
    save_png(root / "subjects" / f"{patch_id}.png", patch)
    patch_mask = np.zeros(a_hw, bool)
    patch_mask[34:56, 63:77] = True                          # where the opaque part sits in frame 9
    refs_a = [
        reference(r0_id, "self", A, 5, (20, 10, 60, 50), a_hw, m0, "woman"),
        reference(r1_id, "cross_clip", B, 10, (10, 20, 50, 70), b_hw, m1, "woman", similarity=0.83),
        reference(f"{A}-f5-object-0000cccc", "self", A, 5, (0, 0, 96, 20), a_hw, sky, "sky"),
        reference(f"{A}-f5-face-0000dddd", "self", A, 5, (18, 10, 60, 50), a_hw, m3, "face"),
        reference(f"{A}-f7-face-0000eeee", "self", A, 7, (30, 20, 50, 40), a_hw, empty, "man"),
        reference(f"{A}-f20-face-0000ffff", "cross_clip", A, 20, (20, 10, 60, 50), a_hw, m5, "woman", 0.9),
        reference(f"{B}-f30-face-00001111", "cross_video", B, 30, (10, 20, 50, 70), b_hw, m1, "woman", 0.7,
                  rgba_path=f"subjects/{r1_id}.png"),
        reference(patch_id, "self", A, 9, (60, 30, 80, 60), a_hw, patch_mask, "cup"),
    ]
    c_id = f"{C}-f2-face-00003333"
    mc = crop(C, 2, (30, 10, 70, 50), a_hw, c_id)
    rows = [
        sample_row(A, 60, (96, 64), refs_a, "train", caption="a woman waves\nin a street",
                   background_tags=["Sky", "street"]),
        sample_row(B, 40, (64, 96), [reference(r1_id, "self", B, 10, (10, 20, 50, 70), b_hw, m1, "woman")], "train",
                   caption="a cup of coffee"),
        sample_row(C, 8, (96, 64), [reference(c_id, "self", C, 2, (30, 10, 70, 50), a_hw, mc, "cat")], "val",
                   caption="a cat"),
        sample_row(D, 30, (96, 64), [], "train", keep=False),
        sample_row(E, 30, (96, 64), [], "train"),
        sample_row(BANDS, 12, (96, 64), [], "test", caption="bands"),
    ]
    write_samples(root, rows)
    truth = {"decoded": decoded, "rows": {r["sample_id"]: r for r in rows},
             "kept_a": [r0_id, r1_id, patch_id],
             "dropped_a": {f"{A}-f5-object-0000cccc": "background_phrase", f"{A}-f5-face-0000dddd": "duplicate_mask",
                           f"{A}-f7-face-0000eeee": "empty_mask", f"{A}-f20-face-0000ffff": "cross_from_own_clip",
                           f"{B}-f30-face-00001111": "path_mismatch"}}
    return root, truth


@pytest.fixture(scope="session")
def bulk_dir(tmp_path_factory):
    """12 small samples (48x32 landscape / 32x48 portrait, 16 frames, one self reference each)."""
    root = tmp_path_factory.mktemp("bulk")
    (root / "clips").mkdir()
    rows = []
    for k in range(12):
        cid = clip_id_for(f"v{k:016x}", 0, 16)
        size = (48, 32) if k % 2 == 0 else (32, 48)
        frames = barcode_frames(MONTAGE_PHOTOS[k % len(MONTAGE_PHOTOS)], 16, size)
        write_clip(root / "clips" / f"{cid}.mp4", frames, gop=8)
        w, h = size
        box = (4, 14, w - 4, h - 4)
        mask = ellipse_mask(h, w, box)
        sid = f"{cid}-f3-face-{k:08x}"
        save_png(root / "subjects" / f"{sid}.png", rgba_crop(frames[3], mask, box))
        rows.append(sample_row(cid, 16, size, [reference(sid, "self", cid, 3, box, (h, w), mask, "face")], "train",
                               caption=f"sample {k}"))
    write_samples(root, rows)
    return root, rows


def _index(dirpath, names_counts):
    entries = [{"name": name, "n_samples": n, "bytes": (dirpath / name).stat().st_size} for name, n in names_counts]
    (dirpath / "index.json").write_text(json.dumps({"shards": entries}, indent=1, sort_keys=True))


@pytest.fixture(scope="session")
def export_shards(export_dir, tmp_path_factory):
    """The served rows of export_dir (A, B, C, BANDS) as two shards + index.json."""
    root, truth = export_dir
    out = tmp_path_factory.mktemp("shards")
    rows = truth["rows"]
    n0 = write_shard(out / "shard-000000.tar", root, [rows[A], rows[B]])
    n1 = write_shard(out / "shard-000001.tar", root, [rows[C], rows[BANDS]])
    _index(out, [("shard-000000.tar", n0), ("shard-000001.tar", n1)])
    return out


@pytest.fixture(scope="session")
def bulk_shards(bulk_dir, tmp_path_factory):
    """bulk_dir's 12 samples in 3 shards of 4 + index.json."""
    root, rows = bulk_dir
    out = tmp_path_factory.mktemp("bulk_shards")
    counts = []
    for s in range(3):
        name = f"shard-{s:06d}.tar"
        counts.append((name, write_shard(out / name, root, rows[4 * s:4 * s + 4])))
    _index(out, counts)
    return out
