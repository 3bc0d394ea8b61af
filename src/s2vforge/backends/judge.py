"""A small client for OpenAI-compatible chat-completions endpoints, used as a judge.

Works with hosted APIs and local servers (vLLM, SGLang, llama.cpp, LM Studio): POST
`{base_url}/chat/completions` with images as base64 data URLs. Stdlib only (urllib), so the
judge adds no dependency. The API key is read from an environment variable *by name* at
request time; it is never stored in records, logged, or echoed in error messages. A base
URL with credentials (`http://user:pass@host/v1`) is split: the userinfo is sent as HTTP
Basic auth (when no key is set) and shown as `***` everywhere the endpoint is named.

Transient failures (HTTP 429, 5xx, timeouts, dropped connections, unreadable bodies) are
retried with exponential backoff, honouring Retry-After. Authentication failures raise
JudgeAuthError (a BackendUnavailable), so a run stops asking instead of recording garbage.
"""
from __future__ import annotations

import base64
import email.utils
import http.client
import json
import logging
import os
import random
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BackendUnavailable

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


class JudgeError(RuntimeError):
    """The endpoint did not give a usable answer after all retries.

    `kind` says why: "unreachable" (connection refused/reset, DNS), "timeout", "http" (a
    status that is retried: 429, 5xx ...), "rejected" (another 4xx, not retried),
    "unreadable" (a body that is not a chat completion) or "internal".
    """

    def __init__(self, message: str, kind: str = "http") -> None:
        super().__init__(message)
        self.kind = kind


class JudgeAuthError(BackendUnavailable):
    """The endpoint refused our credentials (401/403): no point asking again."""


DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEY_ENV_HELP = ("takes the NAME of an environment variable holding the key (like OPENAI_API_KEY), "
                "not the key itself")


def is_env_name(value: object) -> bool:
    """True when `value` can be the name of an environment variable (letters, digits, _)."""
    return isinstance(value, str) and len(value) <= 256 and _ENV_NAME.fullmatch(value) is not None


def describe_key_env(name: str | None) -> str:
    """How to name the key's variable in a message without ever showing a key.

    A valid name that is set here, or the default OPENAI_API_KEY, is shown as `$NAME`. A
    value that is not a valid name, or a name that is not set, might be a key typed in by
    mistake, so it is never echoed."""
    if not name:
        return "(no API key variable)"
    if is_env_name(name) and (name == DEFAULT_KEY_ENV or os.environ.get(name)):
        return f"${name}"
    if is_env_name(name):
        return "the variable named by api_key_env (not set in this environment)"
    return "api_key_env (not a variable name: it " + KEY_ENV_HELP + ")"


def split_url_credentials(url: str) -> tuple[str, str | None]:
    """`http://user:pass@host:8000/v1` -> (`http://host:8000/v1`, `user:pass`); no userinfo -> (url, None)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    return urllib.parse.urlunsplit(parts._replace(netloc=hostport)), userinfo


def redact_url(url: str | None) -> str | None:
    """The URL with any userinfo replaced by `***` (for messages and records)."""
    if not url:
        return url
    clean, userinfo = split_url_credentials(url)
    if userinfo is None:
        return url
    parts = urllib.parse.urlsplit(clean)
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc))


def _scrub(text: str, secret: str | Sequence[str] | None) -> str:
    secrets = [secret] if isinstance(secret, str) else list(secret or [])
    for s in sorted({x for x in secrets if x and len(x) >= 3}, key=len, reverse=True):
        text = text.replace(s, "***")
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
        if api_key_env is not None and api_key_env != "" and not is_env_name(api_key_env):
            raise ValueError("api_key_env " + KEY_ENV_HELP)
        clean, userinfo = split_url_credentials(str(base_url))
        self.base_url = clean.rstrip("/")          # never holds credentials: safe to show
        self._userinfo = userinfo
        self.model = model
        self.api_key_env = api_key_env or None
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.retry_after_max_s = float(retry_after_max_s)
        self.extra_body = dict(extra_body or {})
        self._sleep = sleep

    def __repr__(self) -> str:  # never shows the key or URL credentials, only where the key comes from
        return (f"JudgeClient(base_url={self.display_url!r}, model={self.model!r}, "
                f"api_key_env={describe_key_env(self.api_key_env)!r})")

    @property
    def display_url(self) -> str:
        """The base URL as it may be shown: userinfo, if any was given, as `***`."""
        if self._userinfo is None:
            return self.base_url
        parts = urllib.parse.urlsplit(self.base_url)
        return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc))

    @property
    def url(self) -> str:
        return self.base_url + "/chat/completions"

    def _key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def _secrets(self) -> list[str]:
        """Every string derived from the credentials that must never be shown."""
        out: list[str] = []
        key = self._key()
        if key:
            out += [key, f"Bearer {key}"]
        if self._userinfo:
            password = self._userinfo.partition(":")[2]
            token = base64.b64encode(urllib.parse.unquote(self._userinfo).encode("utf-8")).decode("ascii")
            out += [self._userinfo, urllib.parse.unquote(self._userinfo), password,
                    urllib.parse.unquote(password), token, f"Basic {token}"]
        return out

    def scrub(self, text: str) -> str:
        """`text` with the key, auth headers and URL credentials masked as `***`."""
        return _scrub(text, self._secrets())

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self._userinfo:
            raw = urllib.parse.unquote(self._userinfo).encode("utf-8")
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        return headers

    def _backoff(self, attempt: int) -> float:
        # full jitter on an exponential ladder: 2, 4, 8 ... capped
        cap = min(self.backoff_max_s, self.backoff_s * (2 ** attempt))
        return cap * (0.5 + 0.5 * random.random())

    def chat(self, content: Sequence[dict] | str, *, temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        """Send one user message; return the assistant's text. Raises JudgeError / JudgeAuthError."""
        return self.send(self.request_body(content, temperature=temperature, max_tokens=max_tokens)).text

    def request_body(self, content: Sequence[dict] | str, *, temperature: float | None = None,
                     max_tokens: int | None = None, params: dict | None = None) -> dict[str, Any]:
        """The JSON body `chat` / `complete` POST for one user message (no credentials: those
        travel only in headers). `params` (top_p, response_format ...) and then the client's
        `extra_body` are merged in last."""
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        body: dict[str, Any] = {"model": self.model, "stream": False,
                                "messages": [{"role": "user", "content": list(content)}]}
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        body.update(params or {})
        body.update(self.extra_body)
        return body

    def complete(self, content: Sequence[dict] | str, *, temperature: float | None = None,
                 max_tokens: int | None = None, params: dict | None = None) -> ChatAnswer:
        """As `chat`, but the answer keeps the server's `finish_reason` ("stop", "length" = cut
        at max_tokens, None when the server sends none)."""
        return self.send(self.request_body(content, temperature=temperature, max_tokens=max_tokens,
                                           params=params))

    def send(self, body: dict[str, Any]) -> ChatAnswer:
        """POST one prepared `request_body` with the retries described above."""
        data = json.dumps(body).encode("utf-8")
        scrub = self.scrub

        last, kind = "no attempt made", "internal"
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            try:
                req = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                try:
                    payload = json.loads(raw.decode("utf-8"))
                    return ChatAnswer(_answer_text(payload), _finish_reason(payload))
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    shown = scrub(raw.decode("utf-8", "replace"))[:200]
                    last, kind = f"unreadable response body ({type(e).__name__}): {shown!r}", "unreadable"
            except urllib.error.HTTPError as e:
                detail = scrub(_read_quietly(e))[:300]
                if e.code in (401, 403):
                    raise JudgeAuthError(
                        f"judge endpoint {self.display_url} (model {self.model})",
                        [describe_key_env(self.api_key_env)],
                        f"The endpoint answered HTTP {e.code}; set a valid key in the environment variable "
                        f"named by api_key_env. Server said: {detail}") from None
                last, kind = f"HTTP {e.code}: {detail}", "http"
                if e.code not in RETRY_STATUS:
                    raise JudgeError(f"judge request failed, not retried: {last}", "rejected") from None
                wait = parse_retry_after(e.headers.get("Retry-After") if e.headers else None)
            except (TimeoutError, socket.timeout) as e:
                last, kind = f"timeout after {self.timeout_s:g}s ({type(e).__name__})", "timeout"
            except urllib.error.URLError as e:
                if isinstance(e.reason, (TimeoutError, socket.timeout)):
                    last, kind = f"timeout after {self.timeout_s:g}s", "timeout"
                else:
                    last, kind = f"connection error: {scrub(str(e.reason))}", "unreachable"
            except (ConnectionError, OSError, http.client.HTTPException) as e:
                last, kind = f"connection error: {scrub(f'{type(e).__name__}: {e}')}", "unreachable"
            except Exception as e:  # noqa: BLE001 - never let a traceback carry the request (and its key) out
                raise JudgeError(f"judge request failed ({type(e).__name__}): {scrub(str(e))[:300]}",
                                 "internal") from None
            if attempt >= self.max_retries:
                break
            delay = min(wait, self.retry_after_max_s) if wait is not None else self._backoff(attempt)
            log.warning("judge: %s; retry %d/%d in %.1fs", last, attempt + 1, self.max_retries, delay)
            self._sleep(delay)
        raise JudgeError(f"judge gave no usable answer after {self.max_retries + 1} attempts; last: {last}", kind)


def _read_quietly(e: urllib.error.HTTPError) -> str:
    try:
        return e.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the body is only a hint for the message
        return ""


@dataclass(frozen=True)
class ChatAnswer:
    """One chat-completions answer: the assistant's text and why generation stopped."""
    text: str
    finish_reason: str | None = None


def _finish_reason(payload: dict) -> str | None:
    reason = payload["choices"][0].get("finish_reason")
    return reason if isinstance(reason, str) else None


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
