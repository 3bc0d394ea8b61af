"""Caption quality verdicts and repairs (stages/caption/quality.py) and the prompt files (prompts.py)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

import s2vforge
from s2vforge.recipes import load_recipe
from s2vforge.stages.caption import quality as q
from s2vforge.stages.caption.base import STRUCTURED_FIELDS
from s2vforge.stages.caption.prompts import (
    PromptError,
    builtin_prompts,
    first_sentence,
    load_prompt,
    parse_json_object,
)
from s2vforge.stages.recipe_keys import MissingRecipeKey
from s2vforge.stages.subjects.phrases import TAG_PROMPT

ROOT = Path(__file__).resolve().parents[2]
GOOD = ("A woman in a red coat walks her dog along a snowy street. "
        "She stops at a shop window and smiles at the camera.")


@pytest.fixture(scope="module")
def cfg():
    return q.QualityConfig.from_recipe(load_recipe(None)["caption"]["quality"])


def review(text, finish="stop", people=True, cfg=None):
    return q.review(text, finish, people_detected=people, cfg=cfg)


# ----------------------------------------------------------------------------- verdicts

def test_a_good_caption_passes(cfg):
    assert q.check_caption(GOOD, "stop", people_detected=True, cfg=cfg) == []
    r = review(GOOD, cfg=cfg)
    assert (r.text, r.verdicts, r.rejected) == (GOOD, [], False)


@pytest.mark.parametrize("text", [
    "I'm sorry, I can't help with that request.",
    "I’m sorry, but I cannot describe people in videos.",
    "As an AI language model, I cannot see videos.",
    "I cannot help with identifying this person.",
    "Sure. Unfortunately, I am unable to view the frames you sent.",
    "**I'm unable to** analyse this content.",
])
def test_refusals_are_rejected(text, cfg):
    r = review(text, cfg=cfg)
    assert r.rejected and r.text is None and r.verdicts == ["refusal"]


def test_a_quoted_apology_is_not_a_refusal(cfg):
    text = 'A man turns to a woman in a park and says "I\'m sorry" before hugging her.'
    assert review(text, cfg=cfg).verdicts == []


def test_extra_refusal_phrases_come_from_the_recipe():
    block = load_recipe(None)["caption"]["quality"]
    block["extra_refusal_phrases"] = ["lo siento"]
    extra = q.QualityConfig.from_recipe(block)
    assert q.is_refusal("Lo siento, no puedo ayudar.", extra)
    assert not q.is_refusal("Lo siento, no puedo ayudar.", q.QualityConfig.from_recipe(None))


def test_repetition_loop_is_cut_after_its_first_copy(cfg):
    text = "A man stands in a kitchen and chops onions. " + "He smiles. " * 9 + "He"
    verdicts = q.check_caption(text, "length", people_detected=True, cfg=cfg)
    assert verdicts == ["repetition_loop", "truncated"]
    r = review(text, "length", cfg=cfg)
    assert r.text == "A man stands in a kitchen and chops onions. He smiles."
    assert r.verdicts == ["repetition_loop_repaired"]          # the loop explains the "length" stop


def test_a_phrase_loop_mid_sentence_is_cut_to_the_last_sentence(cfg):
    text = "A girl rides a red bicycle down a quiet street. She passes a bakery and and and and and and and and"
    r = review(text, "length", cfg=cfg)
    assert r.text == "A girl rides a red bicycle down a quiet street."
    assert r.verdicts == ["repetition_loop_repaired"]


def test_a_loop_with_nothing_before_it_is_rejected(cfg):
    r = review("the the the the the the the the the the", cfg=cfg, people=None)
    assert r.rejected and r.verdicts == ["repetition_loop"]


def test_natural_repetition_is_not_a_loop(cfg):
    text = "A very very tall man waves. The crowd claps, claps again and cheers as the band plays on."
    assert q.find_loop(text, cfg) is None


def test_truncated_at_max_tokens_is_cut_to_the_last_sentence(cfg):
    text = GOOD + " Behind her, a bus pulls up and two passengers step off onto the"
    assert "truncated" in q.check_caption(text, "length", people_detected=True, cfg=cfg)
    r = review(text, "length", cfg=cfg)
    assert (r.text, r.verdicts) == (GOOD, ["truncated_repaired"])


def test_a_mid_sentence_end_without_length_stop_is_truncated_too(cfg):
    r = review(GOOD + " Then she", "stop", cfg=cfg)
    assert (r.text, r.verdicts) == (GOOD, ["truncated_repaired"])


def test_truncated_with_no_full_sentence_left_is_rejected(cfg):
    r = review("A woman in a red coat walks her dog along a snowy street past the", "length", cfg=cfg)
    assert r.rejected and r.verdicts == ["truncated"]


def test_min_words_after_repair_comes_from_the_recipe():
    block = load_recipe(None)["caption"]["quality"]
    text = "A dog runs. It jumps over a fence and lands in a muddy field next to the old"
    assert review(text, "length", people=None, cfg=block).rejected          # 3 words < min_words 5
    block["min_words"] = 3
    assert review(text, "length", people=None, cfg=block).text == "A dog runs."


def test_a_phrase_caption_without_a_period_is_kept(cfg):
    r = review("A dog running on grass", "stop", people=False, cfg=cfg)
    assert (r.text, r.verdicts) == ("A dog running on grass", [])


@pytest.mark.parametrize("text", [
    "Una mujer con un abrigo rojo pasea a su perro por una calle nevada y sonríe a la cámara.",
    "Une femme en manteau rouge promène son chien dans une rue enneigée.",
    "一位穿红色外套的女人在雪街上遛狗，对着镜头微笑。",
])
def test_wrong_language_is_rejected(text, cfg):
    r = review(text, cfg=cfg)
    assert r.rejected and r.verdicts == ["wrong_language"]


def test_no_subject_when_people_were_detected(cfg):
    text = "A red car drives along a winding mountain road at sunset."
    assert review(text, people=True, cfg=cfg).verdicts == ["no_subject"]      # kept, flagged
    assert not review(text, people=True, cfg=cfg).rejected
    assert review(text, people=False, cfg=cfg).verdicts == []
    assert review(text, people=None, cfg=cfg).verdicts == []                  # unknown: not judged
    assert review("She waves from the balcony of a tall building.", people=True, cfg=cfg).verdicts == []
    assert review("Two dancers spin across a wooden stage.", people=True, cfg=cfg).verdicts == []


def test_empty_is_rejected(cfg):
    for text in (None, "", "  ...  "):
        r = review(text, cfg=cfg)
        assert r.rejected and r.verdicts == ["empty"]


def test_people_detected_from_measured():
    assert q.people_detected({}) is None
    assert q.people_detected({"n_faces": 0}) is False
    assert q.people_detected({"n_faces": 0, "n_people": 2}) is True
    assert q.people_detected({"n_faces": float("nan")}) is None


def test_a_partial_quality_block_names_the_missing_key():
    with pytest.raises(MissingRecipeKey, match="caption.quality.loop_min_words"):
        q.QualityConfig.from_recipe({"extra_refusal_phrases": [], "refusal_scan_chars": 200, "loop_min_repeats": 3})


# ----------------------------------------------------------------------------- prompts

def test_packaged_prompts_load_and_ship_in_the_wheel():
    assert {"opens2v", "openhumanvid"} <= set(builtin_prompts())
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["s2vforge"]
    assert "stages/caption/prompts/*.yaml" in data
    folder = Path(s2vforge.__file__).parent / "stages" / "caption" / "prompts"
    assert sorted(p.stem for p in folder.glob("*.yaml")) == builtin_prompts()
    for name in builtin_prompts():
        p = load_prompt(name)
        assert p.id == name and p.source and p.caption_text and "{caption}" in p.reformat_text
        assert re.fullmatch(rf"{name}@[0-9a-f]{{12}}", p.prompt_id)


def test_opens2v_prompt_is_the_papers():
    p = load_prompt("opens2v")
    assert "OpenS2V-Nexus" in p.source and "step3-1_get_caption.py" in p.source and "step4-1" in p.source
    assert p.caption_text.startswith("Please generate a comprehensive caption for the following video")
    assert 'Without "\n", subheading and title.' in p.caption_text       # the source's literal newline
    assert p.caption_text.endswith("in chronological order:")
    # the tag prompt is the one subjects.phrases sends (same text, our placeholder)
    assert p.reformat_text == TAG_PROMPT.replace("{CAPTION}", "{caption}").strip()
    assert (p.caption_max_tokens, p.caption_temperature, p.frames) == (512, 0.1, 16)
    assert p.caption_params == {"top_p": 0.001, "repetition_penalty": 1.05}
    assert (p.reformat_max_tokens, p.reformat_json) == (1024, True)


@pytest.mark.parametrize("name", ["opens2v", "openhumanvid"])
def test_each_prompts_example_answer_parses_into_every_field_it_maps(name):
    p = load_prompt(name)
    caption = "A woman stirs a pot in a kitchen. She smiles."
    got = p.parse_answer(p.example_answer, caption)
    assert got.verdicts == []
    assert got.short and got.long and got.subject_tags and got.object_tags and got.face_caption
    assert set(got.structured) == set(STRUCTURED_FIELDS)
    for field in p.output["structured"]:
        assert got.structured[field], field


def test_reformat_request_places_the_caption_and_the_face_request():
    p = load_prompt("opens2v")
    text = p.reformat_request("A cat sleeps.\n\tOn a sofa.", face=False)
    assert text.endswith("Caption: A cat sleeps. On a sofa. Output:") and "face_caption" not in text
    assert p.reformat_request("A man waves.", face=True).endswith(p.face_text)


def test_tags_in_the_papers_single_quoted_form_parse():
    p = load_prompt("opens2v")
    got = p.parse_answer("Output: {'background': [''], 'subject': ['woman'], 'object': ['mask', 'coat']}", "x.")
    assert (got.subject_tags, got.object_tags, got.background_tags) == (["woman"], ["mask", "coat"], [])


def test_parse_json_object_variants():
    assert parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('Here you go: {"a": [1, 2]} Hope it helps.') == {"a": [1, 2]}
    assert parse_json_object("{'a': 'b'}") == {"a": "b"}
    assert parse_json_object("no json here") is None
    assert parse_json_object("__import__('os').system('true')") is None
    assert first_sentence("Dr. Who runs. Then stops.") == "Dr."  # naive by design: documented
    assert first_sentence("A dog runs! It stops.") == "A dog runs!"


def test_unknown_prompt_and_bad_files_say_why(tmp_path):
    with pytest.raises(PromptError, match=r"unknown prompt 'nope'.*opens2v"):
        load_prompt("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ncaption: [unclosed\n")
    with pytest.raises(PromptError, match=r"bad.yaml: not valid YAML"):
        load_prompt(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text("id: mine\nsource: me\ncaption: {text: Describe.}\nreformat: {text: 'Rewrite {caption}'}\n"
                       "output: {short: short}\n")
    with pytest.raises(PromptError, match=r"missing.yaml: `output.long` must be str, it is missing"):
        load_prompt(missing)
    no_slot = tmp_path / "noslot.yaml"
    no_slot.write_text("id: mine\nsource: me\ncaption: {text: Describe.}\nreformat: {text: Rewrite}\n"
                       "output: {short: short, long: long}\n")
    with pytest.raises(PromptError, match=r"must contain \{caption\}"):
        load_prompt(no_slot)
    wrong_field = tmp_path / "field.yaml"
    wrong_field.write_text("id: mine\nsource: me\ncaption: {text: Describe.}\nreformat: {text: 'R {caption}'}\n"
                           "output: {short: s, long: l, structured: {mood: m}}\n")
    with pytest.raises(PromptError, match=r"unknown fields \['mood'\]"):
        load_prompt(wrong_field)


def test_a_users_prompt_file_and_its_id_follow_its_texts(tmp_path):
    f = tmp_path / "mine.yaml"
    body = ("id: mine\nsource: ours\ncaption: {text: Describe the clip.}\n"
            "reformat: {text: 'Rewrite as JSON with short and long: {caption}', json_mode: true}\n"
            "output: {short: short, long: long}\n")
    f.write_text(body)
    a = load_prompt(f)
    assert a.id == "mine" and a.path == str(f) and a.caption_max_tokens is None
    f.write_text(body.replace("Describe the clip.", "Describe the video."))
    b = load_prompt(str(f))
    assert a.prompt_id != b.prompt_id and a.prompt_id.startswith("mine@")
    got = b.parse_answer('{"short": "A cat.", "long": "A cat sleeps on a sofa."}', "A cat sleeps.")
    assert (got.short, got.long, got.verdicts) == ("A cat.", "A cat sleeps on a sofa.", [])
    partial = b.parse_answer('{"short": "A cat."}', "A cat sleeps on a sofa.")
    assert partial.long == "A cat sleeps on a sofa." and partial.verdicts == ["reformat_incomplete"]
