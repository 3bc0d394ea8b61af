"""The runner: raw rows, results, resumability after a kill, partial totals."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s2vforge.bench.opens2v import runner
from s2vforge.bench.opens2v.motion import motion_stats
from s2vforge.bench.opens2v.runner import EvalError, default_metrics, evaluate

SECRET = "sk-runner-secret-91b2"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _natural_opts(server, **kw):
    return {"natural": {"base_url": server.base_url, "model": "test-judge", "backoff_s": 0.01,
                        "api_key_env": "S2VFORGE_TEST_RUNNER_KEY", **kw}}


def test_default_metrics_follow_the_weights():
    assert default_metrics("open") == ["aesthetic", "motion_smoothness", "motion_amplitude", "facesim", "gme",
                                       "nexus", "natural"]
    assert default_metrics("human", "v1.0") == ["aesthetic", "motion_amplitude", "facesim", "gme", "natural"]
    with pytest.raises(EvalError, match="unknown metric"):
        runner.resolve_metric_name("sharpness")


def test_evaluate_writes_raw_rows_metric_files_and_partial_total(tiny_bench, tiny_clips, judge_server, chat_reply,
                                                                monkeypatch):
    monkeypatch.setenv("S2VFORGE_TEST_RUNNER_KEY", SECRET)
    server = judge_server(lambda n, body, h: (200, {}, chat_reply("4"), 0))
    res = evaluate("open", tiny_bench["videos"], None, tiny_bench["out"], metrics=["motion_amplitude", "natural"],
                   metric_options=_natural_opts(server), eval_json=tiny_bench["eval_json"], model_name="tiny")
    out = tiny_bench["out"]
    amp_rows = _rows(out / "raw" / "motion_amplitude.jsonl")
    assert [r["id"] for r in amp_rows] == tiny_bench["with_video"]
    expected = [motion_stats(c).amplitude for c in tiny_clips]
    assert [r["value"] for r in amp_rows] == pytest.approx(expected)
    assert all("motion_magnitude" in r["details"] for r in amp_rows)
    assert len(server.requests) == 3 * 3                      # 3 videos x 3 runs
    assert res["missing_videos"] == ["multiface_1"]
    assert res["metrics"]["natural"] == pytest.approx(0.75)
    assert res["metrics"]["motion_amplitude"] == pytest.approx(sum(min(abs(x), 1) for x in expected) / 3)
    assert res["metrics"]["aesthetic"] is None
    assert res["partial"] is True
    assert res["total_available_weight"] == pytest.approx(0.26)
    assert res["total"] == pytest.approx(0.02 * res["metrics"]["motion_amplitude"] + 0.24 * 0.75)
    assert res["missing_metrics"]["nexus"].startswith("not selected")
    assert not res["complete"] and any("not found" in i for i in res["issues"])
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["total"] == res["total"] and on_disk["model"] == "tiny"
    natural = json.loads((out / "metrics" / "natural.json").read_text())
    assert natural["status"] == "ok" and natural["n_ok"] == 3 and natural["raw_mean"] == 4.0
    # the key was sent, but is nowhere in what we wrote
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    for p in out.rglob("*"):
        if p.is_file():
            assert SECRET not in p.read_text(), p


_CHILD = """
import json, sys
from s2vforge.bench.opens2v.runner import evaluate
a = json.loads(sys.argv[1])
evaluate("open", a["videos"], None, a["out"], metrics=["motion_amplitude", "natural"],
         metric_options={"natural": {"base_url": a["url"], "runs": 1, "concurrency": 1, "backoff_s": 0.01}},
         eval_json=a["eval_json"])
"""


def test_killed_run_resumes_without_duplicates_or_recomputation(tiny_bench, judge_server, chat_reply):
    slow = judge_server(lambda n, body, h: (200, {}, chat_reply("3"), 0.6))
    out = tiny_bench["out"]
    args = json.dumps({"videos": str(tiny_bench["videos"]), "out": str(out), "url": slow.base_url,
                       "eval_json": str(tiny_bench["eval_json"])})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, args], env=env)
    natural_path = out / "raw" / "natural.jsonl"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            if natural_path.exists() and _rows(natural_path):
                break
            if child.poll() is not None:
                pytest.fail(f"child exited early with {child.returncode}")
            time.sleep(0.05)
        else:
            pytest.fail("child never wrote a natural row")
    finally:
        child.kill()                                           # SIGKILL: no cleanup runs
        child.wait()
    amp_before = (out / "raw" / "motion_amplitude.jsonl").read_text()
    natural_before = _rows(natural_path)
    assert 1 <= len(natural_before) < 3
    n_requests_before = len(slow.requests)

    fast = judge_server(lambda n, body, h: (200, {}, chat_reply("5"), 0))
    res = evaluate("open", tiny_bench["videos"], None, out, metrics=["motion_amplitude", "natural"],
                   metric_options={"natural": {"base_url": fast.base_url, "runs": 1}},
                   eval_json=tiny_bench["eval_json"])
    assert (out / "raw" / "motion_amplitude.jsonl").read_text() == amp_before      # nothing recomputed
    natural_after = _rows(natural_path)
    ids = [r["id"] for r in natural_after]
    assert sorted(ids) == sorted(tiny_bench["with_video"]) and len(ids) == len(set(ids))
    assert natural_after[:len(natural_before)] == natural_before                   # old rows kept as they were
    assert len(fast.requests) == 3 - len(natural_before)                           # only the rest was asked
    assert n_requests_before >= len(natural_before)
    scores = [r["value"] for r in natural_after]
    assert res["raw_means"]["natural"] == pytest.approx(sum(scores) / 3)

    # a third run does nothing at all
    evaluate("open", tiny_bench["videos"], None, out, metrics=["motion_amplitude", "natural"],
             metric_options={"natural": {"base_url": fast.base_url, "runs": 1}}, eval_json=tiny_bench["eval_json"])
    assert len(fast.requests) == 3 - len(natural_before)
    assert _rows(natural_path) == natural_after


def test_torn_line_and_failed_video_are_redone_once(tiny_bench, tiny_clips):
    out, videos = tiny_bench["out"], tiny_bench["videos"]
    good = (videos / "singleobj_1.mp4").read_bytes()
    (videos / "singleobj_1.mp4").write_bytes(b"not a video at all")
    res = evaluate("open", videos, None, out, metrics=["motion_amplitude"], eval_json=tiny_bench["eval_json"])
    raw = out / "raw" / "motion_amplitude.jsonl"
    rows = {r["id"]: r for r in _rows(raw)}
    assert rows["singleobj_1"]["status"] == "error" and rows["singleobj_1"]["error"]
    assert any("1 videos failed" in i for i in res["issues"])
    # simulate a writer killed mid-line after the second row
    kept = [line for line in raw.read_text().splitlines() if '"singleface_2"' not in line]
    raw.write_text("\n".join(kept) + '\n{"id": "singleface_2", "status": "o')
    (videos / "singleobj_1.mp4").write_bytes(good)
    res = evaluate("open", videos, None, out, metrics=["motion_amplitude"], eval_json=tiny_bench["eval_json"])
    rows = _rows(raw)
    assert sorted(r["id"] for r in rows) == sorted(tiny_bench["with_video"])
    assert all(r["status"] == "ok" for r in rows)
    assert raw.read_text().endswith("\n")
    assert res["metrics"]["motion_amplitude"] is not None


def test_unavailable_metrics_make_a_partial_total_with_reasons(tiny_bench, no_judge_env, monkeypatch):
    monkeypatch.setitem(runner.REGISTRY, "aesthetic", "s2vforge.bench.opens2v.metrics.no_such_module:Nope")
    res = evaluate("human", tiny_bench["videos"], None, tiny_bench["out"],
                   metrics=["motion_amplitude", "natural", "aesthetic"], eval_json=tiny_bench["eval_json"])
    assert res["metrics"]["natural"] is None and res["metrics"]["aesthetic"] is None
    assert "S2VFORGE_JUDGE_BASE_URL" in res["missing_metrics"]["natural"]
    assert "could not be imported" in res["missing_metrics"]["aesthetic"]
    assert res["partial"] and res["total_available_weight"] == pytest.approx(0.03)
    assert res["total"] == pytest.approx(0.03 * res["metrics"]["motion_amplitude"])
    assert json.loads((tiny_bench["out"] / "metrics" / "natural.json").read_text())["status"] == "unavailable"


def test_auth_failure_stops_the_metric(tiny_bench, judge_server, monkeypatch):
    monkeypatch.setenv("S2VFORGE_TEST_RUNNER_KEY", SECRET)
    server = judge_server(lambda n, body, h: (401, {}, f"invalid key {h.get('Authorization')}", 0))
    res = evaluate("open", tiny_bench["videos"], None, tiny_bench["out"], metrics=["natural"],
                   metric_options=_natural_opts(server, concurrency=1), eval_json=tiny_bench["eval_json"])
    assert "HTTP 401" in res["missing_metrics"]["natural"]
    assert len(server.requests) == 1                 # stopped at the first refusal
    assert SECRET not in json.dumps(res)
    assert not (tiny_bench["out"] / "raw" / "natural.jsonl").exists() or \
        _rows(tiny_bench["out"] / "raw" / "natural.jsonl") == []


def test_bad_inputs_raise_eval_error(tmp_path, tiny_bench):
    with pytest.raises(EvalError, match="videos folder"):
        evaluate("open", tmp_path / "nope", None, tmp_path / "o", metrics=["motion_amplitude"])
    with pytest.raises(EvalError, match="domain"):
        evaluate("cartoon", tiny_bench["videos"], None, tmp_path / "o")


def test_registry_resolves_every_metric_class():
    for name in runner.REGISTRY:
        cls = runner.load_metric_class(name)
        assert cls.name == name, (name, cls)


class ClipStandIn:
    """A stand-in on another scale: its own name, not comparable."""
    name = "gme_clip"
    comparable = False

    def __init__(self, **kw):
        pass

    def load(self):
        pass

    def applies_to(self, sample):
        return True

    def compute(self, video, sample):
        return 0.3


class SameScaleStandIn(ClipStandIn):
    """A stand-in that keeps the official name (e.g. NexusScore with another detector)."""
    name = "nexus"

    def compute(self, video, sample):
        return 0.02


def test_stand_ins_stay_out_of_the_total_unless_asked(tiny_bench, monkeypatch):
    monkeypatch.setitem(runner.REGISTRY, "gme", f"{__name__}:ClipStandIn")
    monkeypatch.setitem(runner.REGISTRY, "nexus", f"{__name__}:SameScaleStandIn")
    out = tiny_bench["out"]
    kw = dict(metrics=["motion_amplitude", "gme", "nexus"], eval_json=tiny_bench["eval_json"])
    res = evaluate("open", tiny_bench["videos"], None, out, **kw)
    assert res["metrics"]["gme"] is None and res["metrics"]["nexus"] is None
    assert res["stand_ins"]["gme_clip"]["raw_mean"] == pytest.approx(0.3)
    assert res["stand_ins"]["gme_clip"]["normalised"] is None            # other scale: never normalised
    assert res["stand_ins"]["nexus_standin"]["normalised"] == pytest.approx(0.4)
    assert "stand-in" in res["missing_metrics"]["gme"]
    assert not any(i.startswith(("gme", "nexus")) for i in res["issues"])   # a choice, not a failure
    assert (out / "raw" / "gme_clip.jsonl").exists() and (out / "raw" / "nexus_standin.jsonl").exists()
    assert not (out / "raw" / "gme.jsonl").exists() and not (out / "raw" / "nexus.jsonl").exists()

    res = evaluate("open", tiny_bench["videos"], None, out, include_stand_ins=True, **kw)
    assert res["stand_ins_in_total"] == ["nexus"]                         # same scale only
    assert res["metrics"]["nexus"] == pytest.approx(0.4) and res["metrics"]["gme"] is None
    assert res["total"] == pytest.approx(0.02 * res["metrics"]["motion_amplitude"] + 0.2 * 0.4)
    assert not res["complete"]
