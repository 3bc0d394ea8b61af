"""VlmVerifier against a 127.0.0.1 OpenAI-compatible stub."""
from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from s2vforge.backends.judge import JudgeAuthError, JudgeClient
from s2vforge.recipes import load_recipe
from s2vforge.stages.pairs.verify import VlmVerifier, parse_vlm_answer, vlm_verifier_from_config
from s2vforge.stages.recipe_keys import MissingRecipeKey

VLM = load_recipe(None)["pairs"]["verify"]["vlm"]      # the default recipe's endpoint settings (off: no base_url)

SECRET = "sk-test-pairs-verify-NEVER-SHOWN"
KEY_ENV = "S2VFORGE_TEST_PAIRS_VLM_KEY"


def replying(status: int, payload: str):
    """A judge_server script answering every request with `status` and a JSON body."""
    return lambda n, body, headers: (status, {"Content-Type": "application/json"}, payload, 0)


@pytest.fixture()
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return KEY_ENV


def _verifier(stub, key_env=None, **kw) -> VlmVerifier:
    client = JudgeClient(stub.base_url, "vlm-test", key_env, timeout_s=5, max_retries=kw.pop("max_retries", 1),
                         backoff_s=0.01)
    return VlmVerifier(client, long_side=kw.pop("long_side", VLM["long_side"]), **kw)


def test_json_answer_parsed_and_request_has_both_images(judge_server, chat_reply, key_env, objs, bgs):
    stub = judge_server(replying(200, chat_reply(
        '```json\n{"same_identity": "yes", "context_different": "no", "reason": "same mug, same kitchen"}\n```')))
    ref = objs["coffee"]                                  # RGBA crop
    frame = bgs["grass"]
    out = _verifier(stub, key_env, long_side=256).verify(ref, frame, "a coffee cup")
    assert [v.check for v in out] == ["vlm_identity", "vlm_context"]
    assert out[0].ok is True and out[0].score == 1.0 and "same mug" in out[0].detail
    assert out[1].ok is False and out[1].score == 0.0
    body = stub.requests[0]["body"]
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    assert "a coffee cup" in parts[2]["text"] and "same_identity" in parts[2]["text"]
    assert body["temperature"] == 0.0 and body["model"] == "vlm-test"
    assert stub.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    # image 1 is the reference on white (alpha applied), image 2 the frame, both at long side 256
    imgs = [cv2.imdecode(np.frombuffer(base64.b64decode(p["image_url"]["url"].split(",", 1)[1]), np.uint8),
                         cv2.IMREAD_COLOR) for p in parts[:2]]
    assert max(imgs[0].shape[:2]) == 256 and max(imgs[1].shape[:2]) == 256
    assert imgs[0][0, 0].min() > 240                      # outside the ellipse alpha -> white


@pytest.mark.parametrize("answer,expected", [
    ('{"same_identity": true, "context_different": true, "reason": "x"}', (True, True)),
    ('Sure! {"Same Identity": "No", "context_different": "Yes."} hope that helps', (False, True)),
    ('{"same_identity": "maybe", "context_different": "yes"}', (None, True)),
])
def test_answer_variants(judge_server, chat_reply, answer, expected):
    stub = judge_server(replying(200, chat_reply(answer)))
    out = _verifier(stub).verify(np.zeros((40, 40, 3), np.uint8), np.zeros((60, 80, 3), np.uint8), "dog")
    assert (out[0].ok, out[1].ok) == expected


def test_garbage_answer_is_undecided(judge_server, chat_reply):
    stub = judge_server(replying(200, chat_reply("I think they look kind of similar?")))
    out = _verifier(stub).verify(np.zeros((40, 40, 3), np.uint8), np.zeros((60, 80, 3), np.uint8), "dog")
    assert [v.ok for v in out] == [None, None]
    assert all("unparseable" in v.detail for v in out)
    assert str(out[0]).startswith("vlm_identity:unknown:unparseable")


def test_server_error_is_undecided_with_reason_and_no_key(judge_server, key_env):
    stub = judge_server(replying(500, '{"error": "boom ' + SECRET + '"}'))
    out = _verifier(stub, key_env, max_retries=1).verify(np.zeros((40, 40, 3), np.uint8),
                                                          np.zeros((60, 80, 3), np.uint8), "dog")
    assert [v.ok for v in out] == [None, None]
    assert "endpoint error" in out[0].detail and "500" in out[0].detail
    assert all(SECRET not in str(v) for v in out)
    assert len(stub.requests) == 2                        # retried once, then gave up


def test_auth_failure_stops_the_run(judge_server, key_env):
    stub = judge_server(replying(401, '{"error": "bad key"}'))
    with pytest.raises(JudgeAuthError) as e:
        _verifier(stub, key_env).verify(np.zeros((40, 40, 3), np.uint8), np.zeros((60, 80, 3), np.uint8), "dog")
    assert SECRET not in str(e.value)


def test_from_config(judge_server, chat_reply):
    assert vlm_verifier_from_config(None) is None
    assert vlm_verifier_from_config({}) is None
    assert vlm_verifier_from_config(VLM) is None                    # the default recipe: no endpoint
    off = {**VLM, "base_url": "http://127.0.0.1:9/v1", "model": "m", "enabled": False}
    assert vlm_verifier_from_config(off) is None
    with pytest.raises(ValueError):
        vlm_verifier_from_config({**VLM, "base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(MissingRecipeKey, match="pairs.verify.vlm.timeout_s"):
        vlm_verifier_from_config({k: v for k, v in VLM.items() if k != "timeout_s"})
    stub = judge_server(replying(200, chat_reply('{"same_identity": "yes", "context_different": "yes"}')))
    v = vlm_verifier_from_config({**VLM, "base_url": stub.base_url, "model": "m", "api_key_env": KEY_ENV,
                                  "long_side": 128})
    assert v.long_side == 128 and v.client.api_key_env == KEY_ENV
    out = v.verify(np.zeros((40, 40, 3), np.uint8), np.zeros((60, 80, 3), np.uint8), "cat")
    assert [x.ok for x in out] == [True, True]


def test_parse_vlm_answer():
    assert parse_vlm_answer(None) is None
    assert parse_vlm_answer("no json here") is None
    assert parse_vlm_answer('{"Same_Identity": "yes"}') == {"same_identity": "yes"}
