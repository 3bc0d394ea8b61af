"""Kept clips are frame-exact, cropped as asked, and faithful to the source pixels."""
from __future__ import annotations

import av
import numpy as np
import pytest

from s2vforge.corpus.synth import load_photo, moving_shot, read_frames, stitch
from s2vforge.media.clipwriter import ClipSpec, write_clips


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    p = tmp_path_factory.mktemp("cw") / "src.mp4"
    shots = [moving_shot(load_photo(n), 3.0, 25.0, (320, 180), "pan") for n in ("astronaut", "coffee", "chelsea")]
    stitch(p, shots, 25.0, size=(320, 180), crf=12)
    return p, read_frames(p)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.mark.parametrize("crop", [(0, 0, 320, 180), (16, 20, 300, 160)])
def test_adjacent_clips_are_frame_exact(source, tmp_path, crop):
    path, frames = source
    specs = [ClipSpec("a", 0.0, 3.0, crop, tmp_path / "a.mp4"), ClipSpec("b", 3.0, 6.0, crop, tmp_path / "b.mp4"),
             ClipSpec("c", 7.2, 9.0, crop, tmp_path / "c.mp4")]
    written = write_clips(str(path), specs, rotation=0, fps=25.0, preset="ultrafast", crf=12)
    assert written == {"a": 75, "b": 75, "c": 45}
    x0, y0, x1, y1 = crop
    for spec, first in ((specs[0], 0), (specs[1], 75), (specs[2], 180)):
        out = read_frames(spec.out_path)
        assert len(out) == written[spec.clip_id]
        assert out[0].shape[:2] == (y1 - y0, x1 - x0)
        # the first and last frames are the source frames at those indices (no off-by-one at cuts)
        assert _psnr(out[0], frames[first][y0:y1, x0:x1]) > 30
        assert _psnr(out[-1], frames[first + len(out) - 1][y0:y1, x0:x1]) > 30
        with av.open(str(spec.out_path)) as c:
            cc = c.streams.video[0].codec_context
            assert (cc.name, cc.pix_fmt) == ("h264", "yuv420p")
    assert not list(tmp_path.glob(".*.part"))
