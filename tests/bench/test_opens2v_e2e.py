"""End to end through the real `s2vforge` command: eval -> results.json -> leaderboard tables -> verify.

One eval run (a subprocess of the installed CLI) on two copies of the official demo video,
filed under two face ids of the Open domain, with reference images from packaged photos,
FaceSim on the embedded dlib stand-in and NaturalScore against a local OpenAI-compatible
judge. Most of its ~20 CPU-seconds is the exact 69-frame Farneback flow of the two videos.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from s2vforge.cli import app

IDS = ["singleface_3", "singleface_16"]           # references: crop_man/11.jpg, crop_woman/7.jpg
SECRET = "sk-e2e-secret-7f3c"


def _eval_entries() -> dict:
    from s2vforge.bench.opens2v.samples import bundled_eval_json
    return json.loads(bundled_eval_json("open").read_text(encoding="utf-8"))


@pytest.fixture()
def folders(tmp_path, reference_clip, bench_root_factory):
    bench = bench_root_factory(tmp_path / "OpenS2V-Eval", _eval_entries(), IDS)
    videos = tmp_path / "my-model"
    videos.mkdir()
    for sid in IDS:
        (videos / f"{sid}.mp4").write_bytes(reference_clip.read_bytes())
    return {"bench": bench, "videos": videos, "out": tmp_path / "runs" / "my-model", "tmp": tmp_path}


def _cli_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("S2VFORGE_JUDGE_BASE_URL", "OPENAI_BASE_URL", "S2VFORGE_JUDGE_MODEL", "OPENAI_API_KEY")}
    env["S2VFORGE_E2E_KEY"] = SECRET
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return env


def test_eval_then_leaderboard_then_verify(folders, judge_server, chat_reply, official_outputs, published_csv):
    server = judge_server(lambda n, body, h: (200, {}, chat_reply("4"), 0))
    out = folders["out"]
    cmd = [sys.executable, "-m", "s2vforge.cli", "eval", "--benchmark", "opens2v", "--domain", "open",
           "--videos", str(folders["videos"]), "--bench-root", str(folders["bench"]), "--out", str(out),
           "--metrics", "motion_amplitude,natural,facesim",
           "-O", "facesim.backend=dlib", "-O", "facesim.n_frames=2",       # the embedded stand-in, 2 frames
           "--judge-url", server.base_url, "--judge-model", "local-judge", "--judge-key-env", "S2VFORGE_E2E_KEY",
           "-O", "natural.runs=1", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_cli_env(), timeout=240)
    # exit 1: 178 of the 180 Open-domain videos are missing, which the run must say
    assert proc.returncode == 1, proc.stderr
    res = json.loads(proc.stdout)                      # --json: stdout is exactly results.json
    assert res == json.loads((out / "results.json").read_text())
    assert SECRET not in proc.stdout + proc.stderr

    # motion amplitude: the official value of this video, for both copies
    official = official_outputs["per_metric"]["motion_amplitude"]["motion_fb"]
    amp = [json.loads(x) for x in (out / "raw" / "motion_amplitude.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in amp) == sorted(IDS)
    assert all(r["value"] == pytest.approx(official, abs=1e-6) for r in amp)
    assert res["metrics"]["motion_amplitude"] == pytest.approx(official, abs=1e-6)

    # FaceSim on dlib: filed as facesim_dlib, never as facesim, and out of the total
    assert not (out / "raw" / "facesim.jsonl").exists()
    face = [json.loads(x) for x in (out / "raw" / "facesim_dlib.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in face) == sorted(IDS)
    for r in face:      # another person than the packaged reference photos: similar-ish on dlib's scale
        assert r["status"] == "ok" and 0.5 < r["value"] < 0.95 and r["details"]["frames_with_face"] == 2
    assert res["metrics"]["facesim"] is None
    assert res["backends"]["facesim"] == {
        "instance_name": "facesim_dlib", "raw_file": "raw/facesim_dlib.jsonl",
        "class": "s2vforge.bench.opens2v.metrics.facesim:FaceSimCur", "settings": {"backend": "dlib", "n_frames": 2},
        "status": "ok", "comparable": False, "same_scale": False, "in_total": False}
    assert res["stand_ins"]["facesim_dlib"]["raw_mean"] == pytest.approx(sum(r["value"] for r in face) / 2)

    # NaturalScore: 2 videos x 1 run, 16 frames each, judged 4 -> (4 - 1) / 4
    assert len(server.requests) == 2
    body = server.requests[0]["body"]
    assert body["model"] == "local-judge"
    assert sum(p.get("type") == "image_url" for p in body["messages"][-1]["content"]) == 16
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert res["metrics"]["natural"] == pytest.approx(0.75)
    assert res["backends"]["natural"]["settings"]["judge_model"] == "local-judge"
    assert any("local-judge" in n for n in res["notes"])

    assert res["total"] == pytest.approx(0.02 * official + 0.24 * 0.75)
    assert res["partial"] and res["total_available_weight"] == pytest.approx(0.26) and not res["complete"]
    assert res["n_videos_found"] == 2 and len(res["missing_videos"]) == 178
    assert any("178 of 180 sample videos not found" in i for i in res["issues"])
    for p in out.rglob("*"):
        if p.is_file():
            assert SECRET not in p.read_text(encoding="utf-8"), p

    # leaderboard tables from the results
    runner = CliRunner()
    board = folders["tmp"] / "board"
    for ext in (".md", ".csv", ".html"):
        r = runner.invoke(app, ["leaderboard", str(out / "results.json"), "--out", str(board.with_suffix(ext))])
        assert r.exit_code == 0, r.output
    md = board.with_suffix(".md").read_text(encoding="utf-8")
    assert "| 1 | my-model | – | s2vforge | 18.08% † ‡1 |" in md
    assert "scored on 2 of 180 sample videos" in md and "| 3.88% | – | – | – | 75.00% |" in md
    rows = list(csv.DictReader(open(board.with_suffix(".csv"), encoding="utf-8")))
    assert rows[0]["Model"] == "my-model" and rows[0]["FaceSim↑"] == "" and rows[0]["NaturalScore↑"] == "75.00%"
    assert rows[0]["Partial"] == "true" and rows[0]["AvailableWeight"] == "0.26"
    html = board.with_suffix(".html").read_text(encoding="utf-8")
    assert html.count("<tr") == 2 and "&Dagger;" in html and "scored on 2 of 180" in html
    r = runner.invoke(app, ["leaderboard", str(out), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["total"] == pytest.approx(res["total"])
    # our own CSV reads back through the verifier: the partial row is reported as incomplete
    r = runner.invoke(app, ["leaderboard", "verify", str(board.with_suffix(".csv")), "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["disagree"][0]["diagnosis"] == "incomplete row"

    # and the published table adds up
    r = runner.invoke(app, ["leaderboard", "verify", str(published_csv)])
    assert r.exit_code == 0 and "11/11 rows add up" in r.output


def test_eval_errors_say_what_to_do(folders):
    runner = CliRunner()
    base = ["eval", "--domain", "open", "--bench-root", str(folders["bench"]), "--out", str(folders["out"])]
    # no file named after any sample id: exit 2 before anything runs, with the expected names and the close ones
    wrong = folders["tmp"] / "wrong-names"
    wrong.mkdir()
    (wrong / "singleface03.mp4").write_bytes(b"")
    (wrong / "clip.mp4").write_bytes(b"")
    r = runner.invoke(app, base + ["--videos", str(wrong), "--metrics", "motion_amplitude"])
    assert r.exit_code == 2
    msg = " ".join(r.output.split())
    assert "no video in" in msg and "expected <sample id>.mp4" in msg
    assert "singleface03.mp4 (did you mean singleface_3?)" in msg and "clip.mp4" in msg
    assert not folders["out"].exists()

    videos = ["--videos", str(folders["videos"])]
    r = runner.invoke(app, base + videos + ["--metrics", "motion_amplitude,sharpnes"])
    msg = " ".join(r.output.split())
    assert r.exit_code == 2 and "unknown metric 'sharpnes'" in msg
    assert "known: aesthetic, motion_smoothness, motion_amplitude, facesim, gme, nexus, natural" in msg
    r = runner.invoke(app, base + videos + ["--metrics", "facesim_dlib"])
    assert r.exit_code == 2 and "-O facesim.backend=dlib" in " ".join(r.output.split())
    r = runner.invoke(app, base + videos + ["--metrics", "facesim", "-O", "facesim.backnd=dlib"])
    msg = " ".join(r.output.split())
    assert r.exit_code == 2 and "backnd" in msg and "its options: backend, model_dir" in msg
    r = runner.invoke(app, base + videos + ["-O", "facesim=dlib"])
    assert r.exit_code == 2 and "METRIC.KEY=VALUE" in r.output
    assert not folders["out"].exists()
