"""`s2vforge eval` / `s2vforge leaderboard` through Typer, exit codes and --json."""
from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from s2vforge.bench.opens2v.cli import make_app, parse_options, register

SECRET = "sk-cli-secret-55aa"


@pytest.fixture()
def app():
    return make_app()


def test_register_adds_both_commands():
    main = typer.Typer()

    @main.command()
    def other():
        pass

    register(main)
    names = {c.name for c in main.registered_commands}
    assert {"eval", "leaderboard"} <= names


def test_parse_options():
    assert parse_options(["natural.runs=5", "natural.base_url=http://x/v1", "aesthetic.device=cuda:1"]) == {
        "natural": {"runs": 5, "base_url": "http://x/v1"}, "aesthetic": {"device": "cuda:1"}}
    with pytest.raises(typer.BadParameter):
        parse_options(["runs=5"])


def test_eval_json_complete_run_exits_zero(app, tiny_bench, judge_server, chat_reply, monkeypatch):
    monkeypatch.setenv("S2VFORGE_CLI_KEY", SECRET)
    # keep only the samples that have videos, so nothing is missing
    ej = tiny_bench["eval_json"]
    data = json.loads(ej.read_text())
    ej.write_text(json.dumps({k: data[k] for k in tiny_bench["with_video"]}))
    server = judge_server(lambda n, body, h: (200, {}, chat_reply("3"), 0))
    out = tiny_bench["out"]
    r = CliRunner().invoke(app, ["eval", "--benchmark", "opens2v", "--domain", "open", "--videos",
                                 str(tiny_bench["videos"]), "--out", str(out), "--eval-json", str(ej),
                                 "--metrics", "motion_amplitude,natural", "--judge-url", server.base_url,
                                 "--judge-key-env", "S2VFORGE_CLI_KEY", "-O", "natural.runs=1", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["metrics"]["natural"] == pytest.approx(0.5)
    assert res["partial"] and res["issues"] == []
    assert len(server.requests) == 3
    assert SECRET not in r.output


def test_eval_exit_codes(app, tiny_bench, no_judge_env):
    base = ["eval", "--domain", "open", "--videos", str(tiny_bench["videos"]), "--out", str(tiny_bench["out"]),
            "--eval-json", str(tiny_bench["eval_json"])]
    r = CliRunner().invoke(app, base + ["--metrics", "motion_amplitude,natural", "-q"])
    assert r.exit_code == 1                     # a video is missing and natural has no endpoint
    res = json.loads((tiny_bench["out"] / "results.json").read_text())
    assert "natural" in res["missing_metrics"]
    r = CliRunner().invoke(app, base + ["--metrics", "motion_amplitude"])
    assert r.exit_code == 1 and "1 of 4 sample videos not found" in r.output   # how many, with examples
    assert "total" in r.output
    r = CliRunner().invoke(app, ["eval", "--domain", "cartoon", "--videos", str(tiny_bench["videos"]),
                                 "--out", str(tiny_bench["out"])])
    assert r.exit_code == 2 and "unknown domain" in r.output
    r = CliRunner().invoke(app, base + ["--metrics", "sharpness"])
    assert r.exit_code == 2 and "unknown metric" in r.output
    r = CliRunner().invoke(app, base + ["--benchmark", "vbench"])
    assert r.exit_code == 2


def test_leaderboard_verify_and_build(app, published_csv, tmp_path):
    r = CliRunner().invoke(app, ["leaderboard", "verify", str(published_csv), "--version", "v1.1",
                                 "--domain", "open", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["disagree"] == [] and json.loads(r.stdout)["n_rows"] == 11

    rows = published_csv.read_text(encoding="utf-8").splitlines()
    cells = rows[1].split(",")
    cells[5], cells[6] = cells[6], cells[5]
    rows[1] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(rows) + "\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["leaderboard", "verify", str(bad)])
    assert r.exit_code == 1 and "swapped" in r.output

    for name, total in (("m1", 0.4), ("m2", 0.6)):
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(json.dumps({"version": "v1.1", "domain": "open", "model": name,
                                                    "metrics": {k: total for k in ("aesthetic", "motion_smoothness",
                                                                "motion_amplitude", "facesim", "gme", "nexus",
                                                                "natural")}}))
    out = tmp_path / "board.md"
    r = CliRunner().invoke(app, ["leaderboard", str(tmp_path / "m1"), str(tmp_path / "m2" / "results.json"),
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.index("m2") < text.index("m1") and "60.00%" in text
    r = CliRunner().invoke(app, ["leaderboard", str(tmp_path / "nope")])
    assert r.exit_code == 2
