"""Caption quality: what no anchor checks. Reject or repair a VLM caption, with a verdict.

    verdicts = check_caption(text, finish_reason, people_detected=True, cfg=cfg)   # what is wrong
    text, verdicts = repair(text, verdicts, cfg)                                   # what is done about it
    r = review(text, finish_reason, people_detected=True, cfg=cfg)                 # both: r.text, r.verdicts, r.rejected

Verdicts (counted in the stage's run summary):

- `empty`: no words at all. Rejected.
- `refusal`: a sentence of the answer opens with a refusal phrase (REFUSAL_PHRASES below, plus the
  recipe's `caption.quality.extra_refusal_phrases`) within its first `refusal_scan_chars`. Rejected.
- `repetition_loop`: some word n-gram (1..`loop_max_ngram` words) repeats back to back at least
  `loop_min_repeats` times over at least `loop_min_words` words ("He smiles. He smiles. He smiles.").
  Repair: keep the text before the second copy, cut to its last full sentence ->
  `repetition_loop_repaired`; fewer than `min_words` words left -> rejected as `repetition_loop`.
- `truncated`: generation stopped at max_tokens (finish_reason "length"), or the text ends mid-sentence
  after at least one full sentence. Repair: cut to the last full sentence -> `truncated_repaired`;
  fewer than `min_words` words left -> rejected as `truncated`. A "length" stop explained by a
  repaired loop counts as the loop only. A text with no sentence end at all that stopped normally is a
  phrase caption ("A dog running on grass"), not a truncation.
- `wrong_language`: not English by subjects.phrases.language_verdict (another script, or too few
  English words). Rejected. `language_unchecked` when the spaCy English pipeline is not installed.
- `no_subject`: people were detected in the clip but the caption names no person (a word the
  subjects lexicon files as person or face, or a personal pronoun). Kept, flagged.

Every threshold comes from the recipe (`caption.quality`, openhumanvid.yaml), none from here.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields

from ..recipe_keys import take
from ..subjects.phrases import _singular, category_of, language_verdict

# Openings of a refusal or a model talking about itself instead of the clip (lowercase, straight
# apostrophes). Ours, from the refusals VLM servers commonly give; matched at a sentence start only,
# so a caption quoting someone ("he says \"I'm sorry\"") is not a refusal.
REFUSAL_PHRASES = (
    "i'm sorry", "i am sorry", "sorry, i", "sorry, but", "i apologize", "i apologise",
    "as an ai", "as a language model", "as an language model",
    "i can't", "i cannot", "i can not", "i won't", "i will not",
    "i'm unable", "i am unable", "i'm not able", "i am not able",
    "unfortunately, i", "i do not have the ability", "i don't have the ability",
    "there is no video", "no video was provided", "no images were provided", "i don't see any",
)
# words that name a person without a lexicon noun ("She waves at the camera")
PERSON_PRONOUNS = frozenset({"he", "she", "him", "her", "his", "hers", "himself", "herself",
                             "someone", "somebody", "everyone", "everybody"})

REJECTING = ("empty", "refusal", "wrong_language")

_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?…][\"'’”)\]]*(?=\s|$)")
_SENTENCE_START = re.compile(r"(?:^|[.!?…][\"'’”)\]]*\s+)")


@dataclass(frozen=True)
class QualityConfig:
    extra_refusal_phrases: tuple[str, ...]
    refusal_scan_chars: int
    loop_min_repeats: int
    loop_min_words: int
    loop_max_ngram: int
    min_words: int
    language: bool
    require_subject: bool

    @classmethod
    def from_recipe(cls, block: dict | QualityConfig | None = None) -> QualityConfig:
        """From the recipe's `caption.quality` block (None = the default recipe's)."""
        if isinstance(block, QualityConfig):
            return block
        if block is None:
            from ...recipes import section
            block = section(None, "caption")["quality"]
        vals = take(block, [f.name for f in fields(cls)], "caption.quality")
        vals["extra_refusal_phrases"] = tuple(str(p).lower().replace("’", "'")
                                              for p in (vals["extra_refusal_phrases"] or ()))
        for n in ("refusal_scan_chars", "loop_min_repeats", "loop_min_words", "loop_max_ngram", "min_words"):
            vals[n] = int(vals[n])
        vals["language"] = bool(vals["language"])
        vals["require_subject"] = bool(vals["require_subject"])
        return cls(**vals)


@dataclass
class Review:
    text: str | None                  # the caption to keep (repaired), None when rejected
    verdicts: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return self.text is None


# ----------------------------------------------------------------------------- checks

def _words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0).lower().replace("’", "'"), m.start(), m.end()) for m in _WORD.finditer(text)]


def is_refusal(text: str, cfg: QualityConfig) -> bool:
    head = text[: cfg.refusal_scan_chars].lower().replace("’", "'")
    phrases = REFUSAL_PHRASES + cfg.extra_refusal_phrases
    for m in _SENTENCE_START.finditer(head):
        rest = head[m.end():].lstrip(" \"'*_`>-")
        if rest.startswith(phrases):
            return True
    return False


def find_loop(text: str, cfg: QualityConfig) -> tuple[int, int] | None:
    """(char offset where the loop's second copy starts, period in words) of the earliest repetition
    loop, or None."""
    spans = _words(text)
    w = [x[0] for x in spans]
    n = len(w)
    reps = max(2, cfg.loop_min_repeats)
    for i in range(n):
        for p in range(1, min(cfg.loop_max_ngram, (n - i) // reps) + 1):
            unit = w[i:i + p]
            r = 1
            while w[i + r * p: i + (r + 1) * p] == unit:
                r += 1
            if r >= reps and r * p >= cfg.loop_min_words:
                return spans[i + p][1], p
    return None


def ends_mid_sentence(text: str) -> bool:
    """True when `text` does not end with . ! ? (closing quotes and brackets allowed)."""
    s = text.rstrip()
    return bool(s) and not _ends_with_sentence_end(s)


def _ends_with_sentence_end(s: str) -> bool:
    last = None
    for m in _SENTENCE_END.finditer(s):
        last = m
    return last is not None and last.end() == len(s.rstrip())


def cut_to_last_sentence(text: str) -> str:
    """`text` up to the end of its last full sentence ("" when it has none)."""
    last = None
    for m in _SENTENCE_END.finditer(text):
        last = m
    return text[: last.end()].strip() if last else ""


def names_person(text: str) -> bool:
    for word, _, _ in _words(text):
        if word in PERSON_PRONOUNS:
            return True
        base = word.split("'")[0]
        if category_of(base) in ("person", "face") or category_of(_singular(base)) in ("person", "face"):
            return True
    return False


def check_caption(text: str | None, finish_reason: str | None, *, people_detected: bool | None,
                  cfg: QualityConfig | dict | None) -> list[str]:
    """What is wrong with one caption (verdict names in the module doc; [] = nothing)."""
    cfg = QualityConfig.from_recipe(cfg)
    if text is None or not any(ch.isalnum() for ch in text):
        return ["empty"]
    verdicts: list[str] = []
    if is_refusal(text, cfg):
        verdicts.append("refusal")
    if find_loop(text, cfg) is not None:
        verdicts.append("repetition_loop")
    if finish_reason == "length" or (_SENTENCE_END.search(text) is not None and ends_mid_sentence(text)):
        verdicts.append("truncated")
    if cfg.language:
        try:
            lang = language_verdict(text)
        except Exception:  # noqa: BLE001 - the spaCy pipeline is missing (BackendUnavailable) or broken
            verdicts.append("language_unchecked")
        else:
            if lang == "caption_no_words":
                verdicts.append("empty")
            elif lang is not None:
                verdicts.append("wrong_language")
    if cfg.require_subject and people_detected and not names_person(text):
        verdicts.append("no_subject")
    return verdicts


def repair(text: str | None, verdicts: list[str], cfg: QualityConfig | dict | None) -> tuple[str | None, list[str]]:
    """Apply the repairs `verdicts` call for: (the caption to keep or None when rejected, final verdicts)."""
    cfg = QualityConfig.from_recipe(cfg)
    out = list(verdicts)
    if text is None or any(v in out for v in REJECTING):
        return None, out
    s = text.strip()
    if "repetition_loop" in out or "truncated" in out:
        s = " ".join(s.split())
    if "repetition_loop" in out:
        loop = find_loop(s, cfg)
        kept = cut_to_last_sentence(s[: loop[0]]) if loop else s
        if len(_words(kept)) < cfg.min_words:
            return None, out
        s = kept
        out[out.index("repetition_loop")] = "repetition_loop_repaired"
        if "truncated" in out:          # the loop ran into max_tokens: the cut text ends at a sentence
            out.remove("truncated")
    if "truncated" in out:
        kept = cut_to_last_sentence(s)
        if len(_words(kept)) < cfg.min_words:
            return None, out
        s = kept
        out[out.index("truncated")] = "truncated_repaired"
    return s, out


def review(text: str | None, finish_reason: str | None, *, people_detected: bool | None,
           cfg: QualityConfig | dict | None) -> Review:
    """check_caption then repair; `no_subject` is judged on the text that is kept."""
    cfg = QualityConfig.from_recipe(cfg)
    verdicts = check_caption(text, finish_reason, people_detected=people_detected, cfg=cfg)
    kept, verdicts = repair(text, verdicts, cfg)
    if kept is None and "no_subject" in verdicts:     # nothing kept: naming no one is not news
        verdicts.remove("no_subject")
    if kept is not None and "no_subject" in verdicts and names_person(kept):
        verdicts.remove("no_subject")
    if kept is not None and cfg.require_subject and people_detected and "no_subject" not in verdicts \
            and not names_person(kept):
        verdicts.append("no_subject")
    return Review(kept, verdicts)


def people_detected(measured: dict | None) -> bool | None:
    """True / False from the clip's measured person or face counts (`n_people`, `n_persons`,
    `n_faces`); None when none of them is known."""
    known = []
    for key in ("n_people", "n_persons", "n_faces"):
        v = (measured or {}).get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v):
            known.append(v)
    if not known:
        return None
    return any(v > 0 for v in known)
