"""Subtitle/caption bands and ocr_area: real PP-OCR (rapidocr) on burned-in text, plus the band
logic on hand-placed boxes (a stub detector) for the cases OCR makes slow to stage."""
from __future__ import annotations

import json

import pytest

from s2vforge.backends.ocr import TextBox, get_text_detector
from s2vforge.stages.crop import detect_crop, detect_text_band, text_params

from crop_media import burn_subtitles, crop_cfg, letterbox, to_clip, x264_roundtrip


@pytest.fixture(scope="module")
def subtitled(bikes):
    frames, text_top = burn_subtitles(bikes)
    return x264_roundtrip(frames), text_top


def test_rapidocr_reads_burned_in_subtitles(ocr_detector, subtitled):
    frames, text_top = subtitled
    boxes = ocr_detector.detect(frames[0])
    texts = " ".join(b.text for b in boxes)
    assert "told" in texts and "road" in texts
    assert len(boxes) >= 2
    for b in boxes:
        x0, y0, x1, y1 = b.bbox
        assert y0 >= text_top - 12 and y1 <= frames[0].shape[0] and b.score > 0.9 and b.area > 0


def test_subtitle_band_is_cut_and_scored(ocr_detector, subtitled):
    frames, text_top = subtitled
    clip = to_clip(frames)                      # 640 px analysis = source
    res = detect_crop(clip, crop_cfg(ocr_frames=3), detector=ocr_detector)
    x0, y0, x1, y1 = res.crop
    assert res.subtitle_band is not None and res.subtitle_band[1] == 272
    assert y1 <= text_top                       # the text is gone ...
    assert y1 >= text_top - 16                  # ... and at most ~6% of the picture above it
    assert (x0, y0, x1) == (0, 0, 640) and (y1 - y0) % 2 == 0
    assert res.ocr_area > 0.05                  # two lines of large text per frame
    assert res.ocr_area_in_crop == 0.0
    assert res.n_text_boxes >= 6                # 2 lines x 3 frames


def test_clean_clips_have_no_text(ocr_detector, bikes, carphone):
    for frames in (x264_roundtrip(bikes), carphone):
        clip = to_clip(frames)
        res = detect_crop(clip, crop_cfg(), detector=ocr_detector)
        w, h = clip.source_size
        assert res.ocr_area is not None and res.ocr_area < 0.005
        assert res.subtitle_band is None and res.crop[2:] == (w, h)


def test_subtitles_inside_a_letterbox_bar(ocr_detector, bikes):
    frames, text_top = burn_subtitles(letterbox(bikes, 20, 70), bottom_margin=10)
    clip = to_clip(x264_roundtrip(frames))
    res = detect_crop(clip, crop_cfg(), detector=ocr_detector)
    assert abs(res.border[1] - 20) <= 2
    x0, y0, x1, y1 = res.crop
    assert 20 <= y0 <= 22 and y1 <= text_top and y1 >= 20 + 272 - 16
    assert res.ocr_area > 0.03


# --- band logic with hand-placed boxes -------------------------------------------------------


class StubDetector:
    """Returns fixed boxes (x0, y0, x1, y1, text, score) for every frame, in frame pixels."""

    def __init__(self, boxes):
        self.boxes = boxes
        self.calls = 0

    def detect(self, rgb):
        self.calls += 1
        return [TextBox(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), t, s) for x0, y0, x1, y1, t, s in self.boxes]


def test_middle_text_is_counted_not_cropped(bikes):
    det = StubDetector([(200, 110, 440, 150, "OPEN 24 HOURS", 0.99)])     # a sign mid-frame
    res = detect_crop(to_clip(bikes), crop_cfg(ocr_frames=3), detector=det)
    assert res.crop == (0, 0, 640, 272) and res.subtitle_band is None
    assert res.ocr_area == pytest.approx(240 * 40 / (640 * 272))
    assert res.ocr_area_in_crop == pytest.approx(res.ocr_area)
    assert det.calls == 3 and res.n_text_boxes == 3


def test_top_and_bottom_bands_and_stacked_lines(bikes):
    det = StubDetector([
        (20, 4, 300, 30, "BREAKING NEWS", 0.98),          # top ticker
        (100, 170, 540, 196, "a third subtitle line", 0.97),   # centre at 67%: joins the band below
        (100, 200, 540, 226, "first subtitle line", 0.97),
        (100, 230, 540, 256, "second subtitle line", 0.97),
    ])
    res = detect_crop(to_clip(bikes), crop_cfg(), detector=det)
    x0, y0, x1, y1 = res.crop
    assert y0 >= 30 and y1 <= 170 and y1 >= 160
    assert res.subtitle_band is not None and res.subtitle_band[0] <= 170
    assert len(res.text_bands) == 2


def test_tall_box_does_not_drag_the_band_up(bikes):
    det = StubDetector([(250, 0, 410, 267, "TALL SIGN", 0.9),            # full-height text column
                        (100, 230, 540, 256, "second subtitle line", 0.97)])
    res = detect_crop(to_clip(bikes), crop_cfg(), detector=det)
    assert res.subtitle_band is not None and 220 <= res.crop[3] <= 230


def test_false_positives_are_filtered(bikes):
    det = StubDetector([(250, 0, 410, 267, "口", 0.66),          # single glyph read into a texture
                        (10, 240, 200, 262, "blurry words", 0.55)])  # low recognition confidence
    res = detect_crop(to_clip(bikes), crop_cfg(), detector=det)
    assert res.ocr_area == 0.0 and res.n_text_boxes == 0 and res.crop == (0, 0, 640, 272)


def test_band_that_would_leave_too_little_is_not_cut(bikes):
    # a caption block covering the lower 70%: cutting it would keep 30% < 36% of the frame
    det = StubDetector([(0, 82, 640, 272, "A WALL OF PROMOTIONAL TEXT", 0.99)])
    res = detect_crop(to_clip(bikes), crop_cfg(), detector=det)
    assert res.crop == (0, 0, 640, 272) and res.subtitle_band is None
    assert res.ocr_area > 0.6                # left for the ocr_area filter


def test_bands_scale_to_source_pixels(bikes):
    # source 640x272 analysed at 320x136: a bottom line at analysis y 110..126
    det = StubDetector([(40, 110, 280, 126, "subtitle text", 0.99)])
    res = detect_crop(to_clip(bikes, analysis_long_side=320), crop_cfg(), detector=det)
    assert res.subtitle_band is not None
    assert abs(res.subtitle_band[0] - 2 * (110 - 0.01 * 136)) <= 2 and res.subtitle_band[1] == 272
    assert res.crop[3] <= 220 and res.crop[3] % 2 == 0


def test_detect_text_band_direct(bikes):
    det = StubDetector([(100, 230, 540, 256, "subtitle", 0.97)])
    tb = detect_text_band(bikes[:2], det, **text_params(crop_cfg()))
    assert tb.top is None and tb.bottom is not None and tb.bottom <= 230
    assert tb.n_text_boxes == 2 and tb.ocr_area == pytest.approx(440 * 26 / (640 * 272))


def test_record_is_json_ready(bikes):
    res = detect_crop(to_clip(bikes), crop_cfg(), detector=StubDetector([(100, 230, 540, 256, "subtitle", 0.97)]))
    rec = res.as_record()
    json.dumps(rec)
    assert set(rec) >= {"crop", "crop_border", "crop_subtitle_band", "score_ocr_area", "n_text_boxes"}
    assert rec["crop"] == list(res.crop) and isinstance(rec["score_ocr_area"], float)
    off = detect_crop(to_clip(bikes), crop_cfg(ocr=False)).as_record()
    assert off["score_ocr_area"] is None and off["crop_subtitle_band"] is None


def test_detector_is_cached_per_process():
    assert get_text_detector("rapidocr") is get_text_detector()
    with pytest.raises(ValueError):
        get_text_detector("tesseract")
