"""Per-clip quality scorers of the curation stage, and the registry the engine calls.

Every scorer receives the same decoded `ClipFrames` (decode once, score many) and returns
`{column: float | None}`. Model-backed scorers load their model once per process, lazily, so
importing this registry is cheap and never imports torch/transformers/onnxruntime.

Keep ranges live in the recipes, not here; so do the scorers' settings: `scorer_params.<name>`
of the recipe is passed as keywords (fn(frames, **params)), and the default recipe sets every
one (recipes/openhumanvid.yaml); a scorer has no defaults of its own.
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from typing import Callable

from s2vforge.backends.errors import BackendUnavailable
from s2vforge.media.frames import ClipFrames
from s2vforge.stages.recipe_keys import MissingRecipeKey

from . import aesthetic, blur, brisque, luminance, motion, nsfw


@dataclass(frozen=True)
class Scorer:
    name: str                 # e.g. "luminance"
    columns: tuple[str, ...]  # output columns, each "score_<something>"
    fn: Callable[..., dict]   # fn(frames: ClipFrames, **params) -> {column: float | None}
    needs_model: bool = False
    description: str = ""


def _registry(*scorers: Scorer) -> dict[str, Scorer]:
    return {s.name: s for s in scorers}


SCORERS: dict[str, Scorer] = _registry(
    Scorer("luminance", luminance.COLUMNS, luminance.score_luminance,
           description="mean Rec.709 luma (0.2126R+0.7152G+0.0722B) of the cropped frames, 0..255"),
    Scorer("blur", blur.COLUMNS, blur.score_blur,
           description="CPBD sharpness in [0,1] (higher is sharper) and variance of the Laplacian, "
                       "both at long side scorer_params.blur.long_side px"),
    Scorer("motion", motion.COLUMNS, motion.score_motion,
           description="texture-weighted mean Farneback flow magnitude, px per source frame interval "
                       "at width scorer_params.motion.width px"),
    Scorer("brisque", brisque.COLUMNS, brisque.score_brisque, needs_model=True,
           description="BRISQUE no-reference quality (lower is better), mean over picked frames"),
    Scorer("nsfw", nsfw.COLUMNS, nsfw.score_nsfw, needs_model=True,
           description="NudeNet 320n: max exposed-class detection score over picked frames, 0..1"),
    Scorer("aesthetic", aesthetic.COLUMNS, aesthetic.score_aesthetic, needs_model=True,
           description="LAION improved-aesthetic MLP on CLIP ViT-L/14 embeddings (reference backend)"),
)


def _as_score(value) -> float | None:
    """Plain Python float, or None for missing/NaN/inf, so rows serialise cleanly to Parquet."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def required_params(scorer: Scorer) -> list[str]:
    """The keywords `scorer.fn` needs from scorer_params (those without a value in its signature)."""
    sig = inspect.signature(scorer.fn)
    return [p.name for i, p in enumerate(sig.parameters.values())
            if i > 0 and p.default is inspect.Parameter.empty
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]


def run_scorers(frames: ClipFrames, names: list[str], params: dict[str, dict],
                timings: dict[str, float] | None = None) -> tuple[dict, dict[str, str], dict[str, str]]:
    """Run each named scorer on the same frames.

    Returns (scores, unavailable, failed). `unavailable` maps a scorer name to why its backend
    cannot run at all (the run skips its filter and says so); `failed` maps a scorer name to
    why it failed on *this* clip (the clip is rejected with `<column>:missing`). Bad clips are
    data: a scorer exception never escapes. An unknown scorer name is a recipe error and
    raises ValueError, a setting missing from `params` (the recipe's scorer_params) raises
    MissingRecipeKey. `timings`, when given, accumulates seconds per scorer.
    """
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise ValueError(f"unknown scorer(s) {unknown}; known: {sorted(SCORERS)}")
    for name in names:
        given = (params or {}).get(name) or {}
        missing = [k for k in required_params(SCORERS[name]) if k not in given]
        if missing:
            raise MissingRecipeKey(f"scorer_params.{name}.{missing[0]}", given)
    scores: dict = {}
    unavailable: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name in names:
        scorer = SCORERS[name]
        t0 = time.perf_counter()
        try:
            out = scorer.fn(frames, **((params or {}).get(name) or {}))
            scores.update({col: _as_score(out.get(col)) for col in scorer.columns})
        except BackendUnavailable as exc:
            scores.update(dict.fromkeys(scorer.columns))
            unavailable[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the run
            scores.update(dict.fromkeys(scorer.columns))
            failed[name] = f"{name} failed on clip {frames.clip_id}: {type(exc).__name__}: {exc}"
        if timings is not None:
            timings[f"score_{name}"] = timings.get(f"score_{name}", 0.0) + time.perf_counter() - t0
    return scores, unavailable, failed


__all__ = ["Scorer", "SCORERS", "run_scorers"]
