"""Totals, weights, normalisation and the smoothness rule against the published numbers."""
from __future__ import annotations

import csv

import pytest

from s2vforge.bench.opens2v import (
    ScoringError,
    normalize,
    normalize_per_video,
    partial_total,
    smoothness_from_quality,
    total_score,
    weights,
)
from s2vforge.bench.opens2v.scoring import artifact_frames, metrics_for_version

COLS = {"Aesthetics↑": "aesthetic", "MotionSmoothness↑": "motion_smoothness", "MotionAmplitude↑": "motion_amplitude",
        "FaceSim↑": "facesim", "GmeScore↑": "gme", "NexusScore↑": "nexus", "NaturalScore↑": "natural"}


def _published_rows(path):
    with open(path, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            yield row["Model"], float(row["TotalScore↑"].rstrip("%")), \
                {k: float(row[c].rstrip("%")) / 100 for c, k in COLS.items()}


def test_every_published_open_domain_total_is_reproduced(published_csv):
    rows = list(_published_rows(published_csv))
    assert len(rows) == 11
    for model, published, metrics in rows:
        ours = total_score(metrics, "open", "v1.1") * 100
        assert abs(ours - published) <= 0.015, (model, ours, published)


def test_swapping_motion_columns_breaks_the_totals(published_csv):
    """The check above has teeth: the swapped reading misses every row by > 1.5 points."""
    for model, published, m in _published_rows(published_csv):
        swapped = dict(m, motion_smoothness=m["motion_amplitude"], motion_amplitude=m["motion_smoothness"])
        assert abs(total_score(swapped, "open") * 100 - published) > 1.5, model


@pytest.mark.parametrize("version,domain", [(v, d) for v in ("v1.1", "v1.0") for d in ("open", "human", "single")])
def test_weights_sum_to_one(version, domain):
    assert sum(weights(domain, version).values()) == pytest.approx(1.0)


def test_weights_match_the_reference_values():
    assert weights("open") == {"aesthetic": 0.16, "motion_smoothness": 0.06, "motion_amplitude": 0.02,
                               "facesim": 0.20, "gme": 0.12, "nexus": 0.20, "natural": 0.24}
    assert weights("single") == weights("open")
    assert "nexus" not in weights("human")
    assert weights("human", "v1.0") == {"aesthetic": 0.15, "motion": 0.15, "facesim": 0.25, "gme": 0.15,
                                        "natural": 0.30}
    assert weights("Open-Domain") == weights("open")


def test_total_extremes_and_human_ignores_nexus():
    ones = {k: 1.0 for k in weights("open")}
    assert total_score(ones, "open") == pytest.approx(1.0)
    assert total_score({k: 0.0 for k in ones}, "single") == 0.0
    human = {k: 0.5 for k in weights("human")}
    assert total_score({**human, "nexus": 1.0}, "human") == pytest.approx(0.5)


def test_total_errors_are_clear():
    full = {k: 0.5 for k in weights("open")}
    with pytest.raises(ScoringError, match="nexus"):
        total_score({k: v for k, v in full.items() if k != "nexus"}, "open")
    with pytest.raises(ScoringError, match="unknown domain"):
        total_score(full, "cartoon")
    with pytest.raises(ScoringError, match="version"):
        total_score(full, "open", "v2")
    with pytest.raises(ScoringError, match=r"v1.0 calls .*`motion`"):
        total_score(full, "open", "v1.0")
    with pytest.raises(ScoringError, match="outside"):
        total_score(dict(full, natural=3.0), "open")     # raw, not normalised
    with pytest.raises(ScoringError, match="missing"):
        total_score(dict(full, gme=None), "open")


def test_v10_total_uses_motion_alias():
    m = {"aesthetic": 0.45, "motion_amplitude": 0.2, "facesim": 0.3, "gme": 0.7, "nexus": 0.4, "natural": 0.6}
    expected = 0.12 * 0.45 + 0.12 * 0.2 + 0.2 * 0.3 + 0.12 * 0.7 + 0.2 * 0.4 + 0.24 * 0.6
    assert total_score(metrics_for_version(m, "v1.0"), "open", "v1.0") == pytest.approx(expected)


def test_partial_total_is_not_reweighted():
    m = {k: 1.0 for k in weights("open")}
    del m["natural"], m["nexus"]
    p = partial_total(m, "open")
    assert p["partial"] and set(p["missing"]) == {"natural", "nexus"}
    assert p["available_weight"] == pytest.approx(0.56)
    assert p["total"] == pytest.approx(0.56)        # not 1.0: no silent re-weighting


def test_normalize_clips_and_rescales():
    n = normalize({"aesthetic": 5.5, "motion_amplitude": -0.3, "motion_smoothness": 1.2, "facesim": 1.3,
                   "gme": 0.67, "nexus": 0.08, "natural": 0.5, "motion": 2.0})
    assert n["aesthetic"] == pytest.approx(0.5)
    assert n["motion_amplitude"] == pytest.approx(0.3)      # abs first
    assert n["motion_smoothness"] == 1.0
    assert n["facesim"] == 1.0
    assert n["gme"] == pytest.approx(0.67)
    assert n["nexus"] == 1.0                                 # min(x, 0.05) / 0.05
    assert n["natural"] == 0.0                               # clipped at 1
    assert n["motion"] == 1.0
    assert normalize({"aesthetic": 3.0})["aesthetic"] == 0.0
    assert normalize({"aesthetic": None}) == {}
    with pytest.raises(ScoringError, match="no normalisation"):
        normalize({"sharpness": 0.3})


def test_per_video_normalisation_differs_from_normalising_the_mean():
    rows = [{"id": "a", "aesthetic": 3.0, "nexus": 0.0, "natural": 5.0},
            {"id": "b", "aesthetic": 6.0, "nexus": 0.02, "natural": 3.0},
            {"id": "c", "aesthetic": None, "nexus": 0.04}]
    per_video = normalize_per_video(rows)
    assert per_video["aesthetic"] == pytest.approx((0.0 + 2 / 3) / 2)       # 3.0 clipped to 4 first
    assert normalize({"aesthetic": 4.5})["aesthetic"] == pytest.approx(1 / 6)  # mean first: different
    assert per_video["nexus"] == pytest.approx((0.4 + 0.8) / 2)             # the zero is dropped
    assert per_video["natural"] == pytest.approx((1.0 + 0.5) / 2)
    assert "facesim" not in per_video                                        # no value -> absent, not 0
    assert normalize_per_video([]) == {}


def test_official_raw_values_normalise_as_expected(official_outputs):
    pm = official_outputs["per_metric"]
    natural = sum(float(pm[f"naturalscore_{i}"]) for i in (1, 2, 3)) / 3
    n = normalize_per_video([{"aesthetic": pm["aesthetic_score"]["aes_score"],
                              "motion_amplitude": pm["motion_amplitude"]["motion_fb"],
                              "motion_smoothness": pm["motion_smoothness"]["motion_smoothness"],
                              "facesim": pm["facesim"]["cur_score"], "gme": pm["gmescore"]["gme_score"],
                              "natural": natural}])
    assert n["aesthetic"] == pytest.approx((5.194509506225586 - 4) / 3)
    assert n["natural"] == pytest.approx((10 / 3 - 1) / 4)
    assert n["motion_amplitude"] == pytest.approx(0.038793787360191345)


def test_smoothness_rule():
    assert smoothness_from_quality([0.8] * 10) == 1.0
    # one jump between frames 4 and 5 -> both are artifacts
    s = [0.80, 0.80, 0.81, 0.80, 0.80, 0.70, 0.70, 0.71, 0.70, 0.70]
    assert list(artifact_frames(s)) == [4, 5]
    assert smoothness_from_quality(s) == pytest.approx(0.8)
    # exactly the threshold is not an artifact (strict >), just above is
    assert smoothness_from_quality([0.5, 0.524]) == 1.0
    assert smoothness_from_quality([0.5, 0.5251]) == 0.0
    assert smoothness_from_quality([0.5, 0.75], thr=0.25) == 1.0     # exactly thr (exact in binary)
    # overlapping jumps count each frame once
    assert smoothness_from_quality([0.5, 0.6, 0.5, 0.5]) == pytest.approx(0.25)
    assert smoothness_from_quality([0.9]) == 1.0
    assert smoothness_from_quality([0.5, 0.56], thr=0.1) == 1.0
    with pytest.raises(ScoringError):
        smoothness_from_quality([])
