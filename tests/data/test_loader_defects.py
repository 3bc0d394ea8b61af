"""One test per defect of OpenS2V-Nexus's demo dataloader (docs/loader.md): our loader cannot do it."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from loader_media import A, B, BANDS, PATCH_RGB, ellipse_mask
from s2vforge.data import S2VDataset
from s2vforge.data.refs import choose_and_load
from s2vforge.stages.subjects.rle import mask_to_rle, rle_iou


def _item(root, cfg, **kw):
    ds = S2VDataset(root, cfg=cfg, **kw)
    return ds[ds.sample_ids.index(A)]


def _dropped(item) -> dict:
    return dict(part.rsplit(":", 1) for part in item["ref_dropped"].split("; ") if part)


def test_empty_mask_reference_is_dropped_with_a_reason_not_a_crash(export_dir, cfg):
    root, truth = export_dir
    item = _item(root, cfg)
    empty_id = next(k for k, v in truth["dropped_a"].items() if v == "empty_mask")
    assert _dropped(item)[empty_id] == "empty_mask"
    assert empty_id not in item["ref_ids"]
    # a sample whose only reference is empty: no references, the reason, no exception
    png = root / "subjects" / f"{empty_id}.png"
    assert np.asarray(Image.open(png))[..., 3].max() == 0                    # the file really is empty
    sample = {"clip_id": A, "references": [r for r in truth["rows"][A]["references"] if r["subject_id"] == empty_id]}
    kept, dropped = choose_and_load(sample, "any", 0.9, 4, lambda pos, ref: root / ref["rgba_path"])
    assert kept == [] and dropped == [f"{empty_id}:empty_mask"]


def test_rgba_channel_order_is_the_png_order(export_dir, cfg):
    root, _ = export_dir
    cfg["loader"]["ref_size"] = None
    cfg["loader"]["max_refs"] = None
    item = _item(root, cfg)
    k = item["ref_phrases"].index("cup")
    patch = item["refs"][k]
    assert patch.shape == (30, 20, 4)
    assert tuple(patch[15, 10]) == PATCH_RGB + (255,)                        # R, G, B, A as written
    assert patch[0, 0, 3] == 0 and item["ref_masks"][k].sum() == 22 * 14
    png = np.asarray(Image.open(root / "subjects" / f"{item['ref_ids'][k]}.png"))
    assert np.array_equal(patch, png)
    # letterboxed into 32x32 (premultiplied resize): the subject keeps its colour
    boxed = _item(root, cfg | {"loader": cfg["loader"] | {"ref_size": [32, 32], "max_refs": 4}})
    inside = boxed["refs"][k][boxed["ref_masks"][k]]
    assert np.abs(inside[:, :3].astype(int) - PATCH_RGB).max() <= 2
    # frames too are RGB: the red band of the colour-band clip is red, not blue
    frames = S2VDataset(root, "test", cfg=cfg)[0]["frames"]
    left = frames[0][:, 2:28].reshape(-1, 3).mean(axis=0)
    assert left[0] > 200 and left[2] < 40, left
    assert S2VDataset(root, "test", cfg=cfg).sample_ids == [BANDS]


def test_a_cross_reference_comes_from_its_own_source_clip(export_dir, cfg):
    root, truth = export_dir
    cfg["loader"]["ref_size"] = None
    cfg["loader"]["max_refs"] = None
    item = _item(root, cfg, refs="cross")
    assert item["ref_kinds"] == ["cross_clip"] and item["ref_ids"][0].startswith(B)
    ref = item["refs"][0]
    x0, y0, x1, y1 = 10, 20, 50, 70                                          # its bbox in B's frame 10
    mask = ellipse_mask(96, 64, (x0, y0, x1, y1))[y0:y1, x0:x1]
    own = truth["decoded"][B][10][y0:y1, x0:x1]
    main = truth["decoded"][A][10][0:y1 - y0, x0:x1]                         # the main clip at the same size
    assert np.array_equal(ref[..., :3][mask], own[mask])
    assert np.abs(ref[..., :3][mask].astype(int) - main[mask].astype(int)).mean() > 10
    # the two cross rows that do not match their source are dropped, with the reason
    d = _dropped(item)
    assert {k: v for k, v in d.items()} == {k: v for k, v in truth["dropped_a"].items()
                                            if v in ("cross_from_own_clip", "path_mismatch")}
    # no random pick anywhere: the references are the same every epoch and seed
    a = S2VDataset(root, "train", cfg=cfg, sampling="random", seed=1)
    b = S2VDataset(root, "train", cfg=cfg, sampling="random", seed=2, epoch=5)
    ia, ib = a[a.sample_ids.index(A)], b[b.sample_ids.index(A)]
    assert ia["ref_ids"] == ib["ref_ids"] and all(np.array_equal(x, y) for x, y in zip(ia["refs"], ib["refs"]))


def test_background_phrases_are_never_references(export_dir, cfg):
    root, truth = export_dir
    background = {t.lower() for t in truth["rows"][A]["background_tags"]}
    for choice in ("self", "cross", "both", "any"):
        item = _item(root, cfg, refs=choice)
        assert not background & {p.lower() for p in item["ref_phrases"]}
    item = _item(root, cfg)
    sky = next(k for k, v in truth["dropped_a"].items() if v == "background_phrase")
    assert _dropped(item)[sky] == "background_phrase"                        # "sky" vs the tag "Sky"


def test_duplicate_masks_are_never_references(export_dir, cfg):
    root, truth = export_dir
    refs = truth["rows"][A]["references"]
    dup = next(k for k, v in truth["dropped_a"].items() if v == "duplicate_mask")
    first = refs[0]
    dup_ref = next(r for r in refs if r["subject_id"] == dup)
    assert rle_iou(json.loads(first["mask_rle"]), json.loads(dup_ref["mask_rle"])) > 0.99
    item = _item(root, cfg)
    assert _dropped(item)[dup] == "duplicate_mask" and dup not in item["ref_ids"]
    # the bound decides: a mask of IoU 0.8 with the first is a second subject, kept
    m = np.zeros((64, 96), bool)
    m[10:50, 20:60] = True
    half = m.copy()
    half[10:18, 20:60] = False                                               # 32/40 of the rows: IoU 0.8
    assert rle_iou(mask_to_rle(m), mask_to_rle(half)) == pytest.approx(0.8)
    base = {k: v for k, v in first.items()}
    other = base | {"subject_id": f"{A}-f5-face-12345678", "mask_rle": json.dumps(mask_to_rle(half)),
                    "rgba_path": f"subjects/{A}-f5-face-12345678.png"}
    base = base | {"mask_rle": json.dumps(mask_to_rle(m))}
    sample = {"clip_id": A, "references": [base, other]}
    png = root / first["rgba_path"]
    kept, dropped = choose_and_load(sample, "any", 0.9, None, lambda pos, ref: png)
    assert len(kept) == 2 and dropped == []
    kept, dropped = choose_and_load(sample, "any", 0.75, None, lambda pos, ref: png)
    assert len(kept) == 1 and dropped == [f"{A}-f5-face-12345678:duplicate_mask"]
