"""save_contact_sheet: one PNG that shows what a loader item (or batch) holds, PIL only.

Per sample: a header (sample id, frame indices), a row of up to `max_frames` frames spread over
the clip, a row of its references composited on a checkerboard (so the alpha mask is visible;
padding slots are left out), each labelled with its kind, and the caption wrapped under them.
Accepts an item, a list of items, or a batch dict from default_collate / collate (numpy arrays
or CPU tensors).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

THUMB_H = 128
PAD = 6
LABEL_H = 14
BG = (255, 255, 255)
INK = (20, 20, 20)


def _np(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    img = _np(img)
    if img.dtype == np.uint8:
        return img
    f = img.astype(np.float32)
    if f.min() < 0:
        f = (f + 1.0) * 127.5
    elif f.max() <= 1.0:
        f = f * 255.0
    return np.clip(f.round(), 0, 255).astype(np.uint8)


def _items(item_or_batch) -> list[dict]:
    """A list of per-sample dicts from an item, a list of items, or a collated batch."""
    if isinstance(item_or_batch, (list, tuple)):
        return list(item_or_batch)
    d = item_or_batch
    frames = _np(d["frames"])
    if frames.ndim == 4:
        return [d]
    n = frames.shape[0]
    refs = d.get("refs")
    slots = _np(refs).shape[1] if hasattr(refs, "shape") and len(refs.shape) == 5 else None
    out = []
    for b in range(n):
        one = {}
        for k, v in d.items():
            if _transposed(v, n, slots):   # default_collate: N tuples of B
                one[k] = [x[b] for x in v]
            elif isinstance(v, (list, tuple)) and len(v) == n:
                one[k] = v[b]
            elif hasattr(v, "shape") and len(getattr(v, "shape", ())) and v.shape[0] == n:
                one[k] = v[b]
        out.append(one)
    return out


def _transposed(v, n: int, slots: int | None) -> bool:
    """Whether a batch's list field is default_collate's slot-major [N] tuples of B rather than
    collate's per-sample [B] lists of N (the inner type tells them apart when N == B)."""
    if slots is None or not isinstance(v, list) or len(v) != slots:
        return False
    return all(isinstance(x, tuple) and len(x) == n for x in v)


def _checkerboard(h: int, w: int, cell: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    light = ((yy // cell + xx // cell) % 2 == 0)
    board = np.where(light[..., None], np.uint8(225), np.uint8(165))
    return np.repeat(board, 3, axis=2)


def _thumb(img: np.ndarray, height: int):
    from PIL import Image
    im = Image.fromarray(img)
    w = max(1, round(im.width * height / max(1, im.height)))
    return im.resize((w, height), Image.BILINEAR)


def _ref_thumb(rgba: np.ndarray, box: int):
    from PIL import Image
    im = Image.fromarray(_to_uint8(rgba), mode="RGBA")
    s = box / max(im.width, im.height, 1)
    im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BILINEAR)
    board = Image.fromarray(_checkerboard(box, box)).convert("RGBA")
    board.alpha_composite(im, ((box - im.width) // 2, (box - im.height) // 2))
    return board.convert("RGB")


def _sample_block(item: dict, max_frames: int):
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default()
    frames = _to_uint8(item["frames"])
    t = frames.shape[0]
    pick = sorted({int(round(x)) for x in np.linspace(0, t - 1, min(max_frames, t))})
    indices = _np(item["frame_indices"]).tolist() if "frame_indices" in item else list(range(t))
    thumbs = [_thumb(frames[k], THUMB_H) for k in pick]
    refs = item.get("refs")
    ref_list = list(refs) if isinstance(refs, (list, tuple)) else ([] if refs is None else list(_np(refs)))
    valid = _np(item["valid_refs"]).tolist() if "valid_refs" in item else [True] * len(ref_list)
    kinds = item.get("ref_kinds") or [""] * len(ref_list)
    kinds = list(kinds) if isinstance(kinds, (list, tuple)) else [""] * len(ref_list)
    shown = [(_ref_thumb(_np(r), THUMB_H), kinds[k] if k < len(kinds) else "")
             for k, r in enumerate(ref_list) if k < len(valid) and valid[k]]
    row1_w = sum(im.width for im in thumbs) + PAD * (len(thumbs) + 1)
    row2_w = sum(im.width for im, _ in shown) + PAD * (len(shown) + 1)
    width = max(row1_w, row2_w, 320)
    caption = str(item.get("caption") or "")
    lines = textwrap.wrap(caption, width=max(20, width // 7)) or ["(no caption)"]
    header = f"{item.get('sample_id', '')}  frames {indices[0]}..{indices[-1]} ({t})"
    height = (LABEL_H + PAD) + (THUMB_H + LABEL_H + PAD) + (THUMB_H + LABEL_H + PAD if shown else LABEL_H + PAD) \
        + LABEL_H * len(lines) + PAD
    sheet = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(sheet)
    y = PAD
    draw.text((PAD, y), header, fill=INK, font=font)
    y += LABEL_H
    x = PAD
    for k, im in zip(pick, thumbs):
        sheet.paste(im, (x, y))
        draw.text((x, y + THUMB_H), f"#{indices[k]}", fill=INK, font=font)
        x += im.width + PAD
    y += THUMB_H + LABEL_H + PAD
    if shown:
        x = PAD
        for im, kind in shown:
            sheet.paste(im, (x, y))
            draw.text((x, y + THUMB_H), kind, fill=INK, font=font)
            x += im.width + PAD
        y += THUMB_H + LABEL_H + PAD
    else:
        draw.text((PAD, y), "(no references)", fill=INK, font=font)
        y += LABEL_H + PAD
    for line in lines:
        draw.text((PAD, y), line, fill=INK, font=font)
        y += LABEL_H
    return sheet


def save_contact_sheet(item_or_batch, path, max_frames: int = 8) -> Path:
    """Write the contact sheet PNG of an item or batch to `path`; returns the path."""
    from PIL import Image
    blocks = [_sample_block(it, max_frames) for it in _items(item_or_batch)]
    if not blocks:
        raise ValueError("save_contact_sheet: nothing to show")
    width = max(b.width for b in blocks)
    height = sum(b.height for b in blocks) + PAD * (len(blocks) - 1)
    sheet = Image.new("RGB", (width, height), BG)
    y = 0
    for b in blocks:
        sheet.paste(b, (0, y))
        y += b.height + PAD
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out
