"""Odd timestamps (spliced TS, negative start, pts gap) and non-square pixels, against known truth.

Each file comes from s2vforge.corpus.timestamps with the frames it holds; curation must cut at
every timestamp break, plan its clips on the decoded frames, and write clips that hold exactly
the frames their rows name (checked frame by frame against the source, neighbours included).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest

from s2vforge.cli import run_curate
from s2vforge.corpus import timestamps as odd
from s2vforge.corpus.synth import read_frames
from s2vforge.media import clipwriter
from s2vforge.media.clipwriter import ClipSpec, write_clips
from s2vforge.media.decode import FrameClock, av_open, display_size
from s2vforge.media.probe import probe
from s2vforge.recipes import load_recipe
from s2vforge.stages.curate import curate_video

TIMESTAMP_CASES = ("spliced_ts", "negative_start_ts", "negative_start_mkv", "editlist_mp4", "pts_gap")
CHEAP = {"crop": {"enabled": True, "ocr": False}, "scorers": ["luminance"],
         "filters": {"score_luminance": {"min": 0, "max": 255}}, "write": {"preset": "ultrafast"}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, odd.OddVideo]:
    return odd.write_all(tmp_path_factory.mktemp("odd_ts"))


def _curate(video: odd.OddVideo, tmp: Path, **write) -> tuple[dict, list[dict], dict]:
    rec = load_recipe(None, {**CHEAP, "write": {**CHEAP["write"], **write}})
    res = curate_video({"video_id": video.path.stem, "path": str(video.path)}, rec, tmp)
    return res.video, sorted(res.clips, key=lambda c: c["start_frame"]), res.files


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def _assert_frames_are(got: list[np.ndarray], source: list[np.ndarray], first: int) -> None:
    """got[j] is source[first + j]: close to it (PSNR > 28 dB) and closer than to either neighbour."""
    assert got, "no frames"
    for j, g in enumerate(got):
        k = first + j
        m = _mse(g, source[k])
        assert 10 * np.log10(255.0 ** 2 / max(m, 1e-9)) > 28, f"frame {j} (source {k}) does not match"
        for nb in (k - 1, k + 1):
            if 0 <= nb < len(source):
                assert m < _mse(g, source[nb]), f"frame {j} looks more like source {nb} than {k}"


def _sar_of(path: Path) -> Fraction:
    with av_open(path) as c:
        s = c.streams.video[0].sample_aspect_ratio
    return Fraction(1) if s is None or s.numerator == 0 else Fraction(s.numerator, s.denominator)


# ------------------------------------------------------------------ the clock alone

def _frames(pts, tb=Fraction(1, 1000)):
    return [SimpleNamespace(pts=p, time_base=tb) for p in pts]


def test_frame_clock_breaks_on_resets_and_gaps_only():
    clock = FrameClock(25.0)
    pts = [0, 40, 80, 120, 40, 80, 120, 30_120, 30_160, None, 30_240, 30_240, 30_280]
    times = [clock.push(f) for f in _frames(pts)]
    assert clock.breaks == [4, 7]                     # the reset to 40 ms, the 30 s jump
    assert np.all(np.diff(times) > 0)                 # monotonic whatever the pts do
    assert times[:4] == pytest.approx([0, 0.04, 0.08, 0.12])
    assert times[4] == pytest.approx(0.16) and times[7] == pytest.approx(0.28)   # one frame on
    assert clock.n_irregular == 3 and not clock.seekable   # the missing pts (and the frame after it), the repeat: no break
    assert clock.end_time() == pytest.approx(times[-1] + 0.04)


def test_frame_clock_keeps_vfr_and_negative_starts():
    clock = FrameClock(10.0)
    times = [clock.push(f) for f in _frames([-500, -400, 100, 300, 1800, 1900])]   # a 1.5 s frame is VFR, not a gap
    assert clock.breaks == [] and clock.seekable
    assert times == pytest.approx([0.0, 0.1, 0.6, 0.8, 2.3, 2.4])


# ------------------------------------------------------------------ curation of each odd file

@pytest.mark.parametrize("case", TIMESTAMP_CASES)
def test_clips_follow_the_decoded_frames(corpus, tmp_path, case):
    truth = corpus[case]
    video, clips, files = _curate(truth, tmp_path)
    assert video["status"] == "ok", video["error"]
    assert video["n_frames"] == truth.n_frames
    assert video["fps"] == pytest.approx(truth.fps)
    assert video["duration_s"] == pytest.approx(truth.n_frames / truth.fps, abs=1e-6)
    windows = [(c["start_frame"], c["end_frame"]) for c in clips if c["reject_reasons"] != ["too_short"]]
    short = [(c["start_frame"], c["end_frame"]) for c in clips if c["reject_reasons"] == ["too_short"]]
    assert windows == truth.windows and short == truth.too_short
    assert [c["start_frame"] for c in clips if c["pts_discontinuity"]] == truth.breaks
    # times run on the decoded frames: frame i at i / fps (constant-rate sources), from 0
    for c in clips:
        assert c["start_s"] == pytest.approx(c["start_frame"] / truth.fps, abs=1e-6)
        assert c["end_s"] == pytest.approx(c["end_frame"] / truth.fps, abs=1e-6)
        assert c["sample_aspect"] == "1:1"
    kept = [c for c in clips if c["keep"]]
    assert [(c["start_frame"], c["end_frame"]) for c in kept] == truth.windows
    for c in kept:
        assert c["pixels_resampled"] is False
        got = read_frames(files[c["path"]])
        assert len(got) == c["end_frame"] - c["start_frame"]
        _assert_frames_are(got, truth.frames, c["start_frame"])
        with av_open(files[c["path"]]) as f:
            assert f.streams.video[0].average_rate == 25


def test_spliced_segments_land_in_their_own_clips(corpus, tmp_path):
    truth = corpus["spliced_ts"]
    _, clips, files = _curate(truth, tmp_path)
    assert [(c["start_frame"], c["end_frame"]) for c in clips] == [(s, e) for s, e, _ in truth.segments] == [(0, 75), (75, 140)]
    # each clip is one photo: its frames match that segment and not the other one
    for c, (s, e, photo) in zip(clips, truth.segments):
        got = read_frames(files[c["path"]])
        other = truth.frames[0 if s else truth.segments[1][0]]
        assert all(_mse(g, truth.frames[s + j]) < 0.2 * _mse(g, other) for j, g in enumerate(got)), photo


# ------------------------------------------------------------------ the writer

def _pts(path: Path) -> list:
    with av_open(path) as c:
        s = c.streams.video[0]
        clock = FrameClock(25.0)
        for f in c.decode(s):
            clock.push(f)
    return clock


def test_writer_selects_by_index_when_seeking_and_when_pts_mislead(corpus, tmp_path, monkeypatch):
    truth = corpus["negative_start_ts"]
    clock = _pts(truth.path)
    assert clock.seekable and clock.pts[0] < 0
    monkeypatch.setattr(clipwriter, "SEEK_GAP_S", 0.2)          # seek before every clip
    crop = (0, 0, 320, 180)
    windows = [(3, 20), (40, 61), (80, 100)]

    def specs(tag):
        return [ClipSpec(f"{tag}{a}", 0, 0, crop, tmp_path / f"{tag}{a}.mp4", a, b) for a, b in windows]

    for tag, frame_pts in (("seek", clock.pts), ("shifted", [p + 3600 * 3 for p in clock.pts]), ("none", None)):
        sp = specs(tag)
        written = write_clips(str(truth.path), sp, 0, 25.0, crf=12, preset="ultrafast", frame_pts=frame_pts)
        assert written == {s.clip_id: s.end_frame - s.start_frame for s in sp}, tag
        for s in sp:
            _assert_frames_are(read_frames(s.out_path), truth.frames, s.start_frame)


def test_writer_on_a_spliced_stream_counts_frames(corpus, tmp_path):
    truth = corpus["spliced_ts"]
    clock = _pts(truth.path)
    assert clock.breaks == [75] and not clock.seekable
    sp = [ClipSpec("x", 0, 0, (0, 0, 320, 180), tmp_path / "x.mp4", 60, 90)]    # across the splice
    assert write_clips(str(truth.path), sp, 0, 25.0, crf=12, preset="ultrafast", frame_pts=clock.pts) == {"x": 30}
    _assert_frames_are(read_frames(sp[0].out_path), truth.frames, 60)


# ------------------------------------------------------------------ non-square pixels

@pytest.mark.parametrize("case", ["sar_32_27", "sar_8_9_pillarbox"])
def test_probe_reports_display_geometry(corpus, case):
    truth = corpus[case]
    info = probe(str(truth.path))
    assert (info.coded_width, info.coded_height) == (720, 480)
    assert (info.width, info.height) == truth.display_size
    assert f"{info.sample_aspect.numerator}:{info.sample_aspect.denominator}" == truth.sample_aspect


@pytest.mark.parametrize("case", ["sar_32_27", "sar_8_9_pillarbox"])
def test_square_pixels_by_default(corpus, tmp_path, case):
    truth = corpus[case]
    assert load_recipe()["write"]["sample_aspect"] == "square"
    video, (clip,), files = _curate(truth, tmp_path)
    assert (video["width"], video["height"]) == truth.display_size
    assert clip["keep"] and clip["sample_aspect"] == truth.sample_aspect and clip["pixels_resampled"] is True
    x0, y0, x1, y1 = clip["crop"]
    # the crop is found in display pixels: the bars are `bars` wide on screen, whatever the SAR
    assert abs(x0 - truth.bars) <= 2 and abs((truth.display_size[0] - x1) - truth.bars) <= 2
    assert (y0, y1) == (0, truth.display_size[1])
    path = files[clip["path"]]
    assert _sar_of(path) == 1
    got = read_frames(path)
    assert len(got) == clip["end_frame"] - clip["start_frame"] == truth.n_frames
    assert got[0].shape[:2] == (y1 - y0, (x1 - x0) // 2 * 2)
    _assert_frames_are(got, [f[y0:y1, x0:x0 + got[0].shape[1]] for f in truth.frames], 0)


@pytest.mark.parametrize("case", ["sar_32_27", "sar_8_9_pillarbox"])
def test_kept_pixels_carry_the_sar(corpus, tmp_path, case):
    truth = corpus[case]
    video, (clip,), files = _curate(truth, tmp_path, sample_aspect="keep")
    assert clip["keep"] and clip["sample_aspect"] == truth.sample_aspect and clip["pixels_resampled"] is False
    path = files[clip["path"]]
    assert _sar_of(path) == Fraction(*map(int, truth.sample_aspect.split(":")))
    x0, y0, x1, y1 = clip["crop"]                      # display pixels, mapped onto the coded ones
    got = read_frames(path)
    assert len(got) == truth.n_frames
    cx0 = round(x0 * 720 / truth.display_size[0])
    h, w = got[0].shape[:2]
    assert h == 480 and abs(w - (x1 - x0) * 720 / truth.display_size[0]) <= 2
    # shown at its SAR, the clip is as wide as the crop
    assert abs(display_size(w, h, _sar_of(path))[0] - (x1 - x0)) <= 3
    _assert_frames_are(got, [f[:, cx0:cx0 + w] for f in truth.coded_frames], 0)


def test_sar_rejects_unknown_mode(corpus, tmp_path):
    with pytest.raises(ValueError, match="sample_aspect"):
        _curate(corpus["sar_32_27"], tmp_path, sample_aspect="stretch")


# ------------------------------------------------------------------ the whole command

def test_curate_command_over_every_odd_file(corpus, tmp_path):
    src = next(iter(corpus.values())).path.parent
    rec = tmp_path / "cheap.yaml"
    import yaml
    rec.write_text(yaml.safe_dump(CHEAP))
    assert run_curate([str(src)], tmp_path / "ds", str(rec), 1, False, True) == 0
    videos = pq.read_table(tmp_path / "ds" / "videos.parquet").to_pylist()
    clips = pq.read_table(tmp_path / "ds" / "clips.parquet").to_pylist()
    assert len(videos) == len(corpus) and {v["status"] for v in videos} == {"ok"}
    by_name = {Path(v["path"]).name: v for v in videos}
    for truth in corpus.values():
        v = by_name[truth.path.name]
        rows = sorted((c for c in clips if c["video_id"] == v["video_id"]), key=lambda c: c["start_frame"])
        assert [(c["start_frame"], c["end_frame"]) for c in rows if c["keep"]] == truth.windows, truth.kind
        for c in rows:
            if c["keep"]:
                with av_open(tmp_path / "ds" / c["path"]) as f:
                    n = sum(1 for _ in f.decode(video=0))
                assert n == c["end_frame"] - c["start_frame"]
