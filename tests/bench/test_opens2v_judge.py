"""The judge client and NaturalScore against a real local HTTP server."""
from __future__ import annotations

import base64
import logging
import time

import numpy as np
import pytest

from s2vforge.backends.errors import BackendUnavailable
from s2vforge.backends.judge import (
    JudgeAuthError,
    JudgeClient,
    JudgeError,
    jpeg_data_url,
    parse_retry_after,
    parse_score,
)
from s2vforge.bench.opens2v.metrics.base import Sample, Video
from s2vforge.bench.opens2v.metrics.natural import NATURAL_RUBRIC, NaturalScore

SECRET = "sk-test-DO-NOT-LEAK-7f3a9c"
KEY_ENV = "S2VFORGE_TEST_JUDGE_KEY"


@pytest.fixture()
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return KEY_ENV


def _client(server, key_env=None, **kw):
    kw.setdefault("timeout_s", 5)
    kw.setdefault("max_retries", 3)
    kw.setdefault("backoff_s", 0.01)
    return JudgeClient(server.base_url, "test-judge", key_env, **kw)


@pytest.mark.parametrize("answer,expected", [
    ("4", 4.0), ("**3**", 3.0), ("5 - Definitely Real", 5.0), ('{"score": 2}', 2.0),
    ('```json\n{"score": 4}\n```', 4.0), ('{"score": 4', 4.0), ("Score: 1", 1.0),
    ("I would rate this 4/5 because faces are stable.", 4.0), ("The naturalness score is 3.5.", 3.5),
    ("4\n\nMostly natural; frames 3 and 7 show slight warping.", 4.0),
    ("7/10", None), ("6", None), ("0", None), ("Between 3 and 4.", None), ("I can't judge this.", None),
    ("1. Common sense: fine\n2. Physics: fine", None), ("", None), ("{not json at all", None),
])
def test_parse_score(answer, expected):
    assert parse_score(answer) == expected


def test_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0    # in the past
    assert parse_retry_after("soon") is None


def test_good_answer_sends_images_key_and_model(judge_server, chat_reply, key_env):
    server = judge_server(lambda n, body, h: (200, {"Content-Type": "application/json"}, chat_reply(" 4 "), 0))
    img = np.zeros((480, 832, 3), np.uint8)
    img[:, :, 0] = 200
    url = jpeg_data_url(img, 512)
    out = _client(server, key_env).chat([{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": "rate"}])
    assert out.strip() == "4"
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert req["body"]["model"] == "test-judge"
    part = req["body"]["messages"][0]["content"][0]
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/jpeg;base64,")
    # the image really is a 512-wide JPEG of a red frame (RGB order preserved)
    import cv2
    jpg = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert jpg.shape[:2] == (295, 512)
    assert jpg[..., 2].mean() > 150 and jpg[..., 0].mean() < 40


def test_unreadable_body_is_retried_then_succeeds(judge_server, chat_reply):
    def script(n, body, h):
        return (200, {}, "<html>bad gateway page</html>", 0) if n == 0 else (200, {}, chat_reply("3"), 0)
    server = judge_server(script)
    assert _client(server).chat("x") == "3"
    assert len(server.requests) == 2


def test_timeout_is_retried(judge_server, chat_reply):
    server = judge_server(lambda n, body, h: (200, {}, chat_reply("2"), 1.0 if n == 0 else 0))
    t0 = time.perf_counter()
    assert _client(server, timeout_s=0.3).chat("x") == "2"
    assert len(server.requests) == 2
    assert time.perf_counter() - t0 < 3


def test_429_with_retry_after_then_success(judge_server, chat_reply):
    def script(n, body, h):
        if n == 0:
            return 429, {"Retry-After": "1"}, '{"error": {"message": "rate limited"}}', 0
        return 200, {}, chat_reply("5"), 0
    server = judge_server(script)
    t0 = time.perf_counter()
    assert _client(server, backoff_s=0.01).chat("x") == "5"
    elapsed = time.perf_counter() - t0
    assert elapsed >= 0.95            # waited as told, not the 10 ms backoff
    assert len(server.requests) == 2


def test_retry_after_is_used_as_the_delay(judge_server, chat_reply):
    def script(n, body, h):
        return (503, {"Retry-After": "7"}, "busy", 0) if n < 2 else (200, {}, chat_reply("4"), 0)
    slept: list[float] = []
    server = judge_server(script)
    assert _client(server, sleep=slept.append).chat("x") == "4"
    assert slept == [7.0, 7.0]


def test_persistent_500_gives_up_with_judge_error(judge_server):
    slept: list[float] = []
    server = judge_server(lambda n, body, h: (500, {}, "internal error", 0))
    with pytest.raises(JudgeError, match="HTTP 500"):
        _client(server, max_retries=3, backoff_s=1.0, sleep=slept.append).chat("x")
    assert len(server.requests) == 4
    assert len(slept) == 3 and slept[0] < slept[2]          # exponential ladder (with jitter)
    assert all(0.5 * 2 ** i <= d <= 2 ** i for i, d in enumerate(slept))


def test_client_error_is_not_retried(judge_server):
    server = judge_server(lambda n, body, h: (400, {}, '{"error": "bad request"}', 0))
    with pytest.raises(JudgeError, match="not retried"):
        _client(server).chat("x")
    assert len(server.requests) == 1


def test_key_never_leaks_into_errors_or_logs(judge_server, key_env, caplog):
    # a hostile server echoes the Authorization header back in its error bodies
    def script(n, body, h):
        return (500 if n < 2 else 401), {}, f"bad key {h.get('Authorization')}", 0
    server = judge_server(script)
    client = _client(server, key_env, max_retries=3)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(JudgeAuthError) as info:
        client.chat("x")
    assert SECRET not in str(info.value)
    assert KEY_ENV in str(info.value)                       # says *where* the key comes from
    assert SECRET not in caplog.text and "***" in caplog.text
    assert SECRET not in repr(client)
    assert isinstance(info.value, BackendUnavailable)


@pytest.fixture()
def face_video(tiny_clips):
    return Video(tiny_clips[0]), Sample(id="singleface_1", prompt="a woman smiles", ref_paths=[])


def test_natural_score_averages_runs_and_records_missing(judge_server, chat_reply, face_video, key_env):
    answers = iter(["4", "I am not sure what to say.", '{"score": 5}', "3"])
    server = judge_server(lambda n, body, h: (200, {}, chat_reply(next(answers)), 0))
    metric = NaturalScore(base_url=server.base_url, model="test-judge", api_key_env=key_env, backoff_s=0.01)
    metric.load()
    rec = metric.compute_record(*face_video)
    # one run did not score: the video is missing (never the mean of 2 of 3), and marked for retry
    assert rec["value"] is None and rec["retry"] is True
    assert "1 of 3 judge runs gave no score: unparsable answer" in rec["missing"]
    assert [r["score"] for r in rec["details"]["runs"]] == [4.0, None, 5.0]
    assert rec["details"]["runs"][1]["unparsed_answer"].startswith("I am not sure")
    assert len(server.requests) == 3
    content = server.requests[0]["body"]["messages"][0]["content"]
    assert sum(p["type"] == "image_url" for p in content) == 10      # a 10-frame clip: stride 1, all frames
    assert content[-1]["text"] == NATURAL_RUBRIC
    # a rerun asks again only for the run that did not score
    again = metric.compute_record(*face_video, previous={"id": "singleface_1", "status": "missing",
                                                          "details": rec["details"], "retry": True})
    assert len(server.requests) == 4
    assert again["value"] == pytest.approx(4.0) and "retry" not in again and "missing" not in again
    assert again["details"] == {"runs": [{"score": 4.0}, {"score": 3.0}, {"score": 5.0}], "n_scored": 3,
                                "model": "test-judge"}


def test_natural_all_runs_failing_is_missing_not_guessed(judge_server, face_video):
    server = judge_server(lambda n, body, h: (500, {}, "down", 0))
    metric = NaturalScore(base_url=server.base_url, runs=2, max_retries=1, backoff_s=0.01)
    metric.load()
    rec = metric.compute_record(*face_video)
    assert rec["value"] is None
    assert all(r["score"] is None and "HTTP 500" in r["error"] for r in rec["details"]["runs"])


def test_natural_without_endpoint_is_unavailable(no_judge_env):
    with pytest.raises(BackendUnavailable, match="S2VFORGE_JUDGE_BASE_URL"):
        NaturalScore().load()


def test_natural_prompt_file_replaces_rubric(tmp_path, judge_server, chat_reply, face_video):
    p = tmp_path / "official_prompt.txt"
    p.write_text("Rate realism 1-5. Only the number.")
    server = judge_server(lambda n, body, h: (200, {}, chat_reply("2"), 0))
    metric = NaturalScore(base_url=server.base_url, runs=1, prompt_path=p)
    metric.load()
    assert metric.compute(*face_video) == 2.0
    assert server.requests[0]["body"]["messages"][0]["content"][-1]["text"] == "Rate realism 1-5. Only the number."
