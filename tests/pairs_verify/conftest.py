"""Fixtures: real-media objects/backgrounds, dlib face vectors of real faces, and a local
OpenAI-compatible chat-completions stub on 127.0.0.1."""
from __future__ import annotations

import sys
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
