"""Near-duplicate clips for export: one vector per clip, FAISS neighbours, clusters, the best copy kept.

Web corpora hold the same footage many times (re-encoded, resized, cropped, re-uploaded, cut
into overlapping windows). Training on copies wastes compute and leaks across splits, so the
export marks every copy with `duplicate_of` (the kept clip's id) and puts a cluster in one split.

Vectors (`ClipEmbedder`, backend `embedded`, no torch; measured in docs/dedup.md):

* frames are sampled every `step_s` seconds of the clip (at most `max_frames`, spread evenly
  when the clip is longer) and decoded at a 128-px long side;
* black letterbox / pillarbox bars are trimmed (rows/columns that stay dark in every sampled
  frame), so a re-upload with bars matches its source; every frame is then squeezed to a
  fixed square, so a resize or aspect change does not move the descriptor;
* per frame: the 6x6 lowest-frequency DCT of a 32x32 grey thumbnail (mean removed, weighted by
  a centre Gaussian so a crop of the border barely matters; DC dropped, coefficient (u, v)
  scaled by hypot(u, v) to flatten natural images' 1/f amplitude spectrum; L2-normalised, so brightness and
  contrast drop out), plus a 2x2 chroma layout (YCrCb Cr/Cb per cell minus the frame's mean
  chroma: a global tint or a brightness change does not move it) at weight 0.5;
* clip: the second moment of its frame descriptors, mean over frames of f f^T, upper triangle
  (off-diagonal entries x sqrt 2), L2-normalised. The inner product of two such vectors is
  the mean over frame pairs of (f.g)^2 normalised: high when *many* frames of one clip nearly
  equal frames of the other (copies, and windows of one shot sharing a part), low when only
  a moment coincides (the same photo in another camera motion). A plain mean of frame
  descriptors cannot tell those apart (measured: docs/dedup.md). 43-d frames give 946-d vectors.

Backend `reference`: CLIP or SigLIP image features (backends/identity.HFImageIdentity, loaded
from a local folder through backends/paths.find_model_dir), mean over the same sampled
frames, L2-normalised.

Search (`find_duplicates`): FAISS inner-product range search above the threshold, exact
(IndexFlatIP) up to `exact_max_clips` clips; above, spherical k-means (fixed seed) into
~sqrt(N) cells and an exact search inside each clip's own cell plus its `kmeans_probe`
nearest other cells (IndexIVFFlat with those centroids), as NeMo Curator's semantic dedup
(k-means, then pairwise within each cluster). Every candidate pair is re-scored in float64
and kept at >= threshold; pairs are unioned into clusters; the best member by
`keep_best_by` is kept. Clips are sorted by clip_id first, so the result does not depend
on the input order.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from ..recipe_keys import need

WHERE = "export.dedup"          # one recipe section holds the embedder's and the search's keys
EMBEDDED_VERSION = "dct6-chroma2-m2-v1"    # bump when anything below changes the vectors

DECODE_LONG_SIDE = 128        # ours: the thumbnails are 32 px; decoding smaller is the cheap part
REFERENCE_LONG_SIDE = 448     # ours: CLIP/SigLIP resize to 224-384 px themselves
THUMB = 32                    # ours: grey thumbnail side
DCT_K = 6                     # ours: 6x6 lowest DCT frequencies (35 AC coefficients), measured
DCT_GAMMA = 1.0               # ours: coefficient (u, v) scaled by hypot(u, v) ** 1.0, measured
CENTRE_SIGMA = 0.45           # ours: centre Gaussian, sigma as a fraction of the thumbnail side, measured
COLOUR_GRID = 2               # ours: chroma layout cells per side, measured
COLOUR_WEIGHT = 0.5           # ours: chroma block weight against the unit DCT block, measured
COLOUR_SCALE = 32.0           # ours: chroma offsets (0..~110) brought to the DCT block's range
BAR_LUMA = 24                 # ours: a bar row/column never gets brighter than this (of 255)
BAR_MAX = 0.3                 # ours: at most 30 % of a side is trimmed as bars
FRAME_DIM = (DCT_K * DCT_K - 1) + 2 * COLOUR_GRID * COLOUR_GRID
EMBEDDED_DIM = FRAME_DIM * (FRAME_DIM + 1) // 2


class ClipDecodeError(ValueError):
    """A clip file that cannot be opened or decoded (missing, empty, corrupt, no video stream,
    no frame). The export stage turns it into an error row: the clip gets no vector and is
    never merged."""

    def __init__(self, path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode clip {self.path}: {reason}")


# ------------------------------------------------------------------ frame sampling

def sample_frames(path: Path, step_s: float, max_frames: int, long_side: int) -> list[np.ndarray]:
    """RGB frames every `step_s` seconds from the first frame (at most `max_frames`, evenly spread
    over the clip when it is longer), scaled to `long_side`, rotation applied. Raises
    ClipDecodeError for anything that does not decode to at least one frame."""
    import av

    from ...media.decode import FrameClock, fit_size, frame_to_rgb, open_video, stream_fps
    p = Path(path)
    if not p.is_file():
        raise ClipDecodeError(p, "no such file")
    if p.stat().st_size == 0:
        raise ClipDecodeError(p, "empty file")
    try:
        container, stream = open_video(str(p))
    except (av.error.FFmpegError, IndexError, OSError, UnicodeDecodeError) as exc:
        raise ClipDecodeError(p, f"not a readable video ({type(exc).__name__}: {exc})") from None
    out: list[np.ndarray] = []
    try:
        with container:
            fps = stream_fps(stream)
            duration = _duration_hint(stream, container)
            step = float(step_s)
            if duration is not None and duration / step + 1 > max_frames:
                step = duration / max_frames
            clock = FrameClock(fps)
            half = 0.5 / fps
            size = None
            for frame in container.decode(stream):
                t = clock.push(frame)
                if t + half < len(out) * step:
                    continue
                rot = int(round(frame.rotation or 0)) % 360
                if size is None:
                    w, h = (frame.height, frame.width) if rot in (90, 270) else (frame.width, frame.height)
                    size = fit_size(w, h, long_side)
                out.append(frame_to_rgb(frame, size, rot))
                if len(out) >= max_frames:
                    break
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise ClipDecodeError(p, f"decoding failed after {len(out)} sampled frames "
                                 f"({type(exc).__name__}: {exc})") from None
    if not out:
        raise ClipDecodeError(p, "no decodable video frame")
    return out


def _duration_hint(stream, container) -> float | None:
    """The clip's length from its header (stream, else container), None when unknown."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000
    return None


# ------------------------------------------------------------------ the embedded descriptor

def trim_bars(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The frames without black bars: edge rows/columns whose brightest pixel over all frames
    stays <= BAR_LUMA, up to BAR_MAX of a side. Bars come in pairs (letterbox: top and bottom,
    pillarbox: left and right), so an axis is trimmed only when both of its edges are dark by
    about the same amount; a dark object at one edge, or a dark picture, is left alone."""
    grey = np.max([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames], axis=0)
    y0, y1 = _bar_span(grey.max(axis=1) > BAR_LUMA)
    x0, x1 = _bar_span(grey.max(axis=0) > BAR_LUMA)
    if (y0, y1, x0, x1) == (0, grey.shape[0], 0, grey.shape[1]):
        return list(frames)
    return [f[y0:y1, x0:x1] for f in frames]


def _bar_span(bright: np.ndarray) -> tuple[int, int]:
    """[start, end) of the picture along one axis: the dark runs at both ends cut off when they
    look like a pair of bars (both present, within 2 % + 2 px of each other, under BAR_MAX)."""
    n = len(bright)
    cap = int(BAR_MAX * n)
    a = 0
    while a < n and not bright[a]:
        a += 1
    b = 0
    while b < n - a and not bright[n - 1 - b]:
        b += 1
    if min(a, b) == 0 or max(a, b) > cap or abs(a - b) > 0.02 * n + 2:
        return 0, n
    return a, n - b


def _centre_window() -> np.ndarray:
    c = (THUMB - 1) / 2.0
    y, x = np.mgrid[0:THUMB, 0:THUMB]
    s = THUMB * CENTRE_SIGMA
    return np.exp(-(((x - c) / s) ** 2 + ((y - c) / s) ** 2) / 2.0)


_WINDOW = _centre_window()
_FREQ_WEIGHT = np.hypot(*np.mgrid[0:DCT_K, 0:DCT_K]) ** DCT_GAMMA
_TRIU = np.triu_indices(FRAME_DIM)
_TRIU_WEIGHT = np.where(_TRIU[0] == _TRIU[1], 1.0, math.sqrt(2.0))


def frame_descriptor(rgb: np.ndarray) -> np.ndarray:
    """FRAME_DIM float64 unit vector of one (bar-trimmed) frame: DCT block ++ chroma layout;
    zeros for a flat frame (one colour: nothing to describe)."""
    rgb = np.ascontiguousarray(rgb)
    grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    g = grey.astype(np.float64)
    g = (g - g.mean()) * _WINDOW
    dct = (cv2.dct(g)[:DCT_K, :DCT_K] * _FREQ_WEIGHT).ravel()[1:]
    n = float(np.linalg.norm(dct))
    dct = dct / n if n > 1e-9 else np.zeros_like(dct)
    ycc = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb), (COLOUR_GRID, COLOUR_GRID), interpolation=cv2.INTER_AREA)
    chroma = ycc[..., 1:].reshape(-1, 2).astype(np.float64) - 128.0
    chroma = (chroma - chroma.mean(axis=0)).ravel() * (COLOUR_WEIGHT / COLOUR_SCALE)
    v = np.concatenate([dct, chroma])
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


def second_moment_vector(descriptors: np.ndarray) -> np.ndarray:
    """L2-normalised upper triangle of mean(f f^T) (off-diagonals x sqrt 2, so dot products equal
    Frobenius products): the clip vector; zeros when every frame descriptor is zero."""
    d = np.asarray(descriptors, np.float64)
    m = d.T @ d / max(1, len(d))
    v = m[_TRIU] * _TRIU_WEIGHT
    n = float(np.linalg.norm(v))
    return (v / n if n > 1e-12 else np.zeros_like(v)).astype(np.float32)


# ------------------------------------------------------------------ the embedder

class ClipEmbedder:
    """One float32 unit vector per clip (`embedded` classical descriptor, or `reference`
    CLIP/SigLIP mean image features). `setup()` loads once per worker; `config()` is what
    decides the vectors (stamp caches and journals with it)."""

    def __init__(self, cfg: Mapping) -> None:
        self.backend = str(need(cfg, "backend", WHERE))
        if self.backend not in ("embedded", "reference"):
            raise ValueError(f"{WHERE}.backend must be 'embedded' or 'reference', not {self.backend!r}")
        self.step_s = float(need(cfg, "step_s", WHERE))
        self.max_frames = int(need(cfg, "max_frames", WHERE))
        if self.step_s <= 0 or self.max_frames < 1:
            raise ValueError(f"{WHERE}: step_s must be > 0 and max_frames >= 1")
        if self.backend == "reference":
            self.model_kind = str(need(cfg, "reference_kind", WHERE))
            if self.model_kind not in ("clip", "siglip"):
                raise ValueError(f"{WHERE}.reference_kind must be 'clip' or 'siglip', not {self.model_kind!r}")
            self.model = need(cfg, "reference_model", WHERE)
            self.device = str(need(cfg, "device", WHERE))
            self.batch_size = int(need(cfg, "batch_size", WHERE))
        self._model = None

    def config(self) -> dict:
        out = {"backend": self.backend, "step_s": self.step_s, "max_frames": self.max_frames}
        if self.backend == "embedded":
            out.update(version=EMBEDDED_VERSION, dim=EMBEDDED_DIM)
        else:
            out.update(version="mean-image-features-v1", kind=self.model_kind,
                       model=str(self.model) if self.model else None)
        return out

    def setup(self) -> None:
        """Load the reference model (BackendUnavailable / ModelNotFound naming the model, every
        folder searched and how to provide it, when absent); nothing to load for `embedded`."""
        if self.backend == "reference" and self._model is None:
            from ...backends.errors import ModelNotFound
            from ...backends.identity import HFImageIdentity
            try:
                self._model = HFImageIdentity(self.model_kind, self.model or None, device=self.device,
                                              batch_size=self.batch_size)
            except ModelNotFound as e:
                raise ModelNotFound(f"{e.model} for near-duplicate search", e.looked_in,
                                    f"{e.how_to} Or set {WHERE}.reference_model to a local {self.model_kind} "
                                    f"folder, or {WHERE}.backend: embedded (no model needed).") from None

    def embed(self, path: Path) -> np.ndarray:
        """The clip's vector from its file; ClipDecodeError when it does not decode."""
        long_side = DECODE_LONG_SIDE if self.backend == "embedded" else REFERENCE_LONG_SIDE
        return self.embed_frames(sample_frames(Path(path), self.step_s, self.max_frames, long_side))

    def embed_frames(self, frames: list[np.ndarray]) -> np.ndarray:
        """The vector of frames already sampled from a clip (RGB uint8, any size); to match
        `embed(path)`, sample them every `step_s` seconds as it does."""
        frames = [np.asarray(f) for f in frames if f is not None and np.asarray(f).size]
        if not frames:
            raise ValueError("embed_frames: no frames")
        if self.backend == "embedded":
            frames = trim_bars([_as_rgb(f) for f in frames])
            return second_moment_vector(np.stack([frame_descriptor(f) for f in frames]))
        self.setup()
        feats = self._model.embed(trim_bars([_as_rgb(f) for f in frames])).astype(np.float64)
        feats = feats[np.all(np.isfinite(feats), axis=1)]
        if not len(feats):
            return np.zeros(self._model.dim, np.float32)
        v = feats.mean(axis=0)
        n = float(np.linalg.norm(v))
        return (v / n if n > 1e-12 else np.zeros_like(v)).astype(np.float32)


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


# ------------------------------------------------------------------ clusters

def dedup_threshold(cfg: Mapping) -> float:
    """`threshold` as a number, or per backend ({embedded: .., reference: ..}) picked by the
    section's `backend` (the vectors' scale depends on the backend)."""
    thr = need(cfg, "threshold", WHERE)
    if isinstance(thr, Mapping):
        thr = need(thr, str(need(cfg, "backend", WHERE)), f"{WHERE}.threshold")
    return float(thr)


def find_duplicates(clips: list[dict], vectors: np.ndarray, cfg: Mapping) -> dict[str, dict]:
    """For every clip: {duplicate_of: the kept clip_id or None, cluster: id from the member ids,
    cluster_size, similarity: cosine to the kept clip (None for the kept one)}, keyed and
    ordered by clip_id. Rows of `vectors` follow `clips`; a row that is not a finite non-zero
    vector (a clip that failed to embed) is never merged."""
    threshold = dedup_threshold(cfg)
    rank_keys = list(need(cfg, "keep_best_by", WHERE))
    exact_max = int(need(cfg, "exact_max_clips", WHERE))
    ids = [str(c["clip_id"]) for c in clips]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise ValueError(f"find_duplicates: clip_id must be unique (repeated: {dup})")
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != len(clips):
        raise ValueError(f"find_duplicates: vectors must be (n_clips={len(clips)}, dim), got {x.shape}")
    order = sorted(range(len(ids)), key=ids.__getitem__)      # canonical order: input order cannot matter
    ids = [ids[i] for i in order]
    rows = [clips[i] for i in order]
    x, valid = _unit_rows(x[order])
    pairs = _candidate_pairs(x, valid, threshold, exact_max, cfg)
    x64 = x.astype(np.float64)
    parent = list(range(len(ids)))
    for i, j in pairs:
        if float(x64[i] @ x64[j]) >= threshold:
            _union(parent, i, j)
    groups: dict[int, list[int]] = {}
    for i in range(len(ids)):
        groups.setdefault(_find(parent, i), []).append(i)
    out: dict[str, dict] = {}
    for members in groups.values():
        kept = min(members, key=lambda i: _rank_key(rows[i], ids[i], rank_keys))
        cluster = cluster_id(ids[i] for i in members)
        for i in members:
            dup = i != kept
            out[ids[i]] = {"duplicate_of": ids[kept] if dup else None, "cluster": cluster,
                           "cluster_size": len(members),
                           "similarity": round(float(x64[i] @ x64[kept]), 6) if dup else None}
    return dict(sorted(out.items()))


def cluster_id(member_ids) -> str:
    """Stable id of a cluster: a hash of its sorted member clip ids (not of the run order)."""
    h = hashlib.blake2b("\n".join(sorted(member_ids)).encode("utf-8"), digest_size=8)
    return "dup-" + h.hexdigest()


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.array(x, dtype=np.float32, copy=True)
    finite = np.all(np.isfinite(x), axis=1)
    x[~finite] = 0.0
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    valid = finite & (norms > 1e-6)
    x[valid] /= norms[valid, None].astype(np.float32)
    x[~valid] = 0.0
    return np.ascontiguousarray(x), valid


def _candidate_pairs(x: np.ndarray, valid: np.ndarray, threshold: float, exact_max: int,
                     cfg: Mapping) -> list[tuple[int, int]]:
    """Index pairs (i < j) FAISS reports above the threshold (with a float32 margin; the caller
    re-scores them in float64)."""
    import faiss
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return []
    xs = np.ascontiguousarray(x[idx])
    radius = threshold - 1e-4
    if len(idx) <= exact_max or kmeans_cells(len(idx), cfg) == 1:
        index = faiss.IndexFlatIP(xs.shape[1])
        index.add(xs)
    else:
        index = _kmeans_index(xs, cfg)
    lims, _, found = index.range_search(xs, radius)
    pairs = set()
    for q in range(len(idx)):
        for r in found[lims[q]:lims[q + 1]]:
            a, b = idx[q], idx[int(r)]
            if a != b:
                pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


def kmeans_cells(n: int, cfg: Mapping) -> int:
    """`kmeans_cells`, or ~sqrt(n) when null, at most n // 39 (FAISS wants >= 39 points a cell)."""
    cells = need(cfg, "kmeans_cells", WHERE)
    if cells is None:
        cells = max(1, min(int(round(math.sqrt(n))), n // 39))
    return max(1, min(int(cells), n))


def _kmeans_index(xs: np.ndarray, cfg: Mapping):
    """IndexIVFFlat over spherical k-means cells (fixed seed); nprobe = own cell + kmeans_probe."""
    import faiss
    cells = kmeans_cells(len(xs), cfg)
    km = faiss.Kmeans(xs.shape[1], cells, niter=int(need(cfg, "kmeans_iter", WHERE)),
                      seed=int(need(cfg, "seed", WHERE)), spherical=True, verbose=False)
    km.train(xs)
    quantizer = faiss.IndexFlatIP(xs.shape[1])
    quantizer.add(np.ascontiguousarray(km.centroids, dtype=np.float32))
    index = faiss.IndexIVFFlat(quantizer, xs.shape[1], cells, faiss.METRIC_INNER_PRODUCT)
    index.add(xs)
    index.nprobe = min(cells, 1 + int(need(cfg, "kmeans_probe", WHERE)))
    return index                              # (FAISS' wrapper keeps the quantizer alive with it)


def _rank_key(row: Mapping, clip_id: str, keys: list[str]) -> tuple:
    """Sort key, smallest = best: each key descending (higher is better; `-key`: lower is better,
    e.g. -score_brisque), None last, then clip_id ascending. `resolution` is width x height; any
    other key is read from the row."""
    out = []
    for k in keys:
        sign = -1.0
        if k.startswith("-"):
            k, sign = k[1:], 1.0
        if k == "resolution":
            w, h = row.get("width"), row.get("height")
            v = float(w) * float(h) if w is not None and h is not None else None
        else:
            v = row.get(k)
        v = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        out.append((1, 0.0) if v is None else (0, sign * v))
    out.append(clip_id)
    return tuple(out)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _union(parent: list[int], a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


__all__ = ["ClipDecodeError", "ClipEmbedder", "EMBEDDED_DIM", "cluster_id", "dedup_threshold", "find_duplicates",
           "frame_descriptor", "kmeans_cells", "sample_frames", "second_moment_vector", "trim_bars"]
