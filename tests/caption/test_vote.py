"""OpenHumanVid's vote among captioners (stages/caption/vote.py): the pick and its verdict with
known scores, tiny random CLIP and BLIP-2 ITM models loaded through the real code paths, and the
no-scorer fallback with the missing-weights message."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from s2vforge.corpus.synth import load_photo
from s2vforge.recipes import load_recipe
from s2vforge.stages.caption.base import Caption, ClipInput
from s2vforge.stages.caption.vote import (
    BLIP2_LABEL,
    Blip2ItmScorer,
    ClipScorer,
    NoScorer,
    load_scorer,
    make_scorer,
    passed_quality,
    vote,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
CAPTION = load_recipe(None)["caption"]          # the default recipe's caption section, as the stage holds it
VOTE = CAPTION["vote"]


def clip_input(n: int = 3) -> ClipInput:
    frames = [np.ascontiguousarray(load_photo(p)[:224, :224]) for p in ("astronaut", "coffee", "chelsea")][:n]
    return ClipInput("c0", Path("c0.mp4"), frames, [0.5 * i for i in range(n)], 1.5, 25.0, (224, 224))


def cands() -> list[Caption]:
    return [Caption(short="A woman.", long="A woman in an orange suit smiles.", captioner="endpoint", model="qwen"),
            Caption(short="A person.", long="A person stands before a flag.", captioner="reference", model="qwen-7b"),
            Caption(short="1 person, static camera", long="1 person is visible.", captioner="facts", model="f")]


class FixedScorer:
    """Known scores by text: checks the pick, not a model."""
    name = "fixed"

    def __init__(self, by_text: dict[str, float]) -> None:
        self.by_text, self.calls = by_text, []

    def scores(self, frames, texts):
        self.calls.append(list(texts))
        return [self.by_text[t] for t in texts]


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    """Nowhere holds weights: $S2VFORGE_MODELS, the s2vforge cache and the HF cache are empty folders."""
    monkeypatch.setenv("S2VFORGE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


# ----------------------------------------------------------------------------- the pick

def test_vote_keeps_the_highest_score_and_says_so():
    c = cands()
    scorer = FixedScorer({c[0].long: 0.27, c[1].long: 0.31, c[2].long: 0.12})
    kept = vote(clip_input(), c, scorer)
    assert kept.captioner == "reference" and kept.long == c[1].long
    assert kept.score == pytest.approx(0.31)
    assert kept.verdicts == ["vote: kept reference 0.31 over endpoint 0.27, facts 0.12 (fixed)"]
    assert scorer.calls == [[x.long for x in c]]                  # the long text of every candidate, once
    assert c[1].verdicts == [] and c[1].score is None             # the candidates themselves are untouched


def test_short_text_when_no_long_ties_and_duplicate_names():
    a = Caption(short="A cup of coffee.", captioner="endpoint", model="m1")
    b = Caption(short="A cup.", long=None, captioner="endpoint", model="m2")
    kept = vote(clip_input(), [a, b], FixedScorer({"A cup of coffee.": 0.5, "A cup.": 0.5}))
    assert kept.model == "m1"                                     # a tie keeps the earlier candidate
    assert kept.verdicts == ["vote: kept endpoint[m1] 0.50 over endpoint[m2] 0.50 (fixed)"]


def test_rejected_candidates_are_never_kept():
    c = cands()
    c[1].verdicts, c[1].long, c[1].short = ["refusal"], None, None
    c[2].error = "Timeout: no answer"
    c[0].verdicts = ["truncated_repaired"]                        # repaired is still a pass
    assert [passed_quality(x) for x in c] == [True, False, False]
    kept = vote(clip_input(), c, FixedScorer({c[0].long: 0.2}))
    assert kept.captioner == "endpoint" and kept.score == pytest.approx(0.2)
    assert kept.verdicts == ["truncated_repaired",
                             "vote: kept endpoint 0.20 over reference (rejected), facts (rejected) (fixed)"]
    c[0].verdicts = ["repetition_loop"]                           # unrepaired loop = rejected
    kept = vote(clip_input(), c, FixedScorer({}))
    assert kept.captioner == "endpoint" and kept.score is None
    assert kept.verdicts[-1] == "vote: no candidate passed quality, kept endpoint"


def test_no_scorer_keeps_the_first_that_passed():
    c = cands()
    c[0].verdicts = ["wrong_language"]
    kept = vote(clip_input(), c, NoScorer("clip: CLIP ViT-L/14 not found"))
    assert kept.captioner == "reference" and kept.score is None
    assert kept.verdicts == ["vote: no scorer (clip: CLIP ViT-L/14 not found)"]
    assert vote(clip_input(), cands(), None).verdicts == ["vote: no scorer (none configured)"]

    class Broken:
        name = "clip"

        def scores(self, frames, texts):
            raise RuntimeError("CUDA out of memory")
    kept = vote(clip_input(), cands(), Broken())
    assert kept.captioner == "endpoint" and kept.verdicts == [
        "vote: no scorer (clip failed: RuntimeError: CUDA out of memory)"]


def test_missing_weights_give_a_no_scorer_that_names_them(no_models):
    s = make_scorer(CAPTION)                                      # scorers [clip, blip2_itm], nothing on disk
    assert isinstance(s, NoScorer)
    assert "clip: CLIP ViT-L/14" in s.why and "blip2_itm: BLIP-2 image-text matching" in s.why
    assert set(s.details) == {"clip", "blip2_itm"}
    assert str(no_models / "models" / "blip2-itm-vit-g") in s.details["blip2_itm"]
    assert "S2VFORGE_MODELS" in s.details["blip2_itm"]
    kept = vote(clip_input(), cands(), s)
    assert kept.verdicts == [f"vote: no scorer ({s.why})"] and kept.captioner == "endpoint"
    from s2vforge.backends.errors import ModelNotFound
    with pytest.raises(ModelNotFound, match=r"BLIP-2 image-text matching \(Salesforce/blip2-itm-vit-g\)"):
        load_scorer("blip2_itm", VOTE)
    assert isinstance(make_scorer({**VOTE, "scorers": []}), NoScorer)
    with pytest.raises(ValueError, match="unknown caption.vote scorer 'blip'"):
        make_scorer({**VOTE, "scorers": ["blip"]})


# ----------------------------------------------------------------------------- tiny real models

@pytest.mark.reference
def test_tiny_clip_scores_through_the_aesthetic_search_path(no_models, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch
    from bench_models.tiny_models import save_tiny_clip
    torch.set_num_threads(1)
    # saved where backends/aesthetic.find_clip_dir looks: $S2VFORGE_MODELS/clip-vit-large-patch14
    save_tiny_clip(no_models / "models" / "clip-vit-large-patch14")
    s = make_scorer(CAPTION)
    assert isinstance(s, ClipScorer) and s.name == "clip"
    c = cands()
    c[0].long = "an astronaut " * 40                              # longer than CLIP's 77 tokens: truncated, not an error
    scores = s.scores(clip_input().frames, [x.long for x in c])
    assert len(scores) == 3 and all(-1.0 <= v <= 1.0 and math.isfinite(v) for v in scores)
    assert s.scores(clip_input().frames, [x.long for x in c]) == scores           # deterministic
    kept = vote(clip_input(), c, s)
    best = int(np.argmax(scores))
    assert kept.captioner == c[best].captioner and kept.score == pytest.approx(scores[best])
    assert kept.verdicts[-1].startswith(f"vote: kept {c[best].captioner} {scores[best]:.2f} over ")
    assert kept.verdicts[-1].endswith(" (clip)")


def save_tiny_blip2_itm(out_dir: Path, seed: int = 0) -> Path:
    """A randomly initialised Blip2ForImageTextRetrieval (ViT + Q-Former with text input + ITM head),
    saved like Salesforce/blip2-itm-vit-g: config, safetensors, a BERT WordPiece tokenizer, a BLIP
    image processor."""
    import torch
    from transformers import BertTokenizer, Blip2Config, Blip2ForImageTextRetrieval
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz.,!") + ["##" + c for c in
                                                                                             "abcdefghijklmnopqrstuvwxyz"]
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(str(out_dir / "vocab.txt"))
    cfg = Blip2Config(vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                         image_size=32, patch_size=8),
                      qformer_config=dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                          num_attention_heads=2, intermediate_size=64, encoder_hidden_size=32,
                                          max_position_embeddings=64, use_qformer_text_input=True),
                      num_query_tokens=4, image_text_hidden_size=16)
    torch.manual_seed(seed)
    Blip2ForImageTextRetrieval(cfg).eval().save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    try:
        from transformers import BlipImageProcessorPil as ip_cls
    except ImportError:
        from transformers import BlipImageProcessor as ip_cls
    ip_cls(size={"height": 32, "width": 32}).save_pretrained(str(out_dir))
    return out_dir


@pytest.mark.reference
def test_tiny_blip2_itm_scores_when_its_weights_are_there(no_models, tmp_path):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Blip2ForImageTextRetrieval"):
        pytest.skip("this transformers has no Blip2ForImageTextRetrieval")
    import torch
    torch.set_num_threads(1)
    root = save_tiny_blip2_itm(no_models / "models" / "blip2-itm-vit-g")
    assert json.loads((root / "config.json").read_text())["architectures"] == ["Blip2ForImageTextRetrieval"]
    # the recipe's order: CLIP first; absent, so BLIP-2 ITM (the paper's scorer) is the one that loads
    s = make_scorer(CAPTION)
    assert isinstance(s, Blip2ItmScorer) and s.max_tokens == 64
    c = cands()
    c[0].long = "a woman " * 100                                  # past the Q-Former's 64 positions: truncated
    scores = s.scores(clip_input().frames, [x.long for x in c])
    assert len(scores) == 3 and all(0.0 < v < 1.0 for v in scores)  # ITM match probabilities
    s.batch_size = 2                                              # frames in several forward passes: same mean
    assert s.scores(clip_input().frames, [x.long for x in c]) == pytest.approx(scores, abs=1e-6)
    kept = vote(clip_input(), c, s)
    assert kept.score == pytest.approx(max(scores)) and kept.verdicts[-1].endswith(" (blip2_itm)")
    # an explicit folder (caption.vote.blip2_dir) is looked at first
    other = save_tiny_blip2_itm(tmp_path / "elsewhere", seed=1)
    s2 = load_scorer("blip2_itm", {**VOTE, "blip2_dir": str(other)})
    assert s2.scores(clip_input().frames, ["a woman"]) != s.scores(clip_input().frames, ["a woman"])
    assert BLIP2_LABEL.startswith("BLIP-2")
