"""Caption prompts: named YAML files (prompts/*.yaml) or a user's file, and the parsing of their answers.

A prompt is two requests:

1. `caption`: the instruction sent with the clip's sampled frames to a vision chat model;
2. `reformat`: a text-only request that turns the step-1 caption into one JSON object with the short /
   long / structured captions and the word tags (`{caption}` in its text is the step-1 caption). When
   the clip has faces the prompt's `face` text is appended and the answer carries `face_caption`.

Packaged prompts (their `source` key cites where each text comes from):

- `opens2v`: OpenS2V-Nexus' subject-centric caption prompt (data_process/step3-1_get_caption.py) and its
  tag-extraction prompt (data_process/step4-1_get_tag.py), verbatim. Their answer is the caption and
  `{"background", "subject", "object"}`, parsed by subjects.phrases.parse_tag_answer.
- `openhumanvid`: an OpenHumanVid-style pair (ours: OpenHumanVid publishes no prompt) whose answer has
  OpenHumanVid's annotation keys (short_caption, long_caption, appearance_caption, humanmotion_caption,
  facemotion_caption, environment_caption) mapped onto base.STRUCTURED_FIELDS.

The `output:` block of a prompt file says where each Caption field comes from: a key of the answer's
JSON object, or `$caption` (the step-1 caption), `$first_sentence` (its first sentence), `$root` (tags
at the answer's top level), `$subject_tags` / `$background_tags` (those tags joined with ", ").

`prompt.prompt_id` (= `<id>@<hash of the texts>`) is what goes into the captions table's `prompt_id`, so
an edited prompt file is never mistaken for the packaged one.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..subjects.phrases import TAG_KEYS, parse_tag_answer
from .base import STRUCTURED_FIELDS

PLACEHOLDER = "{caption}"
SPECIALS = ("$caption", "$first_sentence", "$root", "$subject_tags", "$background_tags")


class PromptError(ValueError):
    """An unknown prompt name or a prompt file that cannot be used (the message says which and why)."""


@dataclass(frozen=True)
class Prompt:
    id: str
    source: str
    caption_text: str
    reformat_text: str
    face_text: str = ""
    caption_max_tokens: int | None = None
    caption_temperature: float | None = None
    caption_params: dict = field(default_factory=dict)
    reformat_max_tokens: int | None = None
    reformat_temperature: float | None = None
    reformat_params: dict = field(default_factory=dict)
    reformat_json: bool = False        # ask for response_format {"type": "json_object"}
    frames: int | None = None          # the source's frame count (the stage samples caption.frames.n)
    output: dict = field(default_factory=dict)
    example_answer: str | None = None
    path: str | None = None            # the file it was read from

    @property
    def text_hash(self) -> str:
        h = hashlib.blake2b(digest_size=6)
        for part in (self.caption_text, self.reformat_text, self.face_text):
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()

    @property
    def prompt_id(self) -> str:
        return f"{self.id}@{self.text_hash}"

    def reformat_request(self, caption: str, *, face: bool = False) -> str:
        """The step-2 text: the reformat text with the caption in place (line breaks and tabs as spaces,
        as OpenS2V-Nexus step4-1 strips them), plus the face request when `face`."""
        flat = " ".join(str(caption).replace("\t", " ").split())
        text = self.reformat_text.replace(PLACEHOLDER, flat).strip()
        if face and self.face_text:
            text = text + " " + self.face_text.strip()
        return text

    def parse_answer(self, answer: str | None, caption: str) -> ParsedAnswer:
        return parse_answer(self, answer, caption)


@dataclass
class ParsedAnswer:
    """What a reformat answer gave (the Caption fields) and what was wrong with it."""
    short: str | None = None
    long: str | None = None
    structured: dict[str, Any] = field(default_factory=lambda: {k: None for k in STRUCTURED_FIELDS})
    subject_tags: list[str] = field(default_factory=list)
    object_tags: list[str] = field(default_factory=list)
    background_tags: list[str] = field(default_factory=list)
    face_caption: str | None = None
    verdicts: list[str] = field(default_factory=list)   # reformat_unreadable, reformat_incomplete, tags_unreadable


# ----------------------------------------------------------------------------- loading

def builtin_prompts() -> list[str]:
    folder = resources.files(__package__).joinpath("prompts")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_prompt(name_or_path: str | Path) -> Prompt:
    """A packaged prompt by name (`opens2v`, `openhumanvid`) or a prompt YAML file by path.
    PromptError for an unknown name, a file that is not YAML, or a missing / wrongly typed key."""
    name = str(name_or_path)
    if name in builtin_prompts() and not name.endswith(".yaml"):
        res = resources.files(__package__).joinpath("prompts").joinpath(name + ".yaml")
        return _from_text(res.read_text(encoding="utf-8"), f"packaged prompt {name}", None)
    p = Path(name)
    if not p.is_file():
        raise PromptError(f"unknown prompt {name!r}: not a packaged prompt ({', '.join(builtin_prompts())}) "
                          f"and no such file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PromptError(f"{p}: cannot read the prompt file: {e}") from None
    return _from_text(text, str(p), str(p))


def _from_text(text: str, where: str, path: str | None) -> Prompt:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PromptError(f"{where}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(doc, dict):
        raise PromptError(f"{where}: a prompt file must be a mapping (id:, source:, caption:, reformat:, output:), "
                          f"not {type(doc).__name__}")

    def need(mapping: Any, key: str, kind: type | tuple, label: str, optional: bool = False) -> Any:
        if not isinstance(mapping, dict):
            raise PromptError(f"{where}: `{label.rsplit('.', 1)[0]}` must be a mapping")
        val = mapping.get(key)
        if val is None and optional:
            return None
        if not isinstance(val, kind) or isinstance(val, bool) and kind is not bool:
            what = "missing" if val is None else f"a {type(val).__name__}"
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise PromptError(f"{where}: `{label}` must be {names}, it is {what}")
        if isinstance(val, str) and not val.strip():
            raise PromptError(f"{where}: `{label}` is empty")
        return val

    pid = need(doc, "id", str, "id").strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", pid):
        raise PromptError(f"{where}: `id` {pid!r} must be letters, digits, '_', '.', '-'")
    source = need(doc, "source", str, "source").strip()
    cap = need(doc, "caption", dict, "caption")
    ref = need(doc, "reformat", dict, "reformat")
    face = doc.get("face") or {}
    out = need(doc, "output", dict, "output")
    reformat_text = need(ref, "text", str, "reformat.text")
    if PLACEHOLDER not in reformat_text:
        raise PromptError(f"{where}: `reformat.text` must contain {PLACEHOLDER} (where the step-1 caption goes)")
    for key in ("short", "long"):
        need(out, key, str, f"output.{key}")
    structured = out.get("structured") or {}
    if not isinstance(structured, dict):
        raise PromptError(f"{where}: `output.structured` must be a mapping of {', '.join(STRUCTURED_FIELDS)}")
    unknown = sorted(set(structured) - set(STRUCTURED_FIELDS))
    if unknown:
        raise PromptError(f"{where}: `output.structured` has unknown fields {unknown}; "
                          f"known: {', '.join(STRUCTURED_FIELDS)}")
    for label, val in [("short", out["short"]), ("long", out["long"]), ("tags", out.get("tags")),
                       ("face_caption", out.get("face_caption"))] + \
            [(f"structured.{k}", v) for k, v in structured.items()]:
        if val is not None and (not isinstance(val, str) or (val.startswith("$") and val not in SPECIALS)):
            raise PromptError(f"{where}: `output.{label}` must be an answer key or one of {', '.join(SPECIALS)}, "
                              f"not {val!r}")

    def num(mapping: dict, key: str, kind, label: str):
        val = mapping.get(key)
        if val is None:
            return None
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise PromptError(f"{where}: `{label}` must be a number or null, not {val!r}")
        return kind(val)

    def params(mapping: dict, label: str) -> dict:
        val = mapping.get("params") or {}
        if not isinstance(val, dict):
            raise PromptError(f"{where}: `{label}.params` must be a mapping (top_p: ..., ...)")
        return dict(val)

    return Prompt(
        id=pid, source=source,
        caption_text=need(cap, "text", str, "caption.text").strip(),
        reformat_text=reformat_text.strip(),
        face_text=(need(face, "text", str, "face.text", optional=True) or "").strip() if face else "",
        caption_max_tokens=num(cap, "max_tokens", int, "caption.max_tokens"),
        caption_temperature=num(cap, "temperature", float, "caption.temperature"),
        caption_params=params(cap, "caption"),
        reformat_max_tokens=num(ref, "max_tokens", int, "reformat.max_tokens"),
        reformat_temperature=num(ref, "temperature", float, "reformat.temperature"),
        reformat_params=params(ref, "reformat"),
        reformat_json=bool(ref.get("json_mode", False)),
        frames=num(cap, "frames", int, "caption.frames"),
        output={"short": out["short"], "long": out["long"], "tags": out.get("tags"),
                "face_caption": out.get("face_caption"), "structured": dict(structured)},
        example_answer=doc.get("example_answer") if isinstance(doc.get("example_answer"), str) else None,
        path=path,
    )


# ----------------------------------------------------------------------------- parsing answers

_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*|\s*```\s*$")
_SENTENCE_END = re.compile(r"[.!?][\"'’”)\]]*(?=\s|$)")


def first_sentence(text: str | None) -> str | None:
    """The first sentence of `text` (up to the first . ! ? followed by a space or the end)."""
    if not text:
        return None
    s = " ".join(text.split())
    m = _SENTENCE_END.search(s)
    return (s[:m.end()] if m else s).strip() or None


def parse_json_object(answer: str | None) -> dict | None:
    """The JSON object in an LLM answer: bare, in a ``` fence, surrounded by prose, or written as a
    Python dict with single quotes (as OpenS2V-Nexus' example shows); None when there is none."""
    if not answer:
        return None
    s = _FENCE.sub("", answer.strip()).strip()
    candidates = [s]
    if "{" in s and "}" in s:
        candidates.append(s[s.find("{"): s.rfind("}") + 1])
    for c in candidates:
        try:
            obj = json.loads(c)
        except ValueError:
            try:
                obj = ast.literal_eval(c)      # literals only: never evaluates code
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
        if isinstance(obj, dict):
            return obj
    return None


def _norm_key(k: Any) -> str:
    return re.sub(r"[\s_\-]+", "", str(k)).lower()


def _lookup(obj: dict, key: str) -> Any:
    if key in obj:
        return obj[key]
    want = _norm_key(key)
    for k, v in obj.items():
        if _norm_key(k) == want:
            return v
    return None


def _text(val: Any) -> str | None:
    if val is None:
        return None
    if isinstance(val, (list, tuple)):
        val = ", ".join(str(v).strip() for v in val if v is not None and str(v).strip())
    elif isinstance(val, dict):
        return None
    s = " ".join(str(val).split())
    return None if not s or s.lower() in ("null", "none", "n/a") else s


def parse_answer(prompt: Prompt, answer: str | None, caption: str) -> ParsedAnswer:
    """A reformat answer -> the Caption fields, by the prompt's `output` block. An unreadable answer
    still gives short / long from the step-1 caption (verdict `reformat_unreadable`); missing fields
    are None (verdict `reformat_incomplete` when short or long had to come from the caption)."""
    out = ParsedAnswer()
    obj = parse_json_object(answer)
    if obj is None:
        out.verdicts.append("reformat_unreadable")
    tags_spec = prompt.output.get("tags")
    if tags_spec:
        tags = None
        if obj is not None:
            raw = obj if tags_spec == "$root" else _lookup(obj, tags_spec)
            if isinstance(raw, dict) and any(isinstance(_lookup(raw, k), list) for k in TAG_KEYS):
                tags = parse_tag_answer(json.dumps({k: _lookup(raw, k) if isinstance(_lookup(raw, k), list)
                                                    else [] for k in TAG_KEYS}))
        if tags is None and answer and tags_spec == "$root":
            tags = parse_tag_answer(answer)    # OpenS2V-Nexus' own fallback for non-JSON answers
        if tags is None:
            out.verdicts.append("tags_unreadable")
        else:
            out.subject_tags = _dedupe(tags["subject"])
            out.object_tags = _dedupe(tags["object"])
            out.background_tags = _dedupe(tags["background"])

    def value(spec: str | None) -> str | None:
        if spec is None:
            return None
        if spec == "$caption":
            return _text(caption)
        if spec == "$first_sentence":
            return first_sentence(caption)
        if spec == "$subject_tags":
            return _text(out.subject_tags)
        if spec == "$background_tags":
            return _text(out.background_tags)
        if spec == "$root" or obj is None:
            return None
        return _text(_lookup(obj, spec))

    out.long = value(prompt.output["long"])
    out.short = value(prompt.output["short"])
    if obj is not None and (out.long is None or out.short is None):
        out.verdicts.append("reformat_incomplete")
    if out.long is None:
        out.long = _text(caption)
    if out.short is None:
        out.short = first_sentence(out.long)
    for k, spec in (prompt.output.get("structured") or {}).items():
        out.structured[k] = value(spec)
    out.face_caption = value(prompt.output.get("face_caption"))
    return out


def _dedupe(words: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    return list(seen)
