"""`caption` with an OpenAI-compatible endpoint on 127.0.0.1 that answers real sentences about
what each clip shows (it recognises the clip from the frames it is sent), then `subjects`: the
animals and objects the captions name are grounded (kept rows, crops), not only faces and
people. A killed caption run resumes without any request sent twice."""
from __future__ import annotations

import base64
import hashlib
import json
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from s2vforge.cli import run_caption_command, run_subjects_command
from s2vforge.corpus.synth import read_frames

from conftest import SHOWS, rows_by_video

CAPTIONS = {
    "astronaut": ("An astronaut in a white spacesuit stands in front of an American flag as the camera pans left.",
                  {"background": ["American flag"], "subject": ["astronaut"], "object": ["white spacesuit"]}),
    "chelsea": ("A tabby cat lies on a wooden floor and looks into the camera as the camera pans slowly.",
                {"background": ["wooden floor"], "subject": ["tabby cat"], "object": []}),
    "coffee": ("A cup of coffee stands on a saucer on a wooden table; the camera pans across it.",
               {"background": ["wooden table"], "subject": [], "object": ["cup"]}),
    "motorcycle_left": ("A red motorcycle is parked in a garage while the camera pans along it.",
                        {"background": ["garage"], "subject": [], "object": ["red motorcycle"]}),
}


def _hist(rgb: np.ndarray) -> np.ndarray:
    h = cv2.calcHist([cv2.resize(rgb, (64, 36))], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3).ravel()
    return h / max(h.sum(), 1)


@pytest.fixture(scope="module")
def references(captioned_corpus) -> dict[str, np.ndarray]:
    """What each corpus video looks like: a colour histogram of its middle frame."""
    return {name: _hist(read_frames(captioned_corpus / f"{name}.mp4", every=30)[1]) for name in SHOWS}


def _which(data_url: str, refs: dict) -> str:
    raw = base64.b64decode(data_url.split(",", 1)[1])
    bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    h = _hist(bgr[:, :, ::-1])
    return min(refs, key=lambda k: float(np.abs(refs[k] - h).sum()))


def make_script(refs, chat_reply, delay: float = 0.0):
    def script(n, body, headers):
        content = body["messages"][0]["content"]
        images = [c["image_url"]["url"] for c in content if c.get("type") == "image_url"]
        text = " ".join(c.get("text", "") for c in content if c.get("type") == "text")
        if images:                                     # step 1: the caption of what the frames show
            return 200, {"Content-Type": "application/json"}, chat_reply(CAPTIONS[_which(images[0], refs)][0]), delay
        said = text.rsplit("Caption:", 1)[-1]          # step 2: the tags of that caption
        name = next(k for k, (cap, _) in CAPTIONS.items() if cap in said)
        return 200, {"Content-Type": "application/json"}, chat_reply(json.dumps(CAPTIONS[name][1])), delay
    return script


def _copy(curated, tmp_path):
    import shutil
    ds = tmp_path / "ds"
    shutil.copytree(curated, ds)
    return ds


def test_endpoint_captions_then_subjects_ground_named_animals_and_objects(curated, fast_recipe, references,
                                                                         judge_server, chat_reply, tmp_path):
    ds = _copy(curated, tmp_path)
    server = judge_server(make_script(references, chat_reply))
    assert run_caption_command(ds, str(fast_recipe), 1, captioner="endpoint", endpoint=server.base_url,
                               model="qwen2.5-vl-7b", quiet=True) == 0
    caps = rows_by_video(ds, "captions")
    for name, (text, tags) in CAPTIONS.items():
        row, = caps[name]
        assert row["captioner"] == "endpoint" and row["model"] == "qwen2.5-vl-7b" and row["long"] == text
        assert row["subject_tags"] == tags["subject"] and row["object_tags"] == tags["object"]
        assert row["prompt_id"].startswith("opens2v@")
    assert len(server.requests) == 2 * len(CAPTIONS)
    assert run_subjects_command(ds, str(fast_recipe), 1, quiet=True) == 0
    subs = rows_by_video(ds, "subjects")
    for name, phrase, category in (("chelsea", "tabby cat", "animal"), ("coffee", "cup", "object")):
        kept = [s for s in subs[name] if s["keep"] and s["phrase"] == phrase]
        assert kept and kept[0]["category"] == category, (name, [(s["phrase"], s["keep"], s["checks"])
                                                                 for s in subs[name]])
        assert (ds / kept[0]["crop_path"]).is_file()
    assert any(s["keep"] and s["category"] in ("person", "face") for s in subs["astronaut"])
    # the report shows each clip's captions beside it
    from s2vforge.report.html import write_report
    html = write_report(ds).read_text()
    assert CAPTIONS["chelsea"][0] in html and "caption by endpoint" in html


def test_a_killed_caption_run_resumes_without_sending_any_request_twice(curated, fast_recipe, references,
                                                                        judge_server, chat_reply, tmp_path):
    ds = _copy(curated, tmp_path)
    server = judge_server(make_script(references, chat_reply, delay=0.4))
    cmd = [sys.executable, "-m", "s2vforge.cli", "caption", str(ds), "-r", str(fast_recipe), "--captioner",
           "endpoint", "--endpoint", server.base_url, "--model", "m", "--quiet"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while len(server.requests) < 3 and time.time() - t0 < 120:    # mid-run: the second clip's first request
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    n_before = len(server.requests)
    assert 0 < n_before < 2 * len(CAPTIONS)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    bodies = [hashlib.blake2b(json.dumps(q["body"], sort_keys=True).encode()).hexdigest() for q in server.requests]
    answered = len(bodies) - len(set(bodies))
    # at most the one request in flight when the run was killed may be asked again (it had no answer yet)
    assert answered <= 1, f"{answered} requests sent twice"
    assert len(set(bodies)) == 2 * len(CAPTIONS)
    assert pq.read_table(ds / "captions.parquet").num_rows == len(CAPTIONS)
