"""The runner: raw rows, results, resumability after a kill, partial totals."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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


class ConstantEmbedder:
    """Every text and image embeds to the same unit vector: every cosine is exactly 1."""
    backend = "stub"

    def embed_texts(self, texts, instruction=None):
        return np.tile(np.array([1.0, 0.0, 0.0], np.float32), (len(texts), 1))

    def embed_images(self, images):
        return np.tile(np.array([1.0, 0.0, 0.0], np.float32), (len(images), 1))


class OneBoxDetector:
    """One confident box in every frame, whatever the prompt."""
    backend, supports_image_prompts = "scripted", True

    def detect(self, image, *, text=None, prompt_image=None):
        from s2vforge.backends.detection import Detections
        return Detections(np.array([[0, 0, 40, 40]], np.float32), np.array([0.9], np.float32))


def _stubbed(**opts):
    """metric_options that run the real GmeScore / NexusScore classes on the stubs above."""
    out = {"gme": {"embedder": ConstantEmbedder()},
           "nexus": {"detector_obj": OneBoxDetector(), "embedder_obj": ConstantEmbedder()}}
    for k, v in opts.items():
        out.setdefault(k, {}).update(v)
    return out


def test_stand_ins_are_filed_under_their_own_names_and_stay_out_of_the_total(tiny_bench, tiny_bench_root):
    """The real metric classes with stand-in backends: GmeScore on CLIP (another scale) and
    NexusScore on OWLv2 (the default detector; official scale, not the official detector)."""
    out = tiny_bench["out"]
    kw = dict(metrics=["motion_amplitude", "gme", "nexus"], eval_json=tiny_bench["eval_json"])
    res = evaluate("open", tiny_bench["videos"], tiny_bench_root, out,
                   metric_options=_stubbed(gme={"backend": "clip"}), **kw)
    raw = sorted(p.name for p in (out / "raw").glob("*.jsonl"))
    assert raw == ["gme_clip.jsonl", "motion_amplitude.jsonl", "nexus_owlv2.jsonl"]
    assert not (out / "metrics" / "gme.json").exists() and (out / "metrics" / "nexus_owlv2.json").exists()
    assert res["metrics"]["gme"] is None and res["metrics"]["nexus"] is None
    # gme_clip: every cosine is 1 -> raw 1.0, but CLIP's scale is never normalised as GmeScore
    assert res["stand_ins"]["gme_clip"]["raw_mean"] == pytest.approx(1.0)
    assert res["stand_ins"]["gme_clip"]["normalised"] is None
    # nexus_owlv2: only singleobj_1 applies (face ids skip their Man reference); 32 frames with a box,
    # every kept similarity 1 -> 1/32, normalised min(x, 0.05)/0.05 = 0.625
    rows = {r["id"]: r for r in _rows(out / "raw" / "nexus_owlv2.jsonl")}
    assert rows["singleobj_1"]["value"] == pytest.approx(1 / 32)
    assert rows["singleface_1"]["status"] == "skipped"
    assert res["stand_ins"]["nexus_owlv2"]["normalised"] == pytest.approx(0.625)
    b = res["backends"]
    assert b["gme"]["instance_name"] == "gme_clip" and b["gme"]["raw_file"] == "raw/gme_clip.jsonl"
    assert b["gme"]["settings"] == {"backend": "clip", "n_frames": 32}
    assert b["nexus"]["settings"]["detector"] == "owlv2" and not b["nexus"]["comparable"]
    assert b["motion_amplitude"]["comparable"] and b["motion_amplitude"]["in_total"]
    assert not b["gme"]["in_total"] and not b["nexus"]["in_total"]
    assert res["total_available_weight"] == pytest.approx(0.02)
    assert "stand-in" in res["missing_metrics"]["gme"] and "another scale" in res["missing_metrics"]["gme"]
    assert not any(i.startswith(("gme", "nexus")) for i in res["issues"])   # a choice, not a failure

    # asked for: the same-scale stand-in is counted and the results say so; CLIP never is
    res = evaluate("open", tiny_bench["videos"], tiny_bench_root, out, include_stand_ins=True,
                   metric_options=_stubbed(gme={"backend": "clip"}), **kw)
    assert res["stand_ins_in_total"] == ["nexus"] and res["backends"]["nexus"]["in_total"]
    assert res["metrics"]["nexus"] == pytest.approx(0.625) and res["metrics"]["gme"] is None
    assert res["total"] == pytest.approx(0.02 * res["metrics"]["motion_amplitude"] + 0.2 * 0.625)
    assert any("nexus_owlv2 is counted in the total" in n for n in res["notes"])
    assert "never counted" in res["missing_metrics"]["gme"]
    assert not res["complete"]


def test_gme_2b_is_not_filed_as_gme_and_changed_settings_are_never_mixed(tiny_bench):
    out = tiny_bench["out"]
    kw = dict(metrics=["gme"], eval_json=tiny_bench["eval_json"])
    res = evaluate("open", tiny_bench["videos"], None, out, metric_options=_stubbed(gme={"variant": "2b"}), **kw)
    assert res["backends"]["gme"]["instance_name"] == "gme_2b" and (out / "raw" / "gme_2b.jsonl").exists()
    assert res["metrics"]["gme"] is None and res["stand_ins"]["gme_2b"]["normalised"] == pytest.approx(1.0)
    meta = json.loads((out / "raw" / "gme_2b.meta.json").read_text())
    assert meta["settings"] == {"backend": "gme", "n_frames": 32, "variant": "2b"} and meta["comparable"] is False

    # the official GME-7B, with 8 frames: same name, but not the official recipe
    res = evaluate("open", tiny_bench["videos"], None, out, metric_options=_stubbed(gme={"n_frames": 8}), **kw)
    assert res["backends"]["gme"]["instance_name"] == "gme" and not res["backends"]["gme"]["comparable"]
    assert res["metrics"]["gme"] is None and res["stand_ins"]["gme"]["normalised"] == pytest.approx(1.0)
    before = (out / "raw" / "gme.jsonl").read_text()

    # a rerun with the official settings must not resume from the 8-frame rows
    res = evaluate("open", tiny_bench["videos"], None, out, metric_options=_stubbed(), **kw)
    reason = res["missing_metrics"]["gme"]
    assert "other settings" in reason and "n_frames 8 -> 32" in reason and "comparable False -> True" in reason
    assert res["metrics"]["gme"] is None and res["backends"]["gme"]["status"] == "unavailable"
    assert any(i.startswith("gme:") for i in res["issues"])
    assert (out / "raw" / "gme.jsonl").read_text() == before          # nothing mixed in, nothing deleted

    # after deleting them as told, the official run counts
    (out / "raw" / "gme.jsonl").unlink()
    (out / "raw" / "gme.meta.json").unlink()
    res = evaluate("open", tiny_bench["videos"], None, out, metric_options=_stubbed(), **kw)
    assert res["metrics"]["gme"] == pytest.approx(1.0) and res["backends"]["gme"]["in_total"]
    assert res["stand_ins"] == {}


class ThirdPartyStandIn:
    """A stand-in from elsewhere that keeps the official name and only says comparable = False."""
    name = "nexus"
    comparable = False

    def __init__(self, **kw):
        pass

    def load(self):
        pass

    def applies_to(self, sample):
        return True

    def compute(self, video, sample):
        return 0.02


def test_a_stand_in_keeping_the_official_name_cannot_be_resumed_as_official(tiny_bench, monkeypatch):
    out = tiny_bench["out"]
    kw = dict(metrics=["nexus"], eval_json=tiny_bench["eval_json"])
    monkeypatch.setitem(runner.REGISTRY, "nexus", f"{__name__}:ThirdPartyStandIn")
    res = evaluate("open", tiny_bench["videos"], None, out, **kw)
    assert res["metrics"]["nexus"] is None and res["stand_ins"]["nexus"]["normalised"] == pytest.approx(0.4)
    res = evaluate("open", tiny_bench["videos"], None, out, include_stand_ins=True, **kw)
    assert res["stand_ins_in_total"] == ["nexus"] and res["metrics"]["nexus"] == pytest.approx(0.4)

    class OfficialNamesake(ThirdPartyStandIn):
        comparable = True
    monkeypatch.setattr(sys.modules[__name__], "OfficialNamesake", OfficialNamesake, raising=False)
    monkeypatch.setitem(runner.REGISTRY, "nexus", f"{__name__}:OfficialNamesake")
    res = evaluate("open", tiny_bench["videos"], None, out, **kw)
    assert res["metrics"]["nexus"] is None and "other settings" in res["missing_metrics"]["nexus"]


def test_bad_metric_options_stop_the_run_before_anything_is_computed(tiny_bench):
    with pytest.raises(runner.MetricOptionsError) as e:
        evaluate("open", tiny_bench["videos"], None, tiny_bench["out"], metrics=["motion_amplitude", "facesim"],
                 metric_options={"facesim": {"backnd": "dlib"}}, eval_json=tiny_bench["eval_json"])
    assert "backnd" in str(e.value) and "backend" in str(e.value) and "n_frames" in str(e.value)
    with pytest.raises(EvalError, match="must be 'onnx' or 'dlib'"):
        evaluate("open", tiny_bench["videos"], None, tiny_bench["out"], metrics=["facesim"],
                 metric_options={"facesim": {"backend": "insightface"}}, eval_json=tiny_bench["eval_json"])
    assert not tiny_bench["out"].exists()


def test_unknown_metric_names_get_a_hint():
    with pytest.raises(EvalError, match="did you mean motion_smoothness"):
        runner.resolve_metric_name("motion_smothness")
    with pytest.raises(EvalError, match="-O facesim.backend=dlib") as e:
        runner.resolve_metric_name("facesim_dlib")
    assert "known: aesthetic, motion_smoothness" in str(e.value)


def test_videos_that_match_no_sample_are_explained(tiny_bench, tmp_path):
    videos = tiny_bench["videos"]
    (videos / "singleface_2.mp4").rename(videos / "singleface_02.mp4")
    res = evaluate("open", videos, None, tiny_bench["out"], metrics=["motion_amplitude"],
                   eval_json=tiny_bench["eval_json"])
    assert res["unmatched_files"] == {"singleface_02.mp4": "singleface_2"}
    issue = next(i for i in res["issues"] if "not found" in i)
    assert "2 of 4" in issue and "singleface_02.mp4 (did you mean singleface_2?)" in issue

    empty = tmp_path / "wrong"
    empty.mkdir()
    (empty / "multiface_1.mp4").write_bytes((videos / "singleface_1.mp4").read_bytes())
    with pytest.raises(EvalError, match="use --domain open"):          # an Open-only id, run as Human
        evaluate("human", empty, None, tmp_path / "o", metrics=["motion_amplitude"])
    with pytest.raises(EvalError, match="holds no video file"):
        evaluate("open", tmp_path, None, tmp_path / "o2", metrics=["motion_amplitude"])
