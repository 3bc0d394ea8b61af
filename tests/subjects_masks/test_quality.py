"""Reference-crop quality on real cut-outs, and the VLM recheck against fake and HTTP endpoints."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import cv2
import numpy as np
import pytest

from s2vforge.backends.judge import JudgeAuthError, JudgeClient, JudgeError
from s2vforge.recipes import load_recipe
from s2vforge.stages.subjects.quality import crop_quality, fill_outside, parse_recheck, recheck_with_vlm

from .composites import SUBJECTS

QUALITY = load_recipe(None)["subjects"]["quality"]      # the default recipe's subjects.quality


def qcfg(**over) -> dict:
    return {**QUALITY, **over}


def _rgba(subject_name: str) -> tuple[np.ndarray, np.ndarray]:
    subject = next(s for s in SUBJECTS if s.name == subject_name)
    rgb, m = subject.cutout()
    return np.dstack([rgb, m.astype(np.uint8) * 255]), m


@pytest.fixture(scope="module")
def cat():
    return _rgba("cat_head")


def test_geometry_fields(cat):
    rgba, m = cat
    h, w = rgba.shape[:2]
    q = crop_quality(rgba, (100, 50, 100 + w, 50 + h), (720, 1280), qcfg(aesthetic=None, brisque=False))
    assert q["min_side"] == min(h, w)
    assert q["area_frac"] == pytest.approx(w * h / (720 * 1280))
    assert q["fill"] == pytest.approx(m.mean())
    assert q["aesthetic"] is None and q["brisque"] is None


def test_blur_is_detected_on_a_real_crop(cat):
    rgba, _ = cat
    blurred = rgba.copy()
    blurred[..., :3] = cv2.GaussianBlur(rgba[..., :3], (0, 0), 2.0)
    box = (0, 0, rgba.shape[1], rgba.shape[0])
    sharp_q = crop_quality(rgba, box, (480, 640), qcfg(aesthetic=None))
    blur_q = crop_quality(blurred, box, (480, 640), qcfg(aesthetic=None))
    # measured: Laplacian variance 501 vs 3.9, CPBD 0.40 vs 0.09, BRISQUE 5 vs 68
    assert blur_q["sharpness"] < 0.1 * sharp_q["sharpness"]
    assert blur_q["cpbd"] < sharp_q["cpbd"] - 0.15
    assert blur_q["brisque"] > sharp_q["brisque"] + 20


def test_outside_pixels_do_not_matter(cat):
    """Whether the cut-out keeps the frame's pixels under alpha 0 or zeroes them, the
    subject's quality is the same (the cut edge is not measured as detail)."""
    rgba, m = cat
    zeroed = rgba.copy()
    zeroed[~m, :3] = 0
    box = (0, 0, rgba.shape[1], rgba.shape[0])
    a = crop_quality(rgba, box, (480, 640), qcfg(aesthetic=None, brisque=False))
    b = crop_quality(zeroed, box, (480, 640), qcfg(aesthetic=None, brisque=False))
    assert b["sharpness"] == pytest.approx(a["sharpness"], rel=0.05)
    assert b["cpbd"] == pytest.approx(a["cpbd"], abs=0.02)
    filled = fill_outside(zeroed[..., :3], m, QUALITY["fill_sigma_frac"])
    assert filled[~m].mean() > 40            # no black border left to make a hard edge


def test_empty_and_rgb_crops():
    empty = np.zeros((40, 30, 4), np.uint8)
    q = crop_quality(empty, (0, 0, 30, 40), (100, 100), qcfg(aesthetic=None))
    assert q["fill"] == 0.0 and q["sharpness"] is None and q["cpbd"] is None and q["brisque"] is None
    rgb = np.ascontiguousarray(_rgba("coffee_cup")[0][..., :3])
    q = crop_quality(rgb, (0, 0, rgb.shape[1], rgb.shape[0]), (480, 640), qcfg(aesthetic=None, brisque=False))
    assert q["fill"] == 1.0 and q["sharpness"] > 100


def test_aesthetic_predictor_sees_the_subject_on_white(cat):
    rgba, m = cat
    seen = []

    class FakePredictor:
        def predict(self, images):
            seen.extend(images)
            return np.array([5.5], np.float32)

    q = crop_quality(rgba, (0, 0, rgba.shape[1], rgba.shape[0]), (480, 640),
                     qcfg(aesthetic=FakePredictor(), brisque=False))
    assert q["aesthetic"] == pytest.approx(5.5)
    assert (seen[0][~m] == 255).all() and np.array_equal(seen[0][m], rgba[..., :3][m])


def test_aesthetic_auto_without_weights_is_none(cat, tmp_path, monkeypatch):
    from s2vforge.stages.scores import aesthetic as aesthetic_scorer
    monkeypatch.setenv("S2VFORGE_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path))
    aesthetic_scorer.clear_cache()
    try:
        rgba, _ = cat
        q = crop_quality(rgba, (0, 0, 10, 10), (480, 640), qcfg(brisque=False))
        assert q["aesthetic"] is None
    finally:
        aesthetic_scorer.clear_cache()


# ----------------------------------------------------------------------------- VLM recheck

class FakeClient:
    model = "fake-vlm"

    def __init__(self, reply=None, error=None):
        self.reply, self.error, self.calls = reply, error, []

    def chat(self, content, **kw):
        self.calls.append((content, kw))
        if self.error:
            raise self.error
        return self.reply


CHECKS = ("completeness", "specificity", "phrase_match")
ALL_YES = json.dumps({c: {"answer": "yes", "reason": f"{c} ok"} for c in CHECKS})


def test_recheck_json_reply_and_request(cat):
    rgba, _ = cat
    client = FakeClient(ALL_YES)
    out = recheck_with_vlm(rgba, 'tabby "cat"', client)
    assert out["completeness"] == out["specificity"] == out["phrase_match"] == "yes"
    assert out["phrase_match_reason"] == "phrase_match ok"
    assert out["vlm_pass"] is True and out["vlm_error"] is None and out["vlm_model"] == "fake-vlm"
    content, kw = client.calls[0]
    assert content[0]["type"] == "image_url" and content[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "tabby 'cat'" in content[-1]["text"] and kw["temperature"] == 0.0


@pytest.mark.parametrize("reply,expected", [
    ("```json\n" + ALL_YES + "\n```", ("yes", "yes", "yes")),
    ('Sure! {"Completeness": "No - the tail is cut off", "specificity": true, "phrase match": {"verdict": "YES"}}',
     ("no", "yes", "yes")),
    ("1. **Completeness**: No. The head is cut by the border.\n2. Specificity: yes - one cat\n3. phrase_match: yes",
     ("no", "yes", "yes")),
    ("completeness: yes\nspecificity: maybe", ("yes", None, None)),
    ("I cannot help with that.", (None, None, None)),
    ("", (None, None, None)),
])
def test_parse_recheck_variants(reply, expected):
    parsed = parse_recheck(reply)
    assert tuple(parsed[c][0] for c in ("completeness", "specificity", "phrase_match")) == expected


def test_recheck_reasons_from_text():
    parsed = parse_recheck("completeness: no - the tail is cut off\nspecificity: yes\nphrase_match: yes, a cat")
    assert parsed["completeness"] == ("no", "the tail is cut off")
    assert parsed["phrase_match"] == ("yes", "a cat")


def test_recheck_failures_are_missing_not_errors(cat):
    rgba, _ = cat
    out = recheck_with_vlm(rgba, "cat", FakeClient("completeness: no\nspecificity: ???"))
    assert out["completeness"] == "no" and out["specificity"] is None and out["vlm_pass"] is False
    assert "specificity" in out["vlm_error"] and "phrase_match" in out["vlm_error"]
    out = recheck_with_vlm(rgba, "cat", FakeClient("garbage"))
    assert out["vlm_pass"] is None and out["completeness"] is None
    out = recheck_with_vlm(rgba, "cat", FakeClient(error=JudgeError("503 after 6 attempts")))
    assert out["vlm_pass"] is None and "503" in out["vlm_error"]
    assert recheck_with_vlm(np.zeros((8, 8, 4), np.uint8), "cat", FakeClient(ALL_YES))["vlm_error"] == "empty crop"
    with pytest.raises(JudgeAuthError):
        recheck_with_vlm(rgba, "cat", FakeClient(error=JudgeAuthError("endpoint", ["$KEY"], "bad key")))


def test_recheck_through_a_real_http_endpoint(cat):
    """The JudgeClient path end to end against a local OpenAI-compatible stub server."""
    got = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got["body"] = body
            answer = '{"completeness": {"answer": "no", "reason": "ears cut"}, "specificity": {"answer": "yes", ' \
                     '"reason": "one cat"}, "phrase_match": {"answer": "yes", "reason": "a cat"}}'
            data = json.dumps({"choices": [{"message": {"content": answer}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = JudgeClient(f"http://127.0.0.1:{server.server_port}/v1", "qwen2.5-vl", api_key_env=None, max_retries=0)
        rgba, _ = cat
        out = recheck_with_vlm(rgba, "cat", client)
    finally:
        server.shutdown()
        server.server_close()
    assert (out["completeness"], out["completeness_reason"]) == ("no", "ears cut")
    assert out["vlm_pass"] is False and out["vlm_model"] == "qwen2.5-vl"
    parts = got["body"]["messages"][0]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,") and got["body"]["model"] == "qwen2.5-vl"
