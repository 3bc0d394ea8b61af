"""read_frames against the truth: the stamped index of every frame, the repo's own decode, the
crop geometry on colour bands, the seek and the from-the-start paths, bad files, no leaked fds."""
from __future__ import annotations

import os

import numpy as np
import pytest

import s2vforge.data.video as video
from loader_media import A, BANDS, C, read_index
from s2vforge.data.video import ClipReadError, read_frames


def _clip(export_dir, cid):
    root, _ = export_dir
    return root / "clips" / f"{cid}.mp4"


@pytest.mark.parametrize("indices", [[0, 3, 6, 9], [13, 14, 30, 59], [59], [47, 12, 12, 0], [24, 36, 48]])
def test_frames_are_the_decoded_frames_at_those_indices(export_dir, indices):
    _, truth = export_dir
    frames, read = read_frames(_clip(export_dir, A), indices, None)
    assert read.tolist() == indices
    assert [read_index(f) for f in frames] == indices                       # the pixels say which frame
    for f, i in zip(frames, indices):
        assert np.array_equal(f, truth["decoded"][A][i])                     # = media.decode.iter_frames


def test_seek_path_is_taken_and_agrees_with_a_decode_from_the_start(export_dir, monkeypatch):
    calls = []
    real = video._decode

    def spy(source, wanted, out_hw, threads, named, skip_nonref):
        calls.append(named)
        return real(source, wanted, out_hw, threads, named, skip_nonref)

    monkeypatch.setattr(video, "_decode", spy)
    for first in range(1, 58, 5):
        idx = [first, first + 1, min(59, first + 2)]
        seek_frames, _ = read_frames(_clip(export_dir, A), idx, (32, 48))
        plain, _ = read_frames(_clip(export_dir, A), idx, (32, 48), seek=False)
        assert np.array_equal(seek_frames, plain)
    assert calls == [True, False] * (len(calls) // 2)                        # the pts path held on every read


@pytest.mark.parametrize("gap_at, jitter", [(30, 0.0), (None, 0.4)])
def test_pts_that_do_not_name_frames_fall_back_to_counting(tmp_path, monkeypatch, gap_at, jitter):
    """A VFR clip (a 2.5-frame gap, or 0.4-frame jitter): pts-derived names are wrong, so the
    reader counts frames from the start; the stamped indices prove which frames came back."""
    from loader_media import barcode_frames
    from s2vforge.corpus.synth import write_video

    frames = barcode_frames("astronaut", 60, (96, 64))
    times = []
    t = 0.0
    for i in range(60):
        if gap_at is not None and i == gap_at:
            t += 1.5 / 25
        times.append(t + (jitter / 25 if jitter and i % 7 == 3 else 0.0))
        t += 1 / 25
    path = tmp_path / "vfr.mp4"
    write_video(path, frames, fps=25, times=times)
    seeks = []
    real = video._decode
    monkeypatch.setattr(video, "_decode", lambda *a: seeks.append(a[4]) or real(*a))
    got, read = read_frames(path, [38, 41, 44], None)
    assert [read_index(f) for f in got] == [38, 41, 44] == read.tolist()
    assert seeks == [True, False]                                            # tried the seek, then counted


def test_a_clip_whose_first_frame_is_not_at_zero(tmp_path):
    """pts starting at frame 7 (a trimmed stream): names are relative to start_time."""
    import av
    from loader_media import barcode_frames

    frames = barcode_frames("coffee", 40, (96, 64))
    path = tmp_path / "offset.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        s.options = {"g": "10", "crf": "16", "preset": "veryfast", "threads": "1"}
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i + 7
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    got, read = read_frames(path, [0, 21, 33], None)
    assert [read_index(f) for f in got] == [0, 21, 33]


def test_a_table_that_overstates_n_frames_gets_the_last_frame_and_says_so(export_dir):
    frames, read = read_frames(_clip(export_dir, C), [4, 6, 8, 10], None)      # C has 8 frames: 0..7
    assert read.tolist() == [4, 6, 7, 7]
    assert [read_index(f) for f in frames] == [4, 6, 7, 7]


def test_cover_crop_on_colour_bands(export_dir):
    # 96x64 frames: red x<32, green 32..63, blue >= 64. Into 32x32: scale 1/2 (48x32), keep x 8..39
    # of the scaled frame = source x 16..79: red 16..31 -> out 0..7, green -> 8..23, blue 64..79 -> 24..31
    frames, _ = read_frames(_clip(export_dir, BANDS), [0], (32, 32))
    f = frames[0].astype(int)
    assert f.shape == (32, 32, 3)
    assert f[16, 3].argmax() == 0 and f[16, 16].argmax() == 1 and f[16, 28].argmax() == 2
    # into 64x32 (portrait of a landscape frame): height decides, scale 1 -> source x 32..63 only (green)
    frames, _ = read_frames(_clip(export_dir, BANDS), [0], (64, 32))
    assert frames.shape == (1, 64, 32, 3)
    assert (frames[0, :, 2:-2].astype(int).argmax(axis=-1) == 1).all()
    # a plain downscale keeps all three bands in their thirds
    frames, _ = read_frames(_clip(export_dir, BANDS), [0], (32, 48))
    f = frames[0].astype(int)
    assert [f[16, x].argmax() for x in (6, 24, 42)] == [0, 1, 2]


def test_bytes_source_reads_like_the_file(export_dir):
    path = _clip(export_dir, A)
    a, ra = read_frames(path, [5, 10], (32, 48))
    b, rb = read_frames(path.read_bytes(), [5, 10], (32, 48))
    assert np.array_equal(a, b) and ra.tolist() == rb.tolist()


def test_bad_files_raise_clip_read_error_naming_the_file(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 50)
    with pytest.raises(ClipReadError, match="junk.mp4"):
        read_frames(junk, [0], None)
    with pytest.raises(ClipReadError):
        read_frames(b"\x00" * 100, [0], None)
    with pytest.raises(ValueError):
        read_frames(junk, [], None)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_file_descriptor_is_left_open(export_dir, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    read_frames(_clip(export_dir, A), [3], None)
    before = _fds()
    for k in range(60):
        read_frames(_clip(export_dir, A), [k % 50, k % 50 + 5], (32, 48))
        with pytest.raises(ClipReadError):
            read_frames(junk, [0], None)
    assert _fds() == before


def test_display_rotation_is_applied_like_the_rest_of_the_repo(tmp_path):
    from loader_media import barcode_frames
    from s2vforge.corpus.synth import write_video
    from s2vforge.media.decode import iter_frames

    path = tmp_path / "rot.mp4"
    write_video(path, barcode_frames("rocket", 20, (96, 64)), fps=25, rotation=90)
    truth = [rgb for _, _, rgb in iter_frames(path)]
    assert truth[0].shape == (96, 64, 3)                                     # displayed portrait
    got, _ = read_frames(path, [2, 9], None)
    assert got.shape == (2, 96, 64, 3) and np.array_equal(got[0], truth[2]) and np.array_equal(got[1], truth[9])
    scaled, _ = read_frames(path, [2], (48, 32))
    assert scaled.shape == (1, 48, 32, 3)
    assert np.abs(scaled[0].astype(int) - truth[2][::2, ::2].astype(int)).mean() < 12


def test_skipping_unneeded_non_reference_frames_changes_no_pixel(export_dir, monkeypatch):
    """Strided reads decode fewer frames with skip_nonref and give the same pixels as decoding
    every frame, and as counting frames from the start."""
    yielded = []
    real = video._named_frames

    def counting(*a, **kw):
        for item in real(*a, **kw):
            yielded.append(item[0])
            yield item

    monkeypatch.setattr(video, "_named_frames", counting)
    path = _clip(export_dir, A)
    for start, stride in [(0, 3), (7, 3), (13, 4), (2, 2), (30, 5)]:
        idx = list(range(start, min(60, start + 8 * stride), stride))
        yielded.clear()
        fast, read = read_frames(path, idx, None)
        n_fast = len(yielded)
        yielded.clear()
        full, _ = read_frames(path, idx, None, skip_nonref=False)
        n_full = len(yielded)
        plain, _ = read_frames(path, idx, None, seek=False)
        assert read.tolist() == idx and [read_index(f) for f in fast] == idx
        assert np.array_equal(fast, full) and np.array_equal(fast, plain)
        assert n_fast < n_full, (start, stride, n_fast, n_full)                # frames really were skipped
