"""The endpoint captioner against the 127.0.0.1 chat-completions server of tests/conftest.py.

The server checks what it receives (the model, N frames as JPEG data URLs in the caption request, none
in the reformat request, no key in any body) and answers with real sentences.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from s2vforge.backends.errors import BackendUnavailable
from s2vforge.backends.judge import JudgeAuthError, JudgeClient
from s2vforge.recipes import load_recipe
from s2vforge.stages.caption.base import STRUCTURED_FIELDS, ClipInput
from s2vforge.stages.caption.endpoint import EndpointCaptioner, cache_key, faces_found
from s2vforge.stages.caption.prompts import load_prompt

KEY_ENV = "S2VFORGE_TEST_CAPTION_KEY"
KEY = "sk-test-caption-Zq8Hf3Lw9"
MODEL = "test-vlm"
N_FRAMES = 4

CAPTION = ("A woman in a red apron stirs a large pot on a gas stove in a bright kitchen. "
           "She lifts a wooden spoon, tastes the soup and smiles at the camera, which stays static.")
TAGS = "{'background': ['bright kitchen'], 'subject': ['woman'], 'object': ['red apron', 'large pot', 'gas stove', 'wooden spoon']}"
OHV = {"short_caption": "A woman in a red apron stirs soup in a bright kitchen.",
       "long_caption": CAPTION, "subjects": "woman",
       "appearance_caption": "A woman in a red apron.",
       "humanmotion_caption": "She stirs a pot, lifts a wooden spoon and tastes the soup.",
       "facemotion_caption": "Focused, then smiling.",
       "environment_caption": "A bright kitchen with a gas stove.",
       "camera": "static shot",
       "tags": {"background": ["bright kitchen"], "subject": ["woman"], "object": ["red apron", "large pot"]},
       "face_caption": "The woman smiles warmly with her eyes on the camera."}


def reply(text: str, finish_reason: str = "stop") -> str:
    return json.dumps({"id": "x", "object": "chat.completion",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": finish_reason}]})


def is_caption_request(body: dict) -> bool:
    return any(p.get("type") == "image_url" for p in body["messages"][0]["content"])


def text_of(body: dict) -> str:
    return "".join(p.get("text", "") for p in body["messages"][0]["content"] if p.get("type") == "text")


class Answers:
    """A server script: checks each request, answers the caption step and the reformat step."""

    def __init__(self, caption=CAPTION, reformat=TAGS, caption_finish="stop", fail_first: int = 0,
                 hold_s: float = 0.0):
        self.caption, self.reformat, self.caption_finish = caption, reformat, caption_finish
        self.fail_first, self.hold_s = fail_first, hold_s
        self.problems: list[str] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def check(self, body: dict, headers: dict) -> None:
        raw = json.dumps(body)
        if body.get("model") != MODEL:
            self.problems.append(f"model {body.get('model')!r}")
        if KEY in raw or "Authorization" in raw or "Bearer" in raw:
            self.problems.append("the key is in the request body")
        if headers.get("Authorization") != f"Bearer {KEY}":
            self.problems.append("no Authorization header")
        parts = body["messages"][0]["content"]
        images = [p for p in parts if p.get("type") == "image_url"]
        if is_caption_request(body):
            if len(images) != N_FRAMES:
                self.problems.append(f"{len(images)} images, expected {N_FRAMES}")
            if not all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in images):
                self.problems.append("an image is not a JPEG data URL")
            if parts[-1].get("type") != "text":
                self.problems.append("the instruction does not follow the images")
        elif images:
            self.problems.append("images in the reformat request")

    def __call__(self, n: int, body: dict, headers: dict):
        self.check(body, headers)
        if n < self.fail_first:
            return 500, {}, '{"error": "overloaded"}', 0
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold_s:
                time.sleep(self.hold_s)
            if is_caption_request(body):
                return 200, {"Content-Type": "application/json"}, reply(self.caption, self.caption_finish), 0
            answer = self.reformat if isinstance(self.reformat, str) else json.dumps(self.reformat)
            return 200, {"Content-Type": "application/json"}, reply(answer), 0
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def frames(n: int = N_FRAMES, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, 48 * 32 * 3).reshape(32, 48, 3)
    return [np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def clip(tmp_path: Path, clip_id: str = "clip0", measured: dict | None = None, seed: int = 0) -> ClipInput:
    return ClipInput(clip_id=clip_id, path=tmp_path / f"{clip_id}.mp4", frames=frames(seed=seed),
                     times=[0.25 + 0.5 * i for i in range(N_FRAMES)], duration_s=2.0, fps=25.0, size=(48, 32),
                     measured=dict(measured or {}), cache_dir=tmp_path / "cache" / clip_id)


def captioner(server, prompt: str = "opens2v", **endpoint) -> EndpointCaptioner:
    cfg = load_recipe(None)["caption"]
    cfg["endpoint"].update({"base_url": server.base_url, "model": MODEL, "api_key_env": KEY_ENV,
                            "max_retries": 3, "backoff_s": 0.01, "timeout_s": 10}, **endpoint)
    cfg["prompt"] = prompt
    cap = EndpointCaptioner(cfg, sleep=lambda s: None)     # as stages/caption/pipeline.make_captioner builds it
    cap.setup()
    return cap


# ----------------------------------------------------------------------------- the two steps

def test_caption_and_tags_parsed(judge_server, tmp_path):
    answers = Answers()
    server = judge_server(answers)
    cap = captioner(server).caption(clip(tmp_path))
    assert answers.problems == []
    assert cap.error is None and cap.verdicts == []
    assert cap.long == CAPTION
    assert cap.short == "A woman in a red apron stirs a large pot on a gas stove in a bright kitchen."
    assert cap.subject_tags == ["woman"]
    assert cap.object_tags == ["red apron", "large pot", "gas stove", "wooden spoon"]
    assert cap.background_tags == ["bright kitchen"]
    assert cap.structured["subjects"] == "woman" and cap.structured["environment"] == "bright kitchen"
    assert set(cap.structured) == set(STRUCTURED_FIELDS)
    assert (cap.captioner, cap.model, cap.n_requests) == ("endpoint", MODEL, 2)
    assert cap.prompt_id == load_prompt("opens2v").prompt_id and cap.prompt_id.startswith("opens2v@")
    assert cap.face_caption is None
    row = cap.row("clip0")
    assert row["subject_tags"] == ["woman"] and row["prompt_id"] == cap.prompt_id

    first, second = (r["body"] for r in server.requests)
    prompt = load_prompt("opens2v")
    # OpenS2V-Nexus step3-1's prompt and sampling, step4-1's tag prompt with the caption in place
    assert text_of(first) == prompt.caption_text
    assert (first["max_tokens"], first["temperature"], first["top_p"], first["repetition_penalty"]) == \
        (512, 0.1, 0.001, 1.05)
    assert text_of(second).startswith("Given an image caption, please retrieve the entity words")
    assert text_of(second).endswith("Caption: " + CAPTION + " Output:")
    assert second["response_format"] == {"type": "json_object"} and second["max_tokens"] == 1024
    assert all(r["path"] == "/v1/chat/completions" for r in server.requests)


def test_openhumanvid_structured_and_face_caption(judge_server, tmp_path):
    fenced = "```json\n" + json.dumps(OHV, indent=1) + "\n```"
    answers = Answers(reformat=fenced)
    server = judge_server(answers)
    cap = captioner(server, prompt="openhumanvid").caption(clip(tmp_path, measured={"n_faces": 1, "n_people": 1}))
    assert answers.problems == [] and cap.error is None, cap.error
    assert cap.verdicts == []
    assert cap.short == OHV["short_caption"] and cap.long == CAPTION
    assert cap.structured == {"subjects": "woman", "appearance": OHV["appearance_caption"],
                              "action": OHV["humanmotion_caption"], "face_motion": OHV["facemotion_caption"],
                              "environment": OHV["environment_caption"], "camera": "static shot"}
    assert cap.subject_tags == ["woman"] and cap.object_tags == ["red apron", "large pot"]
    assert cap.face_caption == OHV["face_caption"]
    assert "face_caption" in text_of(server.requests[1]["body"])      # faces found: asked for


def test_no_face_caption_when_faces_unknown_or_absent(judge_server, tmp_path):
    server = judge_server(Answers(reformat=OHV))
    cap = captioner(server, prompt="openhumanvid")
    unknown = cap.caption(clip(tmp_path, "a"))
    none = cap.caption(clip(tmp_path, "b", measured={"n_faces": 0}, seed=1))
    assert unknown.face_caption is None and none.face_caption is None
    assert all("face_caption" not in text_of(r["body"]) for r in server.requests)
    assert faces_found({}) is None and faces_found({"n_faces": 0}) is False and faces_found({"n_faces": 2}) is True


def test_unreadable_reformat_answer_falls_back_to_the_caption(judge_server, tmp_path):
    server = judge_server(Answers(reformat="Sure! The woman is the subject and the kitchen is the background."))
    cap = captioner(server).caption(clip(tmp_path))
    assert cap.long == CAPTION and cap.short.startswith("A woman in a red apron")
    assert "reformat_unreadable" in cap.verdicts and "tags_unreadable" in cap.verdicts
    assert cap.subject_tags == [] and cap.error is None


# ----------------------------------------------------------------------------- retries, errors

def test_retries_on_500_then_success(judge_server, tmp_path):
    answers = Answers(fail_first=2)
    server = judge_server(answers)
    cap = captioner(server).caption(clip(tmp_path))
    assert cap.error is None and cap.long == CAPTION
    assert len(server.requests) == 4            # two 500s, then the caption, then the reformat
    assert cap.n_requests == 2                  # requests, not attempts
    assert answers.problems == []


def test_a_rejected_request_is_the_clips_error_not_a_crash(judge_server, tmp_path):
    server = judge_server(lambda n, body, headers: (400, {}, '{"error": "bad image"}', 0))
    cap = captioner(server).caption(clip(tmp_path))
    assert cap.error and "400" in cap.error and KEY not in cap.error
    assert cap.short is None and cap.long is None and len(server.requests) == 1


def test_bad_credentials_stop_the_run(judge_server, tmp_path):
    server = judge_server(lambda n, body, headers: (401, {}, '{"error": "bad key"}', 0))
    with pytest.raises(JudgeAuthError) as e:
        captioner(server).caption(clip(tmp_path))
    assert KEY not in str(e.value)


def test_setup_names_what_is_missing():
    cfg = load_recipe(None)["caption"]
    with pytest.raises(BackendUnavailable, match="caption.endpoint base_url"):
        EndpointCaptioner(cfg).setup()


def test_judge_client_complete_keeps_finish_reason(judge_server):
    server = judge_server(lambda n, body, headers: (200, {}, reply("A dog runs", "length"), 0))
    client = JudgeClient(server.base_url, MODEL, KEY_ENV)
    got = client.complete("Describe.", max_tokens=3, params={"top_p": 0.5})
    assert (got.text, got.finish_reason) == ("A dog runs", "length")
    assert server.requests[0]["body"]["top_p"] == 0.5
    assert client.chat("Describe.") == "A dog runs"          # the old call still returns text only


# ----------------------------------------------------------------------------- cache and resume

def test_cache_second_call_with_a_fresh_captioner_sends_nothing(judge_server, tmp_path):
    server = judge_server(Answers())
    first = captioner(server).caption(clip(tmp_path))
    assert len(server.requests) == 2 and first.n_requests == 2
    again = captioner(server).caption(clip(tmp_path))
    assert len(server.requests) == 2 and again.n_requests == 0
    assert again.row("clip0") == first.row("clip0")
    files = sorted((tmp_path / "cache" / "clip0").iterdir())
    assert len(files) == 2 and not [f for f in files if f.name.endswith(".tmp")]


class Killed(BaseException):
    """Stands for the process being killed (not an error the captioner may catch)."""


class DiesBeforeStep2(EndpointCaptioner):
    def _ask(self, clip, step, client, body, sent):
        if step == "reformat":
            raise Killed()
        return super()._ask(clip, step, client, body, sent)


def test_kill_between_step1_and_step2_then_rerun_sends_only_step2(judge_server, tmp_path):
    server = judge_server(Answers())
    cfg = load_recipe(None)["caption"]
    cfg["endpoint"].update({"base_url": server.base_url, "model": MODEL, "api_key_env": KEY_ENV})
    dying = DiesBeforeStep2.from_recipe(cfg)
    with pytest.raises(Killed):
        dying.caption(clip(tmp_path))
    assert len(server.requests) == 1 and is_caption_request(server.requests[0]["body"])

    cap = captioner(server).caption(clip(tmp_path))
    assert len(server.requests) == 2 and not is_caption_request(server.requests[1]["body"])
    assert cap.n_requests == 1 and cap.subject_tags == ["woman"]


def test_cache_key_depends_on_model_prompt_step_and_body():
    body = {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}
    k = cache_key(MODEL, "opens2v@1", "caption", body)
    assert len({k, cache_key("other", "opens2v@1", "caption", body), cache_key(MODEL, "opens2v@2", "caption", body),
                cache_key(MODEL, "opens2v@1", "reformat", body),
                cache_key(MODEL, "opens2v@1", "caption", {**body, "max_tokens": 5})}) == 5


def test_the_key_is_never_written(judge_server, tmp_path):
    server = judge_server(Answers(reformat=OHV))
    cap = captioner(server, prompt="openhumanvid")
    got = cap.caption(clip(tmp_path, measured={"n_faces": 2}))
    files = list((tmp_path / "cache").rglob("*"))
    assert [f for f in files if f.is_file()]
    for f in files:
        if f.is_file():
            text = f.read_text()
            assert KEY not in text and "Authorization" not in text and "Bearer" not in text
            rec = json.loads(text)
            assert set(rec) == {"clip_id", "step", "model", "prompt_id", "text", "finish_reason", "version"}
    assert KEY not in json.dumps(got.row("clip0"), default=str)
    assert KEY not in json.dumps(cap.config(), default=str) and KEY not in repr(cap._client)


# ----------------------------------------------------------------------------- quality on answers

def test_truncated_caption_is_repaired_before_the_reformat(judge_server, tmp_path):
    cut = CAPTION + " Behind her, a second cook opens the oven door and pulls out a tray of"
    server = judge_server(Answers(caption=cut, caption_finish="length"))
    cap = captioner(server).caption(clip(tmp_path))
    assert cap.verdicts == ["truncated_repaired"]
    assert cap.long == CAPTION                      # cut back to the last full sentence
    assert text_of(server.requests[1]["body"]).endswith("Caption: " + CAPTION + " Output:")


def test_refusal_is_rejected_and_not_reformatted(judge_server, tmp_path):
    server = judge_server(Answers(caption="I'm sorry, but I can't help with describing people in this video."))
    cap = captioner(server).caption(clip(tmp_path, measured={"n_faces": 1}))
    assert cap.short is None and cap.long is None and cap.error is None
    assert cap.verdicts == ["refusal"] and cap.n_requests == 1 and len(server.requests) == 1
    assert cap.prompt_id and cap.model == MODEL


def test_repetition_loop_is_cut(judge_server, tmp_path):
    loop = "A man stands at a kitchen counter and chops onions. " + "He smiles at the camera. " * 12
    server = judge_server(Answers(caption=loop.strip(), caption_finish="length"))
    cap = captioner(server).caption(clip(tmp_path, measured={"n_people": 1}))
    assert cap.verdicts == ["repetition_loop_repaired"]
    assert cap.long == "A man stands at a kitchen counter and chops onions. He smiles at the camera."


# ----------------------------------------------------------------------------- threads

def test_one_instance_from_several_threads_bounded_concurrency(judge_server, tmp_path):
    answers = Answers(hold_s=0.15)
    server = judge_server(answers)
    cap = captioner(server, concurrency=2)
    clips = [clip(tmp_path, f"c{i}", seed=i) for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(cap.caption, clips))
    assert [c.error for c in got] == [None] * 6 and all(c.long == CAPTION for c in got)
    assert sum(c.n_requests for c in got) == 12 == len(server.requests)
    assert answers.max_in_flight == 2 and answers.problems == []
