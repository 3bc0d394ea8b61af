"""Leaderboard verification against the published CSV, and tables built from results."""
from __future__ import annotations

import csv
import json

import pytest

from s2vforge.bench.opens2v.leaderboard import (
    LeaderboardError,
    build_rows,
    check,
    columns,
    load_results,
    read_leaderboard,
    verify,
    write_leaderboard,
)


def _swap_row(src, dst, line_index):
    rows = list(csv.reader(open(src, encoding="utf-8")))
    header = rows[0]
    i, j = header.index("MotionSmoothness↑"), header.index("MotionAmplitude↑")
    rows[line_index][i], rows[line_index][j] = rows[line_index][j], rows[line_index][i]
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


def test_published_csv_verifies(published_csv):
    assert verify(published_csv, "v1.1", "open") == []
    report = check(published_csv, "v1.1", "open")
    assert len(report) == 11
    assert max(abs(r["diff_faithful"]) for r in report) < 0.01
    assert report[0]["model"] == "MAGREF-480P"


def test_swapped_columns_are_detected_and_fixed(published_csv, tmp_path):
    bad = tmp_path / "swapped.csv"
    _swap_row(published_csv, bad, 3)               # Phantom-14B
    disagree = verify(bad, "v1.1", "open")
    assert [r["model"] for r in disagree] == ["Phantom-14B"]
    assert disagree[0]["diagnosis"] == "amplitude/smoothness columns swapped"
    assert abs(disagree[0]["diff_swapped"]) < 0.015 and abs(disagree[0]["diff_faithful"]) > 1
    faithful = {r["model"]: r for r in read_leaderboard(bad, reading="faithful")}
    fixed = {r["model"]: r for r in read_leaderboard(bad, reading="fixed")}
    assert faithful["Phantom-14B"]["metrics"]["motion_smoothness"] == pytest.approx(0.3342)
    assert fixed["Phantom-14B"]["metrics"]["motion_smoothness"] == pytest.approx(0.9631)
    assert fixed["Phantom-14B"]["fixed"] and not fixed["VACE-14B"]["fixed"]


def test_a_wrong_total_is_reported_as_unexplained(published_csv, tmp_path):
    rows = list(csv.reader(open(published_csv, encoding="utf-8")))
    rows[1][3] = "60.00%"
    bad = tmp_path / "bad.csv"
    with open(bad, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    (r,) = verify(bad)
    assert r["model"] == "MAGREF-480P" and r["diagnosis"] == "total does not match its components"


def test_wrong_layout_is_a_clear_error(published_csv):
    with pytest.raises(LeaderboardError, match="Motion↑"):
        verify(published_csv, "v1.0", "open")


def _result(tmp_path, name, metrics, domain="open", version="v1.1"):
    d = tmp_path / name
    d.mkdir()
    (d / "results.json").write_text(json.dumps({"version": version, "domain": domain, "model": name,
                                                "metrics": metrics}))
    return d


def test_tables_are_ranked_in_published_order_and_reverify(published_csv, tmp_path):
    board = read_leaderboard(published_csv)
    paths = [_result(tmp_path, r["model"], r["metrics"]) for r in board[:4]]
    partial = dict(board[4]["metrics"], natural=None)
    paths.append(_result(tmp_path, "partial-model", partial))
    results = load_results(paths)
    rows, ver, dom = build_rows(results)
    assert [r["model"] for r in rows][:4] == ["Phantom-14B", "MAGREF-480P", "SkyReels-A2-P14B", "VACE-P1.3B"]
    assert rows[-1]["model"] == "partial-model" and rows[-1]["partial"]
    assert rows[-1]["available_weight"] == pytest.approx(0.76)

    out_csv = write_leaderboard(results, tmp_path / "board.csv")
    header = next(csv.reader(open(out_csv, encoding="utf-8")))
    assert header[:11] == columns("v1.1", "open")
    # our own table passes the same verification (its complete rows)
    report = {r["model"]: r for r in check(out_csv)}
    assert all(report[m]["ok"] for m in ["Phantom-14B", "MAGREF-480P", "SkyReels-A2-P14B", "VACE-P1.3B"])
    assert report["partial-model"]["diagnosis"] == "incomplete row"

    md = write_leaderboard(results, tmp_path / "board.md").read_text()
    assert "| 1 | Phantom-14B |" in md and "56.77%" in md and "†" in md
    html = write_leaderboard(results, tmp_path / "board.html").read_text()
    assert html.count("<tr") == 6 and "MotionSmoothness" in html
    with pytest.raises(LeaderboardError, match="format"):
        write_leaderboard(results, tmp_path / "board.xlsx")


def test_mixed_domains_are_refused(tmp_path):
    a = _result(tmp_path, "a", {"aesthetic": 0.5}, domain="open")
    b = _result(tmp_path, "b", {"aesthetic": 0.5}, domain="human")
    with pytest.raises(LeaderboardError, match="different"):
        build_rows(load_results([a, b]))
    assert columns("v1.1", "human")[-2:] == ["GmeScore↑", "NaturalScore↑"]
