"""OpenHumanVid's choice among several captioners: keep the caption that agrees best with the clip.

    scorer = make_scorer(cfg)                  # once per worker: the recipe's `caption.vote.scorers`
    cap = vote(clip, candidates, scorer)       # the kept Caption, `score` set, a `vote: ...` verdict added

Scorers (image-text agreement of a caption's `long` text, else its `short` one, averaged over the
clip's sampled frames; texts are cut at the text encoder's token limit):

- `blip2_itm`: BLIP-2's image-text matching head (the paper's choice: OpenHumanVid keeps the
  caption with the higher BLIP-2 ITM score), Blip2ForImageTextRetrieval through transformers from
  local weights (`Salesforce/blip2-itm-vit-g`, looked for as $S2VFORGE_MODELS/blip2-itm-vit-g,
  ~/.cache/s2vforge/models/blip2-itm-vit-g, the HF cache, or `caption.vote.blip2_dir`). The score
  is the ITM head's match probability, 0..1.
- `clip`: cosine similarity of CLIP ViT-L/14's image and text embeddings, found where the
  aesthetic scorer finds its CLIP (backends/aesthetic.find_clip_dir) and loaded as a full CLIPModel
  (backends/gme.ClipEmbedder). Cosines of matching pairs sit around 0.2-0.35.

`make_scorer` tries the recipe's `scorers` in order and keeps the first that loads; when none
does, a `NoScorer` says why, and `vote` keeps the first candidate that passed quality with
`score` None and the verdict `vote: no scorer (<why>)`. Candidates that did not pass quality (an
error, no text, or a rejecting verdict of quality.py) are never kept while another passed.
Ties keep the earlier candidate (the recipe's `caption.captioners` order): deterministic.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from ..recipe_keys import take
from .base import Caption, ClipInput

VOTE_KEYS = ("scorers", "clip_dir", "blip2_dir", "device", "dtype", "batch_size")
SCORERS = ("clip", "blip2_itm")
BLIP2_HF_REPO = "Salesforce/blip2-itm-vit-g"
BLIP2_LOCAL_NAME = "blip2-itm-vit-g"
BLIP2_LABEL = f"BLIP-2 image-text matching ({BLIP2_HF_REPO})"


def _vote_cfg(cfg: dict) -> dict:
    """The `caption.vote` settings from the caption section (as the stage holds it) or the vote section."""
    vcfg = cfg["vote"] if isinstance(cfg, dict) and isinstance(cfg.get("vote"), dict) else cfg
    return take(vcfg, VOTE_KEYS, "caption.vote")


# ----------------------------------------------------------------------------- scorers

class ClipScorer:
    """Mean CLIP cosine between the frames and each text (module doc)."""

    name = "clip"

    def __init__(self, embedder) -> None:
        self.embedder = embedder                 # backends.gme.ClipEmbedder

    @classmethod
    def from_dir(cls, clip_dir: str | os.PathLike | None = None, device: str = "cpu", dtype=None,
                 batch_size: int = 16) -> ClipScorer:
        from ...backends.aesthetic import find_clip_dir
        from ...backends.gme import ClipEmbedder
        root = find_clip_dir(clip_dir)            # ModelNotFound names CLIP ViT-L/14 and every dir tried
        return cls(ClipEmbedder.from_dir(root, device=device, dtype=dtype, batch_size=batch_size))

    def scores(self, frames: Sequence[np.ndarray], texts: Sequence[str]) -> list[float]:
        img = self.embedder.embed_images(list(frames))      # (F, d), L2-normalised
        txt = self.embedder.embed_texts(list(texts))        # (T, d), truncated to CLIP's 77 tokens
        return [float(v) for v in (txt @ img.T).mean(axis=1)]


class Blip2ItmScorer:
    """Mean BLIP-2 ITM match probability between the frames and each text (module doc)."""

    name = "blip2_itm"

    def __init__(self, model, tokenizer, image_processor, device: str = "cpu", dtype=None, batch_size: int = 16):
        self.model, self.tokenizer, self.image_processor = model.eval(), tokenizer, image_processor
        self.device, self.batch_size = device, int(batch_size)
        self.dtype = dtype if dtype is not None else next(model.parameters()).dtype
        limit = int(getattr(model.config.qformer_config, "max_position_embeddings", 512))
        tok_max = getattr(tokenizer, "model_max_length", None)
        self.max_tokens = min(limit, int(tok_max)) if isinstance(tok_max, int) and tok_max < 10 ** 6 else limit

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike | None = None, device: str = "cpu", dtype=None,
                 batch_size: int = 16) -> Blip2ItmScorer:
        from ...backends.hf import import_first, load_text_image_model, require_torch_transformers
        from ...backends.paths import find_model_dir
        root = find_model_dir(BLIP2_LOCAL_NAME, BLIP2_HF_REPO, explicit=model_dir, model_label=BLIP2_LABEL)
        require_torch_transformers("BLIP-2 ITM caption scorer (torch + transformers)")
        model_cls = import_first("BLIP-2 image-text matching", "transformers:Blip2ForImageTextRetrieval")
        ip_cls = import_first("BLIP image processor (PIL)", "transformers:BlipImageProcessorPil",
                              "transformers:BlipImageProcessor")          # 5.x name, then 4.x
        model, tok, ip, torch_dtype = load_text_image_model(root, model_cls, ip_cls, dtype, device)
        return cls(model, tok, ip, device, torch_dtype, batch_size)

    def scores(self, frames: Sequence[np.ndarray], texts: Sequence[str]) -> list[float]:
        import torch
        from PIL import Image
        images = [Image.fromarray(np.ascontiguousarray(f, dtype=np.uint8)).convert("RGB") for f in frames]
        out = []
        with torch.inference_mode():
            pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
            for text in texts:
                enc = self.tokenizer([text], truncation=True, max_length=self.max_tokens, return_tensors="pt")
                probs = []
                for s in range(0, len(images), self.batch_size):
                    px = pixels[s:s + self.batch_size].to(self.device, self.dtype)
                    n = px.shape[0]
                    res = self.model(input_ids=enc["input_ids"].repeat(n, 1).to(self.device),
                                     attention_mask=enc["attention_mask"].repeat(n, 1).to(self.device),
                                     pixel_values=px, use_image_text_matching_head=True)
                    probs.append(res.logits_per_image.float().softmax(dim=-1)[:, 1].cpu())
                out.append(float(torch.cat(probs).mean()))
        return out


@dataclasses.dataclass
class NoScorer:
    """No scorer could load: `why` (short, for the verdict) and `details` (every error in full)."""
    why: str
    details: dict[str, str] = dataclasses.field(default_factory=dict)
    name: str | None = None


def load_scorer(name: str, cfg: dict):
    """One scorer by name from the `caption.vote` settings; BackendUnavailable/ModelNotFound when it cannot."""
    vcfg = _vote_cfg(cfg)
    kw = dict(device=vcfg["device"], dtype=vcfg["dtype"], batch_size=int(vcfg["batch_size"]))
    if name == "clip":
        return ClipScorer.from_dir(vcfg["clip_dir"], **kw)
    if name == "blip2_itm":
        return Blip2ItmScorer.from_dir(vcfg["blip2_dir"], **kw)
    raise ValueError(f"unknown caption.vote scorer {name!r} ({', '.join(SCORERS)})")


def make_scorer(cfg: dict):
    """The first of `caption.vote.scorers` that loads, else a NoScorer saying why (never raises for
    missing weights or packages; an unknown scorer name is a recipe error and raises)."""
    from ...backends.errors import BackendUnavailable
    names = list(_vote_cfg(cfg)["scorers"] or [])
    bad = [n for n in names if n not in SCORERS]
    if bad:
        raise ValueError(f"unknown caption.vote scorer {bad[0]!r} ({', '.join(SCORERS)})")
    if not names:
        return NoScorer("caption.vote.scorers is empty")
    details: dict[str, str] = {}
    short: list[str] = []
    for n in names:
        try:
            return load_scorer(n, cfg)
        except BackendUnavailable as e:
            details[n] = str(e)
            short.append(f"{n}: {e.model or 'unavailable'} not found" if e.looked_in else f"{n}: {str(e)[:160]}")
    return NoScorer("; ".join(short), details)


# ----------------------------------------------------------------------------- the vote

def _rejecting() -> frozenset[str]:
    """Verdict names of quality.py that mean the caption was rejected (not repaired, not flagged)."""
    try:
        from .quality import REJECTING
        base = set(REJECTING)
    except Exception:            # quality.py unavailable: its documented rejections
        base = {"empty", "refusal", "wrong_language"}
    return frozenset(base | {"repetition_loop", "truncated"})   # these two unrepaired = rejected (quality.repair)


def passed_quality(c: Caption) -> bool:
    """No error, some text, and no rejecting verdict."""
    rej = _rejecting()
    return c.error is None and bool(c.long or c.short) and not any(v.split(":")[0] in rej for v in c.verdicts)


def _labels(candidates: Sequence[Caption]) -> list[str]:
    """The captioner of each candidate; `captioner[model]` where two share a captioner name."""
    names = [c.captioner or "?" for c in candidates]
    return [f"{n}[{c.model}]" if names.count(n) > 1 and c.model else n for n, c in zip(names, candidates)]


def _kept(c: Caption, score: float | None, verdict: str) -> Caption:
    return dataclasses.replace(c, score=score, verdicts=list(c.verdicts) + [verdict],
                               structured=dict(c.structured), subject_tags=list(c.subject_tags),
                               object_tags=list(c.object_tags), background_tags=list(c.background_tags))


def vote(clip: ClipInput, candidates: list[Caption], scorer) -> Caption:
    """The candidate with the highest image-text agreement among those that passed quality (module doc)."""
    if not candidates:
        raise ValueError("vote needs at least one candidate caption")
    labels = _labels(candidates)
    ok = [i for i, c in enumerate(candidates) if passed_quality(c)]
    rejected = [f"{labels[i]} (rejected)" for i in range(len(candidates)) if i not in ok]
    if not ok:
        return _kept(candidates[0], None, f"vote: no candidate passed quality, kept {labels[0]}")
    why = None
    if scorer is None:
        why = "none configured"
    elif isinstance(scorer, NoScorer):
        why = scorer.why
    elif not clip.frames:
        why = "no frames"
    scores = None
    if why is None:
        try:
            scores = scorer.scores(clip.frames, [candidates[i].long or candidates[i].short for i in ok])
        except Exception as e:        # a scorer failing on one clip: that clip falls back, the run goes on
            why = f"{getattr(scorer, 'name', 'scorer')} failed: {type(e).__name__}: {str(e)[:160]}"
    if scores is None:
        return _kept(candidates[ok[0]], None, f"vote: no scorer ({why})")
    best = max(range(len(ok)), key=lambda j: (scores[j], -j))        # ties: the earlier candidate
    others = [f"{labels[i]} {scores[j]:.2f}" for j, i in enumerate(ok) if j != best] + rejected
    verdict = f"vote: kept {labels[ok[best]]} {scores[best]:.2f}" + (f" over {', '.join(others)}" if others else "")
    return _kept(candidates[ok[best]], float(scores[best]), f"{verdict} ({scorer.name})")
