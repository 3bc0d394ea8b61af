"""Fixtures: real-media objects/backgrounds, dlib face vectors of real faces, and a local
OpenAI-compatible chat-completions stub on 127.0.0.1."""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import verify_media as composites  # noqa: E402


@pytest.fixture(scope="session")
def objs() -> dict[str, np.ndarray]:
    return composites.objects()


@pytest.fixture(scope="session")
def bgs() -> dict[str, np.ndarray]:
    return composites.backgrounds()


@pytest.fixture(scope="session")
def dlib_faces():
    from s2vforge.backends.face import DlibFaces
    return DlibFaces(upsample=0)      # no 2x pyramid: the faces below are >= 80 px, and it is 4x faster


@pytest.fixture(scope="session")
def face_vectors(dlib_faces) -> dict[str, dict[str, np.ndarray]]:
    """{"raw": {...}, "unit": {...}}: dlib's raw descriptor and DlibFaces.embed's (normalised) one
    of the largest face in astronaut, grace_hopper and carphone frames 0 and 110."""
    import av
    import cv2
    frames = {}
    with av.open(str(composites.packaged("carphone_pristine.mp4"))) as c:
        for k, fr in enumerate(c.decode(video=0)):
            if k in (0, 110):   # 176x144: upscale 2x so the HOG detector's 80 px window fits the face
                frames[k] = cv2.resize(fr.to_ndarray(format="rgb24"), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            if k >= 110:
                break
    images = {"astronaut": composites.load_rgb("astronaut.png"), "grace_hopper": composites.load_rgb("grace_hopper.jpg"),
              "carphone0": frames[0], "carphone110": frames[110]}
    raw, unit = {}, {}
    for name, img in images.items():
        found = dlib_faces.detect(img)
        assert found, f"no face found in {name}"
        face = max(found, key=lambda f: f.area)
        x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
        shape = dlib_faces.shape(img, dlib_faces._dlib.rectangle(x1, y1, x2, y2))
        raw[name] = np.asarray(dlib_faces.encoder.compute_face_descriptor(np.ascontiguousarray(img), shape), np.float64)
        unit[name] = dlib_faces.embed(img, face)           # the public (normalised) path
    return {"raw": raw, "unit": unit}


class ChatStub:
    """/v1/chat/completions on 127.0.0.1; `script(n, body)` -> (status, body str)."""

    def __init__(self, script):
        self.script = script
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append({"path": self.path, "body": json.loads(raw or b"{}"),
                                      "headers": dict(self.headers)})
                status, payload = stub.script(len(stub.requests) - 1, stub.requests[-1]["body"])
                data = payload.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_reply(text: str) -> str:
    return json.dumps({"id": "x", "object": "chat.completion",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}]})


@pytest.fixture()
def chat_stub():
    stubs: list[ChatStub] = []

    def start(script) -> ChatStub:
        s = ChatStub(script)
        stubs.append(s)
        return s

    yield start
    for s in stubs:
        s.close()
