"""Letterboxing a reference image to a trainer's frame size, on white.

Trainers that centre-crop their reference images to the training size (DiffSynth-Studio's
ImageCropAndResize) cut off whatever of the subject falls outside that aspect; a reference
already scaled to fit inside the frame and padded with white reaches the model whole, because
the trainer's crop of an image of exactly its size is the identity.
"""
from __future__ import annotations

import io
from pathlib import Path

WHITE = (255, 255, 255)


def fit_inside(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of `size` scaled (up or down) to the largest size inside `box`, aspect kept."""
    w, h = int(size[0]), int(size[1])
    bw, bh = int(box[0]), int(box[1])
    if w <= 0 or h <= 0 or bw <= 0 or bh <= 0:
        raise ValueError(f"cannot fit {w}x{h} inside {bw}x{bh}")
    scale = min(bw / w, bh / h)
    return max(1, min(bw, round(w * scale))), max(1, min(bh, round(h * scale)))


def letterbox(image, box: tuple[int, int], fill: tuple[int, int, int] = WHITE):
    """A `box`-sized RGB PIL image: `image` scaled to fit, centred, the rest `fill`."""
    from PIL import Image

    rgb = image.convert("RGB")
    w, h = fit_inside(rgb.size, box)
    scaled = rgb if (w, h) == rgb.size else rgb.resize((w, h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (int(box[0]), int(box[1])), fill)
    canvas.paste(scaled, ((int(box[0]) - w) // 2, (int(box[1]) - h) // 2))
    return canvas


def letterboxed_png(src: Path, box: tuple[int, int]) -> bytes:
    """PNG bytes of `src` letterboxed into `box` on white (no metadata: byte-identical per input)."""
    from PIL import Image

    with Image.open(src) as im:
        out = letterbox(im, box)
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
