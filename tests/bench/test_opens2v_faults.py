"""Issue 12: `s2vforge eval` when the judge fails, and secrets.

- Missing judgements (unreachable endpoint, HTTP 5xx, unparsable answers) are recorded as
  missing with the reason, the exit code is 1, and a rerun of the same command asks again
  for exactly those, giving the results.json of a clean run.
- The judge key (and credentials in the endpoint URL) never reach a file under --out,
  stdout/stderr or the logs; a key typed in place of --judge-key-env's NAME is refused
  with exit 2 without echoing it.
- --models DIR sets $S2VFORGE_MODELS.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from s2vforge.backends.judge import JudgeClient, redact_url, split_url_credentials
from s2vforge.bench.opens2v import runner
from s2vforge.bench.opens2v.cli import make_app
from s2vforge.bench.opens2v.metrics.natural import NaturalScore

SECRET = "sk-live-FAULTS-9c1e77d0b4"
KEY_ENV = "S2VFORGE_FAULTS_JUDGE_KEY"
URL_USER, URL_PASSWORD = "judgeuser7", "pw-FAULTS-3b8e51"


# ----------------------------------------------------------------------------- a judge on a fixed port

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortJudge:
    """An OpenAI-compatible judge on a given port (so "down, then up" keeps the same URL).

    `script(n, body, headers)` -> (status, body str). The default answer is a score that
    depends only on the first image sent, so every run of one video gets the same score."""

    def __init__(self, port: int, script=None):
        self.requests: list[dict] = []
        self.script = script or (lambda n, body, h: (200, good_reply(body)))
        lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw) if raw else {}
                with lock:
                    n = len(judge.requests)
                    judge.requests.append({"body": body, "headers": dict(self.headers)})
                status, payload = judge.script(n, body, dict(self.headers))
                data = payload.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def chat(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})


def good_reply(body: dict) -> str:
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    return chat(str(int(hashlib.sha256(url.encode()).hexdigest(), 16) % 5 + 1))


@pytest.fixture()
def judges():
    started: list[PortJudge] = []

    def start(port, script=None):
        j = PortJudge(port, script)
        started.append(j)
        return j
    yield start
    for j in started:
        j.close()


@pytest.fixture()
def bench(tiny_bench):
    """The tiny bench restricted to the 3 samples with a video (nothing else is missing)."""
    ej = tiny_bench["eval_json"]
    data = json.loads(ej.read_text())
    ej.write_text(json.dumps({k: data[k] for k in tiny_bench["with_video"]}))
    return tiny_bench


def _cmd(bench, out: Path, url: str, *extra: str) -> list[str]:
    return ["eval", "--benchmark", "opens2v", "--domain", "open", "--videos", str(bench["videos"]),
            "--out", str(out), "--eval-json", str(bench["eval_json"]), "--metrics", "natural",
            "--judge-url", url, "--judge-model", "test-judge", "-O", "natural.runs=2",
            "-O", "natural.max_retries=0", "-O", "natural.backoff_s=0.01", "-O", "natural.concurrency=1", *extra]


def _invoke(args, env=None):
    return CliRunner().invoke(make_app(), args, env=env)


def _all_output(r) -> str:
    parts = [r.output]
    for attr in ("stdout", "stderr"):
        try:
            parts.append(getattr(r, attr))
        except (ValueError, AttributeError):
            pass
    return "\n".join(parts)


def _results(out: Path) -> dict:
    res = json.loads((out / "results.json").read_text())
    res.pop("wall_s")
    return res


def _rows(out: Path) -> list[dict]:
    lines = (out / "raw" / "natural.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def _comparable_rows(out: Path) -> dict:
    rows = _rows(out)
    assert len({r["id"] for r in rows}) == len(rows)          # one row per id
    return {r["id"]: {k: v for k, v in r.items() if k != "elapsed_s"} for r in rows}


def _clean_run(bench, tmp_path, judges):
    port = _free_port()
    judge = judges(port)
    out = tmp_path / "clean"
    r = _invoke(_cmd(bench, out, f"http://127.0.0.1:{port}/v1", "-q"))
    assert r.exit_code == 0, r.output
    assert len(judge.requests) == 6
    return out


# ----------------------------------------------------------------------------- 1. retry of missing judgements

def test_unreachable_judge_is_missing_then_retried_to_the_clean_result(bench, tmp_path, judges, no_judge_env):
    clean = _clean_run(bench, tmp_path, judges)
    port = _free_port()                       # nothing listens there yet: connection refused
    url = f"http://127.0.0.1:{port}/v1"
    out = bench["out"]
    r = _invoke(_cmd(bench, out, url, "--json"))
    assert r.exit_code == 1, r.output
    res = json.loads(r.stdout)
    assert res["metrics"]["natural"] is None
    assert set(res["missing_values"]["natural"]) == set(bench["with_video"])
    assert all("retried on rerun" in why for why in res["missing_values"]["natural"].values())
    assert any("rerun the same command" in i for i in res["issues"])
    rows = _rows(out)
    assert all(row["status"] == "missing" and row["retry"] is True and row["value"] is None for row in rows)
    first = rows[0]
    assert "connection error" in first["error"] and "2 of 2 judge runs gave no score" in first["error"]
    # after 3 failed requests in a row the rest of the run does not ask (and says so)
    assert any("not asked" in row["error"] for row in rows[1:])

    judge = judges(port)                      # the judge is back, same URL, same command
    r = _invoke(_cmd(bench, out, url, "--json"))
    assert r.exit_code == 0, r.output
    assert len(judge.requests) == 6
    assert _results(out) == _results(clean)
    assert _comparable_rows(out) == _comparable_rows(clean)

    r = _invoke(_cmd(bench, out, url, "--json"))          # nothing is missing: nothing is asked
    assert r.exit_code == 0 and len(judge.requests) == 6


def test_only_the_missing_runs_are_asked_again(bench, tmp_path, judges, no_judge_env):
    clean = _clean_run(bench, tmp_path, judges)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"

    def flaky(n, body, h):
        if n in (1, 4):
            return 500, '{"error": {"message": "overloaded"}}'
        if n == 2:
            return 200, chat("I cannot tell from these frames.")
        return 200, good_reply(body)
    judge = judges(port, flaky)
    out = bench["out"]
    r = _invoke(_cmd(bench, out, url, "-q"))
    assert r.exit_code == 1
    assert len(judge.requests) == 6
    res = _results(out)
    gaps = res["missing_values"]["natural"]
    assert len(gaps) == 3                     # requests 1 | 2 | 4 belong to videos 1 | 2 | 3
    assert "HTTP 500" in "".join(gaps.values()) and "unparsable answer" in "".join(gaps.values())
    assert res["metrics"]["natural"] is None
    rows = {row["id"]: row for row in _rows(out)}
    assert [run["score"] is None for run in rows[bench["with_video"][0]]["details"]["runs"]] == [False, True]
    assert rows[bench["with_video"][1]]["details"]["runs"][0]["unparsed_answer"].startswith("I cannot tell")

    judge.script = lambda n, body, h: (200, good_reply(body))
    r = _invoke(_cmd(bench, out, url, "-q"))
    assert r.exit_code == 0, r.output
    assert len(judge.requests) == 6 + 3       # exactly the three runs without a score
    assert _results(out) == _results(clean)
    assert _comparable_rows(out) == _comparable_rows(clean)
    metrics_file = json.loads((out / "metrics" / "natural.json").read_text())
    assert metrics_file["n_retried"] == 3 and metrics_file["n_retry"] == 0


def test_rows_from_before_the_retry_flag_are_retried(bench, tmp_path, judges, no_judge_env):
    """Older runs wrote an unreachable judge as a plain `missing` row: a rerun asks again too."""
    clean = _clean_run(bench, tmp_path, judges)
    out = bench["out"]
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    judge = judges(port)
    assert _invoke(_cmd(bench, out, url, "-q")).exit_code == 0
    rows = _rows(out)
    rows[0] = {"id": rows[0]["id"], "status": "missing", "value": None,
               "details": {"runs": [{"score": None, "error": "judge gave no usable answer"}] * 2, "n_scored": 0,
                           "model": "test-judge"}}
    (out / "raw" / "natural.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    n = len(judge.requests)
    r = _invoke(_cmd(bench, out, url, "-q"))
    assert r.exit_code == 0, r.output
    assert len(judge.requests) == n + 2
    assert _results(out) == _results(clean)


def test_evaluate_api_retries_missing_judgements(bench, judges, no_judge_env):
    port = _free_port()
    opts = {"natural": {"base_url": f"http://127.0.0.1:{port}/v1", "model": "test-judge", "runs": 1,
                        "max_retries": 0, "backoff_s": 0.01, "stop_after_failures": 0}}
    kw = {"metrics": ["natural"], "metric_options": opts, "eval_json": bench["eval_json"]}
    res = runner.evaluate("open", bench["videos"], None, bench["out"], **kw)
    assert res["issues"] and res["metrics"]["natural"] is None
    assert "rerun the same command to retry" in res["missing_metrics"]["natural"]
    assert all("not asked" not in why for why in res["missing_values"]["natural"].values())   # breaker off
    judge = judges(port)
    res = runner.evaluate("open", bench["videos"], None, bench["out"], **kw)
    assert res["issues"] == [] and res["missing_values"] == {} and res["metrics"]["natural"] is not None
    assert len(judge.requests) == 3


# ----------------------------------------------------------------------------- 2. secrets

def _scan(out: Path, *secrets: str) -> None:
    files = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    for p in files:
        text = p.read_bytes().decode("utf-8", "replace")
        for s in secrets:
            assert s not in text, f"{s!r} written to {p}"


def _echo_everything(n, body, h):
    """A hostile judge that echoes the credentials it got: in error bodies and in its answers."""
    auth = h.get("Authorization", "")
    if n % 3 == 0:
        return 500, json.dumps({"error": f"upstream rejected {auth}"})
    if n % 3 == 1:
        return 200, chat(f"Your header was {auth}; I refuse to score.")
    return 200, good_reply(body)


def test_key_in_env_never_reaches_files_console_or_logs(bench, judges, no_judge_env, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level(logging.DEBUG)
    port = _free_port()
    judge = judges(port, _echo_everything)
    url = f"http://127.0.0.1:{port}/v1"
    out = bench["out"]
    for extra in (["--json"], [], ["-q"]):
        r = _invoke(_cmd(bench, out, url, "--judge-key-env", KEY_ENV, "-O", "natural.max_retries=1", *extra))
        assert r.exit_code in (0, 1), r.output
        assert SECRET not in _all_output(r)
    assert judge.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"    # the key was used
    _scan(out, SECRET)
    assert SECRET not in caplog.text
    assert "***" in json.dumps(_rows(out))                  # the echoes were masked, not dropped


@pytest.mark.parametrize("by_mistake", [SECRET, "abcDEF0123456789secretish", "", "key with spaces"])
def test_a_key_passed_in_place_of_the_variable_name_is_refused_unechoed(bench, judges, no_judge_env, by_mistake):
    port = _free_port()
    judge = judges(port)
    out = bench["out"]
    r = _invoke(_cmd(bench, out, f"http://127.0.0.1:{port}/v1", "--judge-key-env", by_mistake))
    assert r.exit_code == 2
    text = _all_output(r)
    assert "--judge-key-env takes the NAME of an environment variable holding the key (like OPENAI_API_KEY), " \
           "not the key itself" in " ".join(text.split())
    if by_mistake:
        assert by_mistake not in text
        _scan(out, by_mistake)
    assert judge.requests == []                              # refused before anything ran
    # the same through -O natural.api_key_env
    r = _invoke(_cmd(bench, out, f"http://127.0.0.1:{port}/v1", "-O", f"natural.api_key_env={by_mistake}"))
    assert r.exit_code == 2 and "takes the NAME" in r.output
    if by_mistake:
        assert by_mistake not in _all_output(r)


def test_a_key_by_value_through_the_python_api_is_refused_unechoed(bench):
    with pytest.raises(runner.MetricOptionsError) as e:
        runner.evaluate("open", bench["videos"], None, bench["out"], metrics=["natural"],
                        metric_options={"natural": {"api_key_env": SECRET, "base_url": "http://127.0.0.1:9/v1"}},
                        eval_json=bench["eval_json"])
    assert SECRET not in str(e.value) and "takes the NAME" in str(e.value)
    with pytest.raises(ValueError) as e:
        JudgeClient("http://127.0.0.1:9/v1", "m", SECRET)
    assert SECRET not in str(e.value)
    # a valid-looking name that is not set is never shown either (it might be a key)
    m = NaturalScore(api_key_env="abcDEF0123456789secretish")
    assert "abcDEF0123456789secretish" not in repr(m)


def test_credentials_in_the_endpoint_url_are_used_and_redacted(bench, judges, no_judge_env, caplog):
    caplog.set_level(logging.DEBUG)
    port = _free_port()
    judge = judges(port, _echo_everything)
    url = f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{port}/v1"
    token = base64.b64encode(f"{URL_USER}:{URL_PASSWORD}".encode()).decode()
    out = bench["out"]
    secrets = (URL_PASSWORD, URL_USER, token)
    for extra in (["--json"], []):
        r = _invoke(_cmd(bench, out, url, "-O", "natural.max_retries=1", *extra))
        assert r.exit_code in (0, 1), r.output
        for s in secrets:
            assert s not in _all_output(r)
    assert judge.requests[0]["headers"]["Authorization"] == f"Basic {token}"      # sent as HTTP Basic auth
    _scan(out, *secrets)
    assert not any(s in caplog.text for s in secrets)

    # an endpoint that refuses them: the reason names the endpoint, with the userinfo as ***
    judge.script = lambda n, body, h: (401, json.dumps({"error": f"bad credentials {h.get('Authorization')}"}))
    out2 = out.parent / "out401"
    r = _invoke(_cmd(bench, out2, url, "--json"))
    assert r.exit_code == 1
    res = json.loads(r.stdout)
    assert f"http://***@127.0.0.1:{port}/v1" in res["missing_metrics"]["natural"]
    for s in secrets:
        assert s not in _all_output(r)
    _scan(out2, *secrets)


def test_url_helpers():
    assert split_url_credentials("http://u:p@h:1/v1") == ("http://h:1/v1", "u:p")
    assert split_url_credentials("https://api.example.com/v1") == ("https://api.example.com/v1", None)
    assert redact_url("http://u:p%40x@h:1/v1") == "http://***@h:1/v1"
    assert redact_url("http://h/v1") == "http://h/v1"
    c = JudgeClient("http://u:p4ssw0rd@h:1/v1/", "m", None)
    assert c.url == "http://h:1/v1/chat/completions"
    assert "p4ssw0rd" not in repr(c) and "***@h:1" in repr(c)
    assert c.scrub("echo u:p4ssw0rd and p4ssw0rd") == "echo *** and ***"
    assert "p4ssw0rd" not in repr(NaturalScore(base_url="http://u:p4ssw0rd@h:1/v1"))


# ----------------------------------------------------------------------------- 3. --models

def test_models_option_sets_the_models_dir(bench, tmp_path, monkeypatch, no_judge_env):
    monkeypatch.delenv("S2VFORGE_MODELS", raising=False)
    r = _invoke(["eval", "--help"], env={"COLUMNS": "200"})
    assert "Folder holding reference model weights (sets $S2VFORGE_MODELS)." in " ".join(r.output.split())
    models = tmp_path / "models"
    models.mkdir()
    seen = {}
    real = runner.evaluate

    def spy(*a, **kw):
        seen["env"] = os.environ.get("S2VFORGE_MODELS")
        return real(*a, **kw)
    monkeypatch.setattr(runner, "evaluate", spy)
    base = ["eval", "--domain", "open", "--videos", str(bench["videos"]), "--out", str(bench["out"]),
            "--eval-json", str(bench["eval_json"]), "--metrics", "motion_amplitude", "-q"]
    # monkeypatch restores the variable afterwards; the CLI sets it in this process
    monkeypatch.setenv("S2VFORGE_MODELS", "")
    r = _invoke(base + ["--models", str(models)])
    assert r.exit_code == 0, r.output
    assert seen["env"] == str(models.resolve())
    r = _invoke(base + ["--models", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "--models" in r.output
