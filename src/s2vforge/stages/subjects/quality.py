"""Quality of a subject's reference crop, and a VLM recheck of what the crop shows.

`crop_quality(rgba, box, frame_shape, cfg)` measures the cut-out (HxWx4, alpha = the subject's
mask; HxWx3 means "all subject") with the recipe's `subjects.quality` section `cfg` (values
and sources in recipes/openhumanvid.yaml; no defaults here):

- `sharpness`: variance of the 3x3 Laplacian (grey 0..255) over the subject's interior, the
  mask eroded by `erode_px` so the cut edge itself does not count as detail;
- `cpbd`: CPBD (stages/scores/blur.cpbd, Narvekar & Karam 2011) of the grey crop in which the
  pixels outside the mask are replaced by a smooth extension of the subject's own colours
  (normalised convolution), so the cut edge adds no artificial sharp edges; None when the
  crop has no measurable edges;
- `brisque`: BRISQUE (the `brisque` package's model, loaded once by
  stages/scores/brisque.load_brisque) of the same filled crop; lower is better;
- `min_side`: the crop's shorter side in px; `area_frac`: box area / frame area;
  `fill`: share of the box covered by the mask;
- `aesthetic`: the LAION aesthetic predictor (stages/scores/aesthetic.load_predictor) on the
  crop pasted on white, as OpenS2V-Nexus scores its subject crops
  (data_process/step5-2_get_subject_image.py); None when the reference weights are absent.

Sharpness and BRISQUE depend on scale, so they run at the crop's own size capped to a long
side of `work_long_side` px (downscaled, never upscaled: a small crop is reported by
`min_side`, not penalised twice by interpolation blur).

`recheck_with_vlm(rgba, phrase, client)` asks an OpenAI-compatible endpoint (backends/judge.
JudgeClient) three yes/no questions about the crop, as Phantom-Data's S2V detection stage
rechecks detections with a VLM: is the subject complete (not cut off or occluded), is it one
specific instance, does it match the phrase. Unreadable answers and endpoint failures give
None verdicts with the reason in `vlm_error`; bad credentials (JudgeAuthError) propagate so
the run stops asking.
"""
from __future__ import annotations

import json
import logging
import re

import cv2
import numpy as np

from s2vforge.backends.errors import BackendUnavailable
from s2vforge.stages.recipe_keys import take
from s2vforge.stages.scores.blur import cpbd as cpbd_of_gray
from s2vforge.stages.scores.brisque import brisque_of_image

log = logging.getLogger(__name__)

# algorithm guards and conventions, not settings
MIN_INTERIOR_PX = 64       # fewer interior pixels: sharpness is None
MIN_BRISQUE_SIDE = 16      # BRISQUE's 7x7 windows at two scales need at least this many px a side
ALPHA_THRESHOLD = 127      # alpha > 127 is subject

# the recipe keys crop_quality reads (subjects.quality)
QUALITY_CFG_KEYS = ("brisque", "aesthetic", "aesthetic_model", "work_long_side", "erode_px", "fill_sigma_frac")

QUALITY_KEYS = ("sharpness", "cpbd", "brisque", "min_side", "area_frac", "fill", "aesthetic")


def split_rgba(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8, bool mask) of an HxWx4 cut-out; HxWx3 is all subject."""
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 or HxWx4 image, got shape {a.shape}")
    rgb = np.ascontiguousarray(a[..., :3], dtype=np.uint8)
    mask = a[..., 3] > ALPHA_THRESHOLD if a.shape[2] == 4 else np.ones(a.shape[:2], bool)
    return rgb, mask


def fill_outside(rgb: np.ndarray, mask: np.ndarray, sigma_frac: float) -> np.ndarray:
    """Replace pixels outside `mask` by a smooth extension of the inside colours
    (normalised convolution: blur(rgb * m) / blur(m)), so the cut adds no hard edge."""
    if mask.all():
        return rgb
    m = mask.astype(np.float32)
    sigma = max(1.0, sigma_frac * max(rgb.shape[:2]))
    num = cv2.GaussianBlur(rgb.astype(np.float32) * m[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)[..., None]
    mean = rgb[mask].reshape(-1, 3).mean(axis=0) if mask.any() else np.full(3, 127.0)
    smooth = np.where(den > 1e-3, num / np.maximum(den, 1e-6), mean)
    out = np.where(mask[..., None], rgb.astype(np.float32), smooth)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _downscale(rgb: np.ndarray, mask: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    if s >= 1.0:
        return rgb, mask
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
    return small, m


def on_white(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The subject on a white background (OpenS2V-Nexus' reference images)."""
    out = np.full_like(rgb, 255)
    out[mask] = rgb[mask]
    return out


def crop_quality(rgba: np.ndarray, box, frame_shape, cfg: dict) -> dict:
    """Quality figures of one subject crop (see module docstring), `cfg` = `subjects.quality`.

    cfg["aesthetic"]: "auto" (the LAION predictor found by cfg["aesthetic_model"] if its weights
    are on disk, else None), None (skip), or a predictor with .predict(list of RGB) -> scores.
    cfg["brisque"] false skips BRISQUE (~0.1-0.2 s a crop)."""
    q = take(cfg, QUALITY_CFG_KEYS, "subjects.quality")
    aesthetic, brisque = q["aesthetic"], bool(q["brisque"])
    rgb, mask = split_rgba(rgba)
    fh, fw = int(frame_shape[0]), int(frame_shape[1])
    x0, y0, x1, y1 = (float(v) for v in box)
    box_area = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    out: dict = dict.fromkeys(QUALITY_KEYS)
    out["min_side"] = int(min(rgb.shape[:2]))
    out["area_frac"] = float(box_area / (fh * fw)) if fh * fw else None
    out["fill"] = float(mask.mean()) if mask.size else 0.0
    if not mask.any():
        return out

    work_rgb, work_mask = _downscale(rgb, mask, int(q["work_long_side"]))
    filled = fill_outside(work_rgb, work_mask, float(q["fill_sigma_frac"]))
    gray = cv2.cvtColor(filled.astype(np.float32), cv2.COLOR_RGB2GRAY)

    erode_px = int(q["erode_px"])
    interior = cv2.erode(work_mask.astype(np.uint8), np.ones((2 * erode_px + 1,) * 2, np.uint8)) > 0
    if np.count_nonzero(interior) >= MIN_INTERIOR_PX:
        lap = cv2.Laplacian(gray, cv2.CV_32F).astype(np.float64)
        out["sharpness"] = float(lap[interior].var())
    out["cpbd"] = cpbd_of_gray(gray)

    if brisque and min(filled.shape[:2]) >= MIN_BRISQUE_SIDE:
        out["brisque"] = _brisque(filled)
    if aesthetic is not None:
        out["aesthetic"] = _aesthetic(on_white(rgb, mask), aesthetic, q["aesthetic_model"])
    return out


def _brisque(rgb: np.ndarray) -> float | None:
    try:
        return brisque_of_image(rgb)
    except BackendUnavailable as exc:
        log.info("BRISQUE unavailable: %s", exc)
        return None
    except Exception as exc:  # noqa: BLE001 - the package raises plain errors on degenerate input
        log.debug("BRISQUE failed on a %sx%s crop: %s", rgb.shape[1], rgb.shape[0], exc)
        return None


def _aesthetic(rgb_on_white: np.ndarray, aesthetic, model: dict) -> float | None:
    predictor = aesthetic
    if isinstance(aesthetic, str):
        if aesthetic != "auto":
            raise ValueError(f"aesthetic must be 'auto', None or a predictor, not {aesthetic!r}")
        from s2vforge.stages.scores.aesthetic import load_predictor
        try:
            predictor = load_predictor(**take(model, ("clip_dir", "mlp_path", "device", "dtype"),
                                              "subjects.quality.aesthetic_model"))
        except BackendUnavailable:
            return None   # no reference weights: the column stays None (the scorer logs why)
    scores = predictor.predict([rgb_on_white])
    return float(scores[0]) if len(scores) else None


# ----------------------------------------------------------------------------- VLM recheck

CHECKS = ("completeness", "specificity", "phrase_match")

RECHECK_PROMPT = """The image is one subject cut out of a video frame (the background was removed and shown as white). It is meant to be: "{phrase}".
Answer three questions about it, each with "yes" or "no" and a short reason:
1. completeness: Is the subject shown whole: not cut off by the image border, not missing large parts, not hidden behind something else?
2. specificity: Is it one specific, clearly identifiable instance (not a crowd, a texture, a fragment or an unrecognisable blur)?
3. phrase_match: Does the image show "{phrase}"?
Reply with JSON only, exactly in this form:
{{"completeness": {{"answer": "yes", "reason": "..."}}, "specificity": {{"answer": "yes", "reason": "..."}}, "phrase_match": {{"answer": "yes", "reason": "..."}}}}"""

_ALIASES = {
    "completeness": ("completeness", "complete", "completely_visible", "whole", "integrity"),
    "specificity": ("specificity", "specific", "single_instance", "distinct"),
    "phrase_match": ("phrase_match", "phrasematch", "match", "matches", "phrase", "text_match", "semantic_match"),
}
_YES = frozenset({"yes", "y", "true", "1", "pass", "passed", "correct"})
_NO = frozenset({"no", "n", "false", "0", "fail", "failed", "incorrect"})
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_LEADING_VERDICT = re.compile(r"^\s*[*_`\"']*\s*(yes|no|true|false)\b[\s*_`\"'.,:;\-\u2013\u2014]*", re.IGNORECASE)
_LINE_TAIL = r")[*_`\"']*\s*[:=\-\u2013\u2014]\s*[*_`\"']*(yes|no|true|false)\b[*_`\"']*[\s.,:;\-\u2013\u2014]*(.*)$"


def _norm_key(k: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(k).strip().lower()).strip("_")


def _yes_no(value) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and value in (0, 1):
        return "yes" if value else "no"
    if isinstance(value, str):
        m = re.match(r"\s*[*_`\"']*\s*([A-Za-z]+|[01])\b", value)
        if m:
            word = m.group(1).lower()
            if word in _YES:
                return "yes"
            if word in _NO:
                return "no"
    return None


def _verdict(value) -> tuple[str | None, str | None]:
    """(answer, reason) from a JSON value: {"answer": .., "reason": ..}, "yes - because", true."""
    if isinstance(value, dict):
        low = {_norm_key(k): v for k, v in value.items()}
        answer = next((low[k] for k in ("answer", "verdict", "result", "value", "pass", "ok") if k in low), None)
        reason = next((low[k] for k in ("reason", "reasoning", "explanation", "why", "rationale") if k in low), None)
        return _yes_no(answer), (str(reason).strip() if reason is not None else None)
    if isinstance(value, str):
        ans = _yes_no(value)
        rest = _LEADING_VERDICT.sub("", value).strip()
        return ans, (rest or None)
    return _yes_no(value), None


def _json_candidates(text: str):
    for m in _FENCE.finditer(text):
        yield m.group(1).strip()
    yield text.strip()
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        yield text[start:end + 1]


def parse_recheck(text: str | None) -> dict:
    """{check: (answer | None, reason | None)} from a VLM reply; JSON first, then lines like
    "completeness: yes - the whole mug is visible"."""
    found: dict[str, tuple[str | None, str | None]] = {}
    if not text:
        return {c: (None, None) for c in CHECKS}
    for cand in _json_candidates(text):
        try:
            obj = json.loads(cand)
        except ValueError:
            continue
        if isinstance(obj, dict):
            low = {_norm_key(k): v for k, v in obj.items()}
            for check, names in _ALIASES.items():
                for n in names:
                    if n in low and check not in found:
                        found[check] = _verdict(low[n])
            if found:
                break
    for check, names in _ALIASES.items():
        if check in found and found[check][0] is not None:
            continue
        pattern = (r"(?im)^[\s>*#\-\d.)]*[*_`\"']*(?:" + "|".join(re.escape(n).replace("_", r"[\s_-]?") for n in names)
                   + _LINE_TAIL)
        m = re.search(pattern, text)
        if m:
            found[check] = (_yes_no(m.group(1)), m.group(2).strip() or None)
    return {c: found.get(c, (None, None)) for c in CHECKS}


def recheck_with_vlm(rgba: np.ndarray, phrase: str, client, *, long_side: int = 512) -> dict:
    """Ask the endpoint about one crop. Returns {check: "yes"/"no"/None, check_reason: str/None,
    "vlm_pass": all yes -> True, any no -> False, else None, "vlm_error": str/None,
    "vlm_model": the endpoint's model name}."""
    from s2vforge.backends.judge import JudgeAuthError, JudgeError, image_content, jpeg_data_url

    out: dict = {}
    for c in CHECKS:
        out[c] = None
        out[f"{c}_reason"] = None
    out["vlm_pass"] = None
    out["vlm_error"] = None
    out["vlm_model"] = getattr(client, "model", None)
    rgb, mask = split_rgba(rgba)
    if not mask.any() or min(rgb.shape[:2]) < 2:
        out["vlm_error"] = "empty crop"
        return out
    content = image_content([jpeg_data_url(on_white(rgb, mask), long_side=long_side)],
                            RECHECK_PROMPT.format(phrase=str(phrase).replace('"', "'")))
    try:
        reply = client.chat(content, temperature=0.0, max_tokens=400)
    except JudgeAuthError:
        raise
    except (JudgeError, BackendUnavailable) as exc:
        out["vlm_error"] = f"endpoint failed: {exc}"
        return out
    parsed = parse_recheck(reply)
    for c in CHECKS:
        out[c], out[f"{c}_reason"] = parsed[c]
    answers = [out[c] for c in CHECKS]
    if "no" in answers:
        out["vlm_pass"] = False
    elif all(a == "yes" for a in answers):
        out["vlm_pass"] = True
    missing = [c for c in CHECKS if out[c] is None]
    if missing:
        snippet = (reply or "")[:200].replace("\n", " ")
        out["vlm_error"] = f"no yes/no verdict for {', '.join(missing)} in reply: {snippet!r}"
    return out
