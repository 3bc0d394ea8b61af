"""Session fixtures for the crop tests (media helpers live in crop_media.py)."""
from __future__ import annotations

import numpy as np
import pytest

from crop_media import decode_frames


@pytest.fixture(scope="session")
def bikes() -> list[np.ndarray]:
    return decode_frames("bikes.mp4", 12)


@pytest.fixture(scope="session")
def carphone() -> list[np.ndarray]:
    return decode_frames("carphone_pristine.mp4", 10)


@pytest.fixture(scope="session")
def ocr_detector():
    from s2vforge.backends.ocr import get_text_detector
    return get_text_detector("rapidocr")
