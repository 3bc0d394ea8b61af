"""OpenS2V-Eval normalisation, weights and total score.

Everything here is pure arithmetic over numbers, so it is the part of the benchmark that
must agree with the published leaderboard exactly. Constants follow the official
`eval/merge_result.py` (v1.1) and `eval/v1.0_backup/merge_result.py` (v1.0) of
OpenS2V-Nexus (Yuan et al. 2025, arXiv:2505.20292); see docs/benchmark.md.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

VERSIONS = ("v1.1", "v1.0")
DOMAINS = ("open", "human", "single")

# Total-score weights. OpenS2V-Nexus merge_result.py: Open and Single domain share one set,
# Human domain drops NexusScore. v1.0 had one "motion" column (the Farneback amplitude) and
# no smoothness.
WEIGHTS: dict[str, dict[str, dict[str, float]]] = {
    "v1.1": {
        "open": {"aesthetic": 0.16, "motion_smoothness": 0.06, "motion_amplitude": 0.02, "facesim": 0.20,
                 "gme": 0.12, "nexus": 0.20, "natural": 0.24},
        "human": {"aesthetic": 0.18, "motion_smoothness": 0.09, "motion_amplitude": 0.03, "facesim": 0.25,
                  "gme": 0.15, "natural": 0.30},
    },
    "v1.0": {
        "open": {"aesthetic": 0.12, "motion": 0.12, "facesim": 0.20, "gme": 0.12, "nexus": 0.20, "natural": 0.24},
        "human": {"aesthetic": 0.15, "motion": 0.15, "facesim": 0.25, "gme": 0.15, "natural": 0.30},
    },
}
for _v in WEIGHTS.values():
    _v["single"] = dict(_v["open"])

# Raw -> [0, 1] ranges of merge_result.py: (lo, hi); values are clipped to the range first.
# aesthetic: LAION predictor scores live in about [4, 7] on generated video.
# nexus: the official upper bound is 0.05 (the score is divided by the number of frames with a
# detection, so it is small); zero values are dropped before averaging.
RANGES: dict[str, tuple[float, float]] = {
    "aesthetic": (4.0, 7.0),
    "motion_amplitude": (0.0, 1.0),
    "motion_smoothness": (0.0, 1.0),
    "facesim": (0.0, 1.0),
    "gme": (0.0, 1.0),
    "nexus": (0.0, 0.05),
    "natural": (1.0, 5.0),
}
# merge_result.py takes abs() of both motion values before clipping; the others are clipped
# only at the top for [0, 1] metrics (a negative cosine is kept, as in the original).
_ABS_FIRST = {"motion_amplitude", "motion_smoothness"}
_CLIP_LOW = {"aesthetic", "natural"}
# merge_result.py: `if "nexus_score" in value and value["nexus_score"] != 0` -- zeros are "no detection".
_DROP_ZEROS = {"nexus"}


class ScoringError(ValueError):
    """A total or a normalisation was asked for with unusable inputs."""


def canonical_domain(domain: str) -> str:
    """'open' | 'human' | 'single', accepting the official spellings ('Open-Domain', ...)."""
    d = str(domain).strip().lower().replace("_", "-")
    if d.endswith("-domain"):
        d = d[: -len("-domain")]
    if d not in DOMAINS:
        raise ScoringError(f"unknown domain {domain!r}; expected one of {', '.join(DOMAINS)} "
                           "(or Open-Domain / Human-Domain / Single-Domain)")
    return d


def canonical_version(version: str) -> str:
    v = str(version).strip().lower()
    if not v.startswith("v"):
        v = "v" + v
    if v not in VERSIONS:
        raise ScoringError(f"unknown OpenS2V-Eval version {version!r}; expected one of {', '.join(VERSIONS)}")
    return v


def weights(domain: str, version: str = "v1.1") -> dict[str, float]:
    """The total-score weights of one domain and version (they sum to 1)."""
    return dict(WEIGHTS[canonical_version(version)][canonical_domain(domain)])


def required_metrics(domain: str, version: str = "v1.1") -> tuple[str, ...]:
    return tuple(weights(domain, version))


def _check_value(key: str, value: object) -> float:
    if value is None:
        raise ScoringError(f"metric {key!r} is missing (None); compute it or use partial_total()")
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ScoringError(f"metric {key!r} is not a number: {value!r}") from None
    if math.isnan(x):
        raise ScoringError(f"metric {key!r} is NaN")
    if not -1e-9 <= x <= 1 + 1e-9:
        raise ScoringError(f"metric {key!r}={x} is outside [0, 1]; pass normalised values (see normalize())")
    return x


def total_score(metrics: Mapping[str, float], domain: str, version: str = "v1.1") -> float:
    """Weighted total in [0, 1] from normalised metrics (the leaderboard's TotalScore / 100).

    Every metric the domain weighs must be present; extra keys (e.g. `nexus` for the Human
    domain) are ignored, like the original. Raises ScoringError naming what is missing.
    """
    w = weights(domain, version)
    missing = [k for k in w if k not in metrics]
    if missing:
        hint = ""
        if canonical_version(version) == "v1.0" and "motion" in missing and "motion_amplitude" in metrics:
            hint = " (v1.0 calls the motion amplitude column `motion`)"
        elif canonical_version(version) == "v1.1" and "motion" in metrics:
            hint = " (v1.1 splits `motion` into motion_smoothness and motion_amplitude)"
        raise ScoringError(f"missing metric(s) for the {canonical_domain(domain)} domain, {canonical_version(version)}: "
                           f"{', '.join(missing)}{hint}")
    return float(sum(wk * _check_value(k, metrics[k]) for k, wk in w.items()))


def partial_total(metrics: Mapping[str, float | None], domain: str, version: str = "v1.1") -> dict:
    """Weighted sum over the metrics that are present, *not* re-weighted.

    Returns {"total", "available_weight", "missing", "partial"}: `total` is the sum of
    weight * value over available metrics (so it is a lower bound of the full total when
    values are in [0, 1]); `available_weight` says how much of the 1.0 it covers.
    """
    w = weights(domain, version)
    got = {k: _check_value(k, metrics[k]) for k in w if metrics.get(k) is not None}
    missing = [k for k in w if k not in got]
    return {
        "total": float(sum(w[k] * v for k, v in got.items())),
        "available_weight": round(float(sum(w[k] for k in got)), 10),
        "missing": missing,
        "partial": bool(missing),
    }


# ----------------------------------------------------------------------------- normalisation

def normalize_value(metric: str, raw: float) -> float:
    """One raw value -> [0, 1] with the official clip-then-rescale of merge_result.py."""
    if metric == "motion":
        metric = "motion_amplitude"
    if metric not in RANGES:
        raise ScoringError(f"no normalisation for metric {metric!r}; known: {', '.join(RANGES)}")
    lo, hi = RANGES[metric]
    x = float(raw)
    if math.isnan(x):
        raise ScoringError(f"raw {metric} is NaN")
    if metric in _ABS_FIRST:
        x = abs(x)
    x = min(x, hi)
    if metric in _CLIP_LOW:
        x = max(x, lo)
    return (x - lo) / (hi - lo)


def normalize(raw: Mapping[str, float | None]) -> dict[str, float]:
    """Normalise per-metric *means* of raw values (clip the mean, then rescale).

    This is the quick path when only averages are known (e.g. a paper table). The official
    pipeline clips each video first and averages afterwards -- see normalize_per_video();
    the two differ whenever some videos fall outside a metric's range (docs/benchmark.md).
    `motion` (v1.0 name) is accepted and normalised like motion_amplitude. None values are
    left out of the result.
    """
    out: dict[str, float] = {}
    for k, v in raw.items():
        if v is None:
            continue
        out[k] = normalize_value(k, v)
    return out


def normalize_per_video(raw_rows: Iterable[Mapping[str, object]]) -> dict[str, float]:
    """The official aggregation: clip and rescale every video's raw value, then average.

    `raw_rows` holds one mapping per video ({metric: raw value or None}, other keys such as
    `id` ignored). A metric's mean is over the videos that have it (FaceSim exists only for
    face/human ids); NexusScore zeros are dropped first, as in merge_result.py. Metrics with
    no value at all are absent from the result (the original reported 0 for them).
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in raw_rows:
        for k, v in row.items():
            key = "motion_amplitude" if k == "motion" else k
            if key not in RANGES or v is None:
                continue
            x = float(v)  # type: ignore[arg-type]
            if math.isnan(x):
                continue
            if key in _DROP_ZEROS and x == 0:
                continue
            sums[k] = sums.get(k, 0.0) + normalize_value(key, x)
            counts[k] = counts.get(k, 0) + 1
    return {k: sums[k] / counts[k] for k in sums}


def metrics_for_version(normalised: Mapping[str, float | None], version: str) -> dict[str, float | None]:
    """Rename keys between versions: v1.0's `motion` is the v1.1 `motion_amplitude`."""
    v = canonical_version(version)
    out = dict(normalised)
    if v == "v1.0" and "motion" not in out and "motion_amplitude" in out:
        out["motion"] = out["motion_amplitude"]
    return out


# ----------------------------------------------------------------------------- smoothness rule

# OpenS2V-Nexus get_motion_smoothness.py: adjacent Q-Align quality scores that differ by more
# than 0.025 mark both frames as artifacts.
SMOOTHNESS_THRESHOLD = 0.025


def artifact_frames(scores: Sequence[float], thr: float = SMOOTHNESS_THRESHOLD) -> np.ndarray:
    """Indices of frames involved in a quality jump > thr (the frame and its successor)."""
    s = np.asarray(list(scores), dtype=np.float64)
    if s.ndim != 1:
        raise ScoringError("quality scores must be a 1-D sequence")
    if s.size < 2:
        return np.zeros(0, dtype=int)
    jumps = np.nonzero(np.abs(np.diff(s)) > thr)[0]
    return np.unique(np.concatenate([jumps, jumps + 1]))


def smoothness_from_quality(scores: Sequence[float], thr: float = SMOOTHNESS_THRESHOLD) -> float:
    """MotionSmoothness of one video from its per-frame quality scores.

    1 - (#artifact frames / #frames), where a frame is an artifact when its quality differs
    from a neighbour's by more than `thr`. A single frame is perfectly smooth; an empty
    sequence is an error (the original divides by zero).
    """
    s = list(scores)
    if not s:
        raise ScoringError("no quality scores: cannot compute motion smoothness of an empty video")
    if any(math.isnan(float(x)) for x in s):
        raise ScoringError("quality scores contain NaN")
    return 1.0 - len(artifact_frames(s, thr)) / len(s)
