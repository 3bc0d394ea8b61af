"""save_contact_sheet: frames where they should be, references over a visible checkerboard, one
block per sample of a batch, the same bytes every time."""
from __future__ import annotations

import numpy as np
from PIL import Image

from loader_media import A, BANDS, PATCH_RGB
from s2vforge.data import S2VDataset, collate, save_contact_sheet
from s2vforge.data.contact import LABEL_H, PAD, THUMB_H

FRAMES_Y = PAD + LABEL_H                     # top of the frame row
REFS_Y = FRAMES_Y + THUMB_H + LABEL_H + PAD  # top of the reference row


def test_frames_and_references_on_a_checkerboard(export_dir, cfg, tmp_path):
    root, _ = export_dir
    ds = S2VDataset(root, cfg=cfg)
    item = ds[ds.sample_ids.index(A)]
    sheet = np.asarray(Image.open(save_contact_sheet(item, tmp_path / "a.png", max_frames=3)).convert("RGB"))
    # three frames of 96x64 at height 128 -> 192 wide each
    assert sheet.shape[1] >= PAD + 3 * (192 + PAD)
    f0 = np.asarray(Image.fromarray(item["frames"][0]).resize((192, 128), Image.BILINEAR))
    shown = sheet[FRAMES_Y:FRAMES_Y + 128, PAD:PAD + 192]
    assert np.abs(shown.astype(int) - f0.astype(int)).mean() < 1.0
    # the cup reference (3rd): transparent corner = checkerboard grey, opaque centre = its colour
    x = PAD + 2 * (THUMB_H + PAD)
    corner = sheet[REFS_Y + 2, x + 2]
    assert tuple(corner) in {(225, 225, 225), (165, 165, 165)}
    centre = sheet[REFS_Y + THUMB_H // 2, x + THUMB_H // 2].astype(int)
    assert np.abs(centre - PATCH_RGB).max() <= 3
    # only the 3 real references, not the padding slot: the 4th slot is background white
    x4 = PAD + 3 * (THUMB_H + PAD)
    assert x4 + 10 >= sheet.shape[1] or (sheet[REFS_Y + 10, x4 + 10] == 255).all()


def test_a_batch_gives_one_block_per_sample_and_the_same_bytes(export_dir, cfg, tmp_path):
    root, _ = export_dir
    ds = S2VDataset(root, cfg=cfg)
    one = np.asarray(Image.open(save_contact_sheet(ds[0], tmp_path / "one.png")))
    batch = collate([ds[i] for i in range(len(ds))], to_torch=False)
    p1 = save_contact_sheet(batch, tmp_path / "b1.png")
    p2 = save_contact_sheet([ds[i] for i in range(len(ds))], tmp_path / "b2.png")
    many = np.asarray(Image.open(p1))
    assert many.shape[0] > 3 * one.shape[0]
    assert p1.read_bytes() == p2.read_bytes()                                # batch dict == list of items
    assert p1.read_bytes() == save_contact_sheet(batch, tmp_path / "b3.png").read_bytes()


def test_colour_bands_show_in_order(export_dir, cfg, tmp_path):
    root, _ = export_dir
    item = S2VDataset(root, "test", cfg=cfg)[0]
    assert item["sample_id"] == BANDS
    sheet = np.asarray(Image.open(save_contact_sheet(item, tmp_path / "bands.png", max_frames=1)).convert("RGB"))
    row = sheet[FRAMES_Y + 64, PAD:PAD + 192].astype(int)                   # 96x64 -> 192x128
    assert [row[x].argmax() for x in (30, 96, 160)] == [0, 1, 2]
