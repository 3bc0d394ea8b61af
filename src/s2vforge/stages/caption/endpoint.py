"""The endpoint captioner: any OpenAI-compatible vision chat server (vLLM, SGLang, hosted APIs).

    cap = EndpointCaptioner(recipe["caption"])      # the recipe's caption section (endpoint, prompt, quality)
    cap.setup()
    caption = cap.caption(clip)                                  # base.ClipInput -> base.Caption

Two requests per clip, both through backends.judge.JudgeClient (retries with backoff on 429 / 5xx /
timeouts, the key read from the environment variable named by `api_key_env` and sent only as a header):

1. `caption`: the clip's sampled frames as JPEG data URLs (images first, then the prompt's caption text,
   as OpenS2V-Nexus step3-1 puts the video before the text); the answer is reviewed by quality.review
   (refusal / repetition loop / truncation at max_tokens / wrong language / no subject: rejected or
   repaired, with verdicts). A rejected caption ends there: short / long None, the verdicts say why.
2. `reformat`: text only, the prompt's reformat text around the (repaired) caption; its JSON answer gives
   short / long / structured / word tags (prompts.parse_answer). When the clip's `measured["n_faces"]`
   is > 0 the prompt's face text asks for `face_caption` too (absent = unknown: not asked).

Per-request cache: before a request is sent, `clip.cache_dir / <blake2b(model, prompt_id, step, body)>.json`
is looked up; an answer is written there (engine.writer.write_json, atomic) before it is used, so a killed
run re-sends nothing that was answered. The files hold the answer text, model, step and finish_reason,
never a header, key or URL credentials. `Caption.n_requests` counts requests actually sent (retries of
one request count once; the server sees each).

One instance may be called from several threads: it holds no per-clip state, and a semaphore bounds
the requests in flight to `concurrency`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...backends.errors import BackendUnavailable
from ...backends.judge import (
    ChatAnswer,
    JudgeClient,
    JudgeError,
    describe_key_env,
    image_content,
    jpeg_data_url,
)
from ...engine.faults import RunStopped
from ...engine.writer import write_json
from ..recipe_keys import need, take
from . import quality as q
from .base import STRUCTURED_FIELDS, Caption, Captioner, ClipInput
from .prompts import Prompt, first_sentence, load_prompt

log = logging.getLogger(__name__)

ENDPOINT_KEYS = ("base_url", "model", "api_key_env", "reformat_base_url", "reformat_model", "timeout_s",
                 "max_retries", "backoff_s", "concurrency", "image_long_side", "jpeg_quality",
                 "caption_max_tokens", "reformat_max_tokens", "json_mode", "cache")
CACHE_VERSION = 1


def faces_found(measured: Mapping | None) -> bool | None:
    """True / False from the stage's `n_faces`; None when it is not known (then no face caption is asked)."""
    v = (measured or {}).get("n_faces")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    return v > 0


def cache_key(model: str, prompt_id: str, step: str, body: Mapping) -> str:
    """blake2b over (model, prompt_id, step, the request body): the cache file's name."""
    blob = json.dumps({"v": CACHE_VERSION, "model": model, "prompt_id": prompt_id, "step": step, "body": body},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=16).hexdigest()


class EndpointCaptioner(Captioner):
    name = "endpoint"

    def __init__(self, cfg: Mapping, *, prompt: Prompt | str | None = None,
                 client: JudgeClient | None = None, reformat_client: JudgeClient | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """`cfg` is the recipe's `caption:` section (its `endpoint`, `prompt` and `quality` keys);
        `prompt` overrides caption.prompt; `client` / `reformat_client` replace the JudgeClients
        setup() would build (tests, shared clients)."""
        ep = take(need(cfg, "endpoint", "caption"), ENDPOINT_KEYS, "caption.endpoint")
        self.cfg = ep
        prompt = prompt if prompt is not None else need(cfg, "prompt", "caption")
        self.prompt = prompt if isinstance(prompt, Prompt) else load_prompt(prompt)
        self.quality = q.QualityConfig.from_recipe(need(cfg, "quality", "caption"))
        self.model = client.model if client is not None else ep["model"]
        self.reformat_model = (reformat_client.model if reformat_client is not None
                               else ep["reformat_model"] or self.model)
        self._client = client
        self._reformat_client = reformat_client
        self._sleep = sleep
        self._sem = threading.BoundedSemaphore(max(1, int(ep["concurrency"])))
        self._setup_lock = threading.Lock()

    @classmethod
    def from_recipe(cls, caption_cfg: Mapping, **kwargs: Any) -> EndpointCaptioner:
        """The same as the constructor (kept for readability at call sites)."""
        return cls(caption_cfg, **kwargs)

    # ------------------------------------------------------------------ contract

    def config(self) -> dict:
        p = self.prompt
        return {"name": self.name, "model": self.model, "reformat_model": self.reformat_model,
                "prompt_id": p.prompt_id,
                "caption": {"max_tokens": self._caption_max_tokens(), "temperature": p.caption_temperature,
                            "params": p.caption_params},
                "reformat": {"max_tokens": self._reformat_max_tokens(), "temperature": p.reformat_temperature,
                             "params": self._reformat_params()},
                "image_long_side": self.cfg["image_long_side"], "jpeg_quality": int(self.cfg["jpeg_quality"]),
                "quality": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self.quality).items()}}

    def setup(self) -> None:
        with self._setup_lock:
            if self._client is None:
                self._client = self._make_client(self.cfg["base_url"], self.model, "base_url / model")
            if self._reformat_client is None:
                base = self.cfg["reformat_base_url"] or self.cfg["base_url"]
                if base == self.cfg["base_url"] and self.reformat_model == self.model:
                    self._reformat_client = self._client
                else:
                    self._reformat_client = self._make_client(base, self.reformat_model,
                                                              "reformat_base_url / reformat_model")

    def _make_client(self, base_url: str | None, model: str | None, what: str) -> JudgeClient:
        if not base_url or not model:
            raise BackendUnavailable(
                "caption endpoint (an OpenAI-compatible vision chat server)",
                [f"caption.endpoint {what}: {base_url or 'null'} / {model or 'null'}"],
                "Set caption.endpoint.base_url and model in the recipe or pass --endpoint URL --model NAME "
                f"(the key, if any, in {describe_key_env(self.cfg['api_key_env'])}).")
        return JudgeClient(base_url, model, self.cfg["api_key_env"], timeout_s=float(self.cfg["timeout_s"]),
                           max_retries=int(self.cfg["max_retries"]), backoff_s=float(self.cfg["backoff_s"]),
                           sleep=self._sleep)

    def caption(self, clip: ClipInput) -> Caption:
        if self._client is None or self._reformat_client is None:
            self.setup()
        sent = [0]
        cap = Caption(captioner=self.name, model=self.model, prompt_id=self.prompt.prompt_id)
        try:
            self._caption(clip, cap, sent)
        except (BackendUnavailable, RunStopped):
            raise                         # bad credentials, a full disk: the run stops, no clip is to blame
        except JudgeError as e:
            cap.short = cap.long = None
            cap.error = f"endpoint: {e}"[:500]
        except Exception as e:  # noqa: BLE001 - one clip's trouble never stops the stage (contract)
            cap.short = cap.long = None
            cap.error = f"endpoint: {type(e).__name__}: {e}"[:500]
        cap.n_requests = sent[0]
        return cap

    # ------------------------------------------------------------------ the two steps

    def _caption(self, clip: ClipInput, cap: Caption, sent: list[int]) -> None:
        p = self.prompt
        if not clip.frames:
            raise ValueError("no frames were sampled from the clip")
        long_side = self.cfg["image_long_side"]
        urls = [jpeg_data_url(f, long_side=int(long_side) if long_side else None,
                              quality=int(self.cfg["jpeg_quality"])) for f in clip.frames]
        body = self._client.request_body(image_content(urls, p.caption_text), temperature=p.caption_temperature,
                                         max_tokens=self._caption_max_tokens(), params=p.caption_params)
        first = self._ask(clip, "caption", self._client, body, sent)

        review = q.review(first.text, first.finish_reason, people_detected=q.people_detected(clip.measured),
                          cfg=self.quality)
        cap.verdicts = list(review.verdicts)
        if review.rejected:
            return

        faces = faces_found(clip.measured)
        body = self._reformat_client.request_body(
            p.reformat_request(review.text, face=bool(faces)), temperature=p.reformat_temperature,
            max_tokens=self._reformat_max_tokens(), params=self._reformat_params())
        second = self._ask(clip, "reformat", self._reformat_client, body, sent)
        if second.finish_reason == "length":
            cap.verdicts.append("reformat_truncated")
        parsed = p.parse_answer(second.text, review.text)
        cap.verdicts += parsed.verdicts
        short, long_ = parsed.short, parsed.long
        # the rewrite is an LLM answer too: one that refuses or switches language is not kept
        for label, text in (("long", long_), ("short", short)):
            found = q.check_caption(text, "stop", people_detected=None, cfg=self.quality)
            if any(v in q.REJECTING for v in found):
                cap.verdicts.append(f"reformat_rejected:{label}")
                if label == "long":
                    long_ = review.text
                else:
                    short = first_sentence(long_)
        cap.long, cap.short = long_, short
        cap.structured = {k: parsed.structured.get(k) for k in STRUCTURED_FIELDS}
        cap.subject_tags, cap.object_tags = parsed.subject_tags, parsed.object_tags
        cap.background_tags = parsed.background_tags
        cap.face_caption = parsed.face_caption if faces else None

    def _caption_max_tokens(self) -> int | None:
        v = self.cfg["caption_max_tokens"]
        return int(v) if v is not None else self.prompt.caption_max_tokens

    def _reformat_max_tokens(self) -> int | None:
        v = self.cfg["reformat_max_tokens"]
        return int(v) if v is not None else self.prompt.reformat_max_tokens

    def _reformat_params(self) -> dict:
        params = dict(self.prompt.reformat_params)
        if self.prompt.reformat_json and self.cfg["json_mode"]:
            params.setdefault("response_format", {"type": "json_object"})
        return params

    # ------------------------------------------------------------------ cache + send

    def _ask(self, clip: ClipInput, step: str, client: JudgeClient, body: dict, sent: list[int]) -> ChatAnswer:
        path: Path | None = None
        if self.cfg["cache"] and clip.cache_dir is not None:
            path = Path(clip.cache_dir) / f"{cache_key(client.model, self.prompt.prompt_id, step, body)}.json"
            hit = _read_cached(path)
            if hit is not None:
                return hit
        with self._sem:
            answer = client.send(body)
        sent[0] += 1
        if path is not None:
            write_json(path, {"clip_id": clip.clip_id, "step": step, "model": client.model,
                              "prompt_id": self.prompt.prompt_id, "text": answer.text,
                              "finish_reason": answer.finish_reason, "version": CACHE_VERSION})
        return answer


def _read_cached(path: Path) -> ChatAnswer | None:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("caption cache %s is unreadable (%s); asking again", path.name, type(e).__name__)
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
        return None
    reason = rec.get("finish_reason")
    return ChatAnswer(rec["text"], reason if isinstance(reason, str) else None)
