"""Subject phrases from captions: spaCy noun chunks, the fixed categories, verdicts, endpoint tags."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from s2vforge.stages.subjects.phrases import (
    category_of, extract_phrases, parse_tag_answer, phrases_endpoint, phrases_from_tags)


def _caption_phrases(res):
    return {p.text: p for p in res.phrases if p.source != "fixed"}


def test_english_caption_gives_normalised_phrases_and_categories():
    res = extract_phrases("Two young women walk their dogs past a red bicycle while a man holds a cat.", "spacy")
    assert res.verdicts == []
    fixed = [p.text for p in res.phrases if p.source == "fixed"]
    assert fixed == ["person", "face"]
    got = _caption_phrases(res)
    assert got["young woman"].category == "person" and got["young woman"].plural      # "Two" dropped, lemma
    assert got["dog"].category == "animal" and got["dog"].plural                     # "their" dropped
    assert got["red bicycle"].category == "object" and not got["red bicycle"].plural
    assert got["man"].category == "person" and got["man"].single_instance
    assert got["cat"].category == "animal"


def test_scene_words_body_parts_and_pronouns_are_not_subjects():
    res = extract_phrases("She raises her hands in the kitchen next to a kettle.", "spacy")
    got = _caption_phrases(res)
    assert "kettle" in got and got["kettle"].category == "object"
    assert got["kitchen"].category == "background" and got["kitchen"] not in res.subjects
    assert not any(p.head in ("she", "hand") for p in res.phrases)


@pytest.mark.parametrize("caption, verdict", [
    (None, "caption_missing"),
    ("", "caption_empty"),
    ("   ", "caption_empty"),
    ("Un homme marche avec son chien dans le parc.", "caption_not_english"),
    ("Eine Frau mit ihrem Hund läuft durch den Park.", "caption_not_english"),
    ("一个男人在公园里遛狗", "caption_not_english:script"),
    ("She holds it.", "caption_no_subject_phrases"),
])
def test_unusable_captions_give_only_the_fixed_categories_and_say_why(caption, verdict):
    res = extract_phrases(caption, "spacy")
    assert [p.text for p in res.subjects if p.source != "fixed"] == []
    assert {p.text for p in res.phrases if p.source == "fixed"} == {"person", "face"}
    assert len(res.verdicts) == 1 and res.verdicts[0].startswith(verdict)


def test_lexicon():
    assert category_of("woman") == "person" and category_of("portrait") == "face"
    assert category_of("retriever") == "animal" and category_of("teapot") == "object"
    assert category_of("beach") == "background" and category_of("cristiano", is_person_entity=True) == "person"


def test_tag_answers_json_and_the_papers_single_quoted_form():
    a = parse_tag_answer('```json\n{"background": ["street"], "subject": ["woman", "dogs"], "object": ["red top"]}\n```')
    assert a == {"background": ["street"], "subject": ["woman", "dogs"], "object": ["red top"]}
    b = parse_tag_answer("Output: {'background': [''], 'subject': ['woman'], 'object': ['mask', 'long brown hair']}")
    assert b["object"] == ["mask", "long brown hair"] and b["background"] == []
    assert parse_tag_answer("I cannot help with that.") is None
    ph = {p.text: p for p in phrases_from_tags(a)}
    assert ph["dogs"].category == "animal" and ph["dogs"].plural and ph["woman"].category == "person"
    assert "street" not in ph


class _ChatServer(BaseHTTPRequestHandler):
    answer = ""
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        out = json.dumps({"choices": [{"message": {"content": type(self).answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


def test_endpoint_backend_through_the_judge_client_on_a_loopback_server():
    from s2vforge.backends.judge import JudgeClient
    _ChatServer.answer = '{"background": ["beach"], "subject": ["surfer"], "object": ["yellow surfboard"]}'
    _ChatServer.seen = []
    srv = HTTPServer(("127.0.0.1", 0), _ChatServer)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        client = JudgeClient(f"http://127.0.0.1:{srv.server_port}/v1", "tagger", api_key_env=None, max_retries=0)
        res = phrases_endpoint("A surfer carries a yellow surfboard on the beach.", client)
        _ChatServer.answer = "no idea"
        bad = phrases_endpoint("A surfer carries a yellow surfboard on the beach.", client)
    finally:
        srv.shutdown()
    got = _caption_phrases(res)
    assert res.backend == "endpoint" and res.verdicts == []
    assert got["surfer"].category == "person" and got["yellow surfboard"].category == "object"
    prompt = _ChatServer.seen[0]["messages"][0]["content"][0]["text"]
    assert "Caption: {A surfer carries a yellow surfboard on the beach.}" in prompt
    assert bad.verdicts == ["tag_answer_unreadable"] and [p.text for p in bad.phrases] == ["person", "face"]
    assert phrases_endpoint(None, client).verdicts == ["caption_missing"]
