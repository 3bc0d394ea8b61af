"""A small client for OpenAI-compatible chat-completions endpoints, used as a judge.

Works with hosted APIs and local servers (vLLM, SGLang, llama.cpp, LM Studio): POST
`{base_url}/chat/completions` with images as base64 data URLs. Stdlib only (urllib), so the
judge adds no dependency. The API key is read from an environment variable *by name* at
request time; it is never stored in records, logged, or echoed in error messages.

Transient failures (HTTP 429, 5xx, timeouts, dropped connections, unreadable bodies) are
retried with exponential backoff, honouring Retry-After. Authentication failures raise
JudgeAuthError (a BackendUnavailable), so a run stops asking instead of recording garbage.
"""
from __future__ import annotations

import base64
import email.utils
import json
import logging
import os
import random
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import BackendUnavailable

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


class JudgeError(RuntimeError):
    """The endpoint did not give a usable answer after all retries."""


class JudgeAuthError(BackendUnavailable):
    """The endpoint refused our credentials (401/403): no point asking again."""


def _scrub(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class JudgeClient:
    """Chat-completions client with retries. One instance may be shared between threads."""

    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", *,
                 timeout_s: float = 120.0, max_retries: int = 5, backoff_s: float = 2.0,
                 backoff_max_s: float = 60.0, retry_after_max_s: float = 300.0,
                 extra_body: dict | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        if not base_url:
            raise ValueError("base_url is required")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.retry_after_max_s = float(retry_after_max_s)
        self.extra_body = dict(extra_body or {})
        self._sleep = sleep

    def __repr__(self) -> str:  # never shows the key, only where it comes from
        return f"JudgeClient(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    @property
    def url(self) -> str:
        return self.base_url + "/chat/completions"

    def _key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def _backoff(self, attempt: int) -> float:
        # full jitter on an exponential ladder: 2, 4, 8 ... capped
        cap = min(self.backoff_max_s, self.backoff_s * (2 ** attempt))
        return cap * (0.5 + 0.5 * random.random())

    def chat(self, content: Sequence[dict] | str, *, temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        """Send one user message; return the assistant's text. Raises JudgeError / JudgeAuthError."""
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        body: dict[str, Any] = {"model": self.model, "stream": False,
                                "messages": [{"role": "user", "content": list(content)}]}
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        body.update(self.extra_body)
        data = json.dumps(body).encode("utf-8")
        key = self._key()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"

        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                try:
                    return _answer_text(json.loads(raw.decode("utf-8")))
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    last = f"unreadable response body ({type(e).__name__}): {_scrub(raw[:200].decode('utf-8', 'replace'), key)!r}"
            except urllib.error.HTTPError as e:
                detail = _scrub(_read_quietly(e)[:300], key)
                if e.code in (401, 403):
                    raise JudgeAuthError(
                        f"judge endpoint {self.base_url} (model {self.model})",
                        [f"${self.api_key_env}" if self.api_key_env else "(no API key variable)"],
                        f"The endpoint answered HTTP {e.code}; set a valid key in the environment variable "
                        f"named by api_key_env. Server said: {detail}") from None
                last = f"HTTP {e.code}: {detail}"
                if e.code not in RETRY_STATUS:
                    raise JudgeError(f"judge request failed, not retried: {last}") from None
                wait = parse_retry_after(e.headers.get("Retry-After") if e.headers else None)
            except (TimeoutError, socket.timeout) as e:
                last = f"timeout after {self.timeout_s:g}s ({type(e).__name__})"
            except urllib.error.URLError as e:
                last = f"connection error: {_scrub(str(e.reason), key)}"
            except (ConnectionError, OSError) as e:
                last = f"connection error: {_scrub(str(e), key)}"
            if attempt >= self.max_retries:
                break
            delay = min(wait, self.retry_after_max_s) if wait is not None else self._backoff(attempt)
            log.warning("judge: %s; retry %d/%d in %.1fs", last, attempt + 1, self.max_retries, delay)
            self._sleep(delay)
        raise JudgeError(f"judge gave no usable answer after {self.max_retries + 1} attempts; last: {last}")


def _read_quietly(e: urllib.error.HTTPError) -> str:
    try:
        return e.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the body is only a hint for the message
        return ""


def _answer_text(payload: dict) -> str:
    content = payload["choices"][0]["message"]["content"]
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise TypeError("message content is not text")
    return content


# ----------------------------------------------------------------------------- images

def resize_long_side(rgb: np.ndarray, long_side: int = 512) -> np.ndarray:
    """Scale so the long side is `long_side` (INTER_AREA), like the official judge script."""
    import cv2
    h, w = rgb.shape[:2]
    if h >= w:
        size = (max(1, int(w * long_side / h)), long_side)
    else:
        size = (long_side, max(1, int(h * long_side / w)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def jpeg_data_url(rgb: np.ndarray, long_side: int | None = 512, quality: int = 95) -> str:
    """An RGB frame as a `data:image/jpeg;base64,...` URL (quality 95 = OpenCV's default)."""
    import cv2
    img = resize_long_side(rgb, long_side) if long_side else rgb
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def image_content(data_urls: Sequence[str], text: str) -> list[dict]:
    """User-message content: the images first, then the instruction (official order)."""
    parts: list[dict] = [{"type": "image_url", "image_url": {"url": u}} for u in data_urls]
    parts.append({"type": "text", "text": text})
    return parts


# ----------------------------------------------------------------------------- score parsing

_NUM = r"(\d+(?:\.\d+)?)"
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_SEP = r"[\s*_`\"'()\[\]:=\-\u2013\u2014]*"
_KEYED = re.compile(r"\b(?:score|rating|grade)" + _SEP + r"(?:is|of|would\s+be|be)?" + _SEP + _NUM + r"(?![\d.]*\d)",
                    re.IGNORECASE)
# a score first, then a delimiter or nothing: "4", "**4**", "4 - Likely real", "4:\n...", "4."
_LEADING = re.compile(r"^[\s*_`#\"'(\[]*" + _NUM + r"(?:\s*$|[*_`\"')\]]*\s*(?:\n|[-\u2013\u2014:|,]|\.\s*$))")
_OUT_OF = re.compile(_NUM + r"\s*(?:/|out\s+of)\s*(\d+)", re.IGNORECASE)
_BARE = re.compile(r"(?<![\d.\-])" + _NUM + r"(?!\d|\.\d|\s*%)")
_SCORE_KEYS = ("score", "rating", "naturalscore", "natural_score", "grade", "value")


def parse_score(text: str | None, lo: float = 1, hi: float = 5) -> float | None:
    """Pull one Likert score in [lo, hi] out of a judge's answer; None when unsure.

    Accepts a bare number ("4"), JSON ({"score": 4}, possibly in a code fence), keyed text
    ("Score: 4", "**Rating** - 3.5"), "4/5" and prose containing exactly one in-range number.
    Anything ambiguous or out of range (two different candidates, "7/10", "0") is None:
    a missing value is recorded, never guessed.
    """
    if text is None:
        return None
    s = text.strip()
    if not s:
        return None

    def ok(x: float) -> float | None:
        return float(x) if lo <= x <= hi else None

    unfenced = _FENCE.sub("", s).strip()
    try:
        obj = json.loads(unfenced)
    except ValueError:
        obj = _first_json_object(unfenced)
    if obj is not None:
        got = _score_from_json(obj)
        if got is not None:
            return ok(got)

    keyed = {float(m) for m in _KEYED.findall(s)}
    if keyed:
        return ok(keyed.pop()) if len(keyed) == 1 else None

    outs = _OUT_OF.findall(s)
    if outs:
        vals = {(float(a), float(b)) for a, b in outs}
        if len(vals) == 1:
            a, b = vals.pop()
            return ok(a) if b == hi else None
        return None

    lead = _LEADING.match(s)
    if lead:
        return ok(float(lead.group(1)))

    bare = {float(m) for m in _BARE.findall(s)}
    in_range = {x for x in bare if lo <= x <= hi}
    if len(in_range) == 1 and len(bare) == 1:
        return in_range.pop()
    return None


def _first_json_object(s: str) -> Any:
    start = s.find("{")
    end = s.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return json.loads(s[start:end + 1])
    except ValueError:
        return None


def _score_from_json(obj: Any) -> float | None:
    if isinstance(obj, bool):
        return None
    if isinstance(obj, (int, float)):
        return float(obj)
    if isinstance(obj, str):
        try:
            return float(obj.strip())
        except ValueError:
            return None
    if isinstance(obj, dict):
        lowered = {str(k).lower().replace(" ", "_"): v for k, v in obj.items()}
        for k in _SCORE_KEYS:
            if k in lowered:
                return _score_from_json(lowered[k])
    return None
