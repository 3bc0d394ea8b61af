"""Black-border detection on real clips with real (x264) bars. No OCR here."""
from __future__ import annotations

import numpy as np
import pytest

from s2vforge.stages.crop import border_params, detect_black_borders, detect_crop

from crop_media import crop_cfg, letterbox, to_clip, x264_roundtrip


def _assert_border(got, want, tol=2):
    assert all(abs(g - w) <= tol for g, w in zip(got, want)), f"border {got} != {want} (+-{tol})"


def _assert_even_inside(crop, source_size):
    x0, y0, x1, y1 = crop
    w, h = source_size
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert (x1 - x0) % 2 == 0 and (y1 - y0) % 2 == 0 and x0 % 2 == 0 and y0 % 2 == 0


def test_letterbox_bars_found_and_cut(bikes):
    # 640x272 picture in a 640x360 frame: 40 px bar on top, 48 below; analysed at 480 px (scale 0.75)
    clip = to_clip(x264_roundtrip(letterbox(bikes, 40, 48)), analysis_long_side=480)
    res = detect_crop(clip, crop_cfg(ocr=False))
    _assert_border(res.border, (0, 40, 0, 48))
    _assert_even_inside(res.crop, clip.source_size)
    x0, y0, x1, y1 = res.crop
    assert 40 <= y0 <= 42 and 310 <= y1 <= 312          # bars excluded, picture kept to within 2 px
    assert (x0, x1) == (0, 640)
    assert res.subtitle_band is None and res.ocr_area is None


def test_pillarbox_bars_found_and_cut(carphone):
    # carphone (176x144, upscaled x2) between 80 px side bars; analysed at 384 px (scale 0.75)
    import cv2
    big = [cv2.resize(f, (352, 288), interpolation=cv2.INTER_CUBIC) for f in carphone]
    clip = to_clip(x264_roundtrip(letterbox(big, 0, 0, 80, 80)), analysis_long_side=384)
    res = detect_crop(clip, crop_cfg(ocr=False))
    _assert_border(res.border, (80, 0, 80, 0))
    _assert_even_inside(res.crop, clip.source_size)
    x0, y0, x1, y1 = res.crop
    assert 80 <= x0 <= 84 and 430 <= x1 <= 432 and (y0, y1) == (0, 288)


def test_windowbox_both_axes(bikes):
    clip = to_clip(x264_roundtrip(letterbox(bikes, 30, 30, 64, 64)), analysis_long_side=480)
    res = detect_crop(clip, crop_cfg(ocr=False))
    _assert_border(res.border, (64, 30, 64, 30))
    _assert_even_inside(res.crop, clip.source_size)


def test_clean_clips_are_not_cropped(bikes, carphone):
    res = detect_crop(to_clip(x264_roundtrip(bikes)), crop_cfg(ocr=False))
    assert res.border == (0, 0, 0, 0) and res.crop == (0, 0, 640, 272)
    # carphone_pristine has a genuinely dark 1-px left column; nothing else may go
    res = detect_crop(to_clip(carphone), crop_cfg(ocr=False))
    assert res.border[1:] == (0, 0, 0) and res.border[0] <= 1
    assert res.crop[2:] == (176, 144)


@pytest.mark.parametrize("name", ["bikes", "carphone"])
def test_dark_clip_without_bars_keeps_its_frame(name, request):
    frames = request.getfixturevalue(name)
    dark = x264_roundtrip([(f * 0.1).astype(np.uint8) for f in frames])   # every row below ffmpeg's 24/255
    clip = to_clip(dark)
    res = detect_crop(clip, crop_cfg(ocr=False))
    assert res.border == (0, 0, 0, 0)
    w, h = clip.source_size
    assert res.crop == (0, 0, w - w % 2, h - h % 2)


def test_dim_letterboxed_clip_still_cropped(bikes):
    dim = [(f * 0.3).astype(np.uint8) for f in bikes]
    res = detect_crop(to_clip(x264_roundtrip(letterbox(dim, 40, 40))), crop_cfg(ocr=False))
    _assert_border(res.border, (0, 40, 0, 40))


def test_junk_line_at_the_edge_does_not_hide_the_bar(bikes):
    frames = letterbox(bikes, 40, 40)
    for f in frames:
        f[0, :] = 128          # a grey scan line on the outer edge of the top bar
    res = detect_crop(to_clip(x264_roundtrip(frames)), crop_cfg(ocr=False))
    _assert_border(res.border, (0, 40, 0, 40))


def test_never_crops_below_min_area(carphone):
    # the picture covers 21% of a 400x300 frame: a crop that small is refused, the frame kept
    framed = letterbox(carphone, 78, 78, 112, 112)
    clip = to_clip(x264_roundtrip(framed))
    res = detect_crop(clip, crop_cfg(ocr=False))
    assert res.crop == (0, 0, 400, 300) and res.border == (0, 0, 0, 0)
    # with the guard lowered, the same clip is cropped to the picture
    res = detect_crop(clip, crop_cfg(ocr=False, min_area_after_crop=0.1))
    _assert_border(res.border, (112, 78, 112, 78))


def test_odd_source_size_gives_even_crop(bikes):
    # raw (no codec) frames of odd size 641x313 with a 41-px top bar; crop dims must be even
    frames = letterbox(bikes, 41, 0, 0, 1)
    clip = to_clip(frames, analysis_long_side=480)
    res = detect_crop(clip, crop_cfg(ocr=False))
    _assert_even_inside(res.crop, clip.source_size)
    _assert_border(res.border, (0, 41, 1, 0))
    assert res.crop[1] >= 41 and res.crop[2] <= 640


def test_detect_black_borders_in_frame_pixels(bikes):
    frames = x264_roundtrip(letterbox(bikes, 24, 24))
    left, top, right, bottom = detect_black_borders(frames, **border_params(crop_cfg()))
    assert (left, right) == (0, 0) and abs(top - 24) <= 1 and abs(bottom - 24) <= 1
    assert detect_black_borders([], **border_params(crop_cfg())) == (0, 0, 0, 0)
