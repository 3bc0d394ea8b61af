"""Stage 5 of pairing: verify that a retrieved reference shows the same identity as the target.

Retrieval (stage 3) only says "these embeddings are close"; the checks here say *why* a pair
is kept or dropped, and every one returns a `Verdict` that the pipeline records:

- `verify_geometric`: objects. Same instance => many local features agree under one
  geometric transform. RootSIFT keypoints inside the subject mask, Lowe ratio test, RANSAC
  (USAC_MAGSAC) homography inliers; the mirrored reference is tried too (a flipped instance is
  the same identity).
- `verify_face_agreement`: people. dlib 128-d descriptor distance (face_recognition's rule).
- `verify_text_match`: optional logo/text prior for products (embedded PP-OCR, rapidocr).
- `VlmVerifier`: an OpenAI-compatible VLM asked, in one request, whether the reference and the
  target show the same identity and whether the context differs (Phantom-Data's prior-based
  identity verification is a VLM check; here any endpoint works).

`ok=None` means "could not decide" (no face, no text, endpoint down): it is recorded, never
guessed. The thresholds are the recipe's `pairs.verify` section (values, measurements and
sources in recipes/openhumanvid.yaml); the functions here take them as required keywords.
"""
from __future__ import annotations

import difflib
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..recipe_keys import take

if TYPE_CHECKING:  # pragma: no cover
    from ...backends.judge import JudgeClient

# pairs.verify.geometric.min_inliers (10 in the default recipe), ours, measured
# (tests/pairs_verify/measure_geometric.py): 8 packaged objects (skimage coffee, chelsea, rocket,
# astronaut, motorcycle, logo; matplotlib Minduka pack, grace_hopper) pasted onto real backgrounds
# at 0.3-1.5x, mirrored, darker, rotated, perspective-tilted, blurred and JPEG'd. Pairs of
# *different* objects never exceeded 6 MAGSAC inliers (224 pairs: 191 with 0, the rest 4-6; 4 is
# the homography's minimal sample); same-object pairs had a median of 74 and a low tail of 11-13
# at 0.3x scale + blur + JPEG 35-50. 10 sits between the tails. Neither Phantom-Data nor
# OpenSubject publish a keypoint-inlier number (both verify with embeddings / a VLM).
# pairs.verify.face.max_distance (0.6): face_recognition.compare_faces(tolerance=0.6), euclidean
# distance on dlib's *raw* 128-d descriptors, the value dlib's authors report 99.38% LFW accuracy with.

# the matcher's internals (not recipe settings)
RANSAC_REPROJ_PX = 4.0          # at 512 px; OpenCV's findHomography default is 3 px
RANSAC_MIN_REPROJ_PX = 2.0
SIFT_MAX_FEATURES = 1500        # enough for a 512 px crop; bounds matching cost
# ours, measured: raw dlib descriptors are NOT unit length; their norms were 1.39-1.46 (mean
# 1.42) on carphone frames, astronaut and grace_hopper. Unit vectors are scaled back by this so
# the 0.6 tolerance keeps its meaning (0.6 raw ~ 0.42 between unit vectors). A property of dlib's
# model, not a setting.
DLIB_RAW_NORM = 1.42
OCR_MIN_SIDE = 96               # PP-OCR's detector misses text a few pixels high: smaller crops are upscaled


@dataclass(frozen=True)
class Verdict:
    """One recorded check. ok None = could not decide."""
    check: str            # "geometric" | "face_agreement" | "vlm_identity" | "vlm_context" | "text_match"
    ok: bool | None
    score: float | None
    detail: str = ""

    def __str__(self) -> str:
        state = "unknown" if self.ok is None else ("ok" if self.ok else "fail")
        parts = [self.check, state]
        if self.detail:
            parts.append(self.detail)
        elif self.score is not None:
            parts.append(f"score={self.score:.4g}")
        return ":".join(parts)

    def to_dict(self) -> dict:
        return {"check": self.check, "ok": self.ok, "score": self.score, "detail": self.detail}


# ----------------------------------------------------------------------------- geometric

def _split_rgba(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB(A)/gray uint8 -> (gray uint8, mask uint8 255 where the subject is)."""
    import cv2
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"expected uint8 image, got {a.dtype}")
    if a.ndim == 2:
        return a, np.full(a.shape, 255, np.uint8)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected HxW, HxWx3 or HxWx4 image, got shape {a.shape}")
    gray = cv2.cvtColor(np.ascontiguousarray(a[..., :3]), cv2.COLOR_RGB2GRAY)
    mask = (a[..., 3] > 0).astype(np.uint8) * 255 if a.shape[2] == 4 else np.full(gray.shape, 255, np.uint8)
    return gray, mask


def _fit_side(gray: np.ndarray, mask: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2
    h, w = gray.shape
    s = max_side / max(h, w)
    if s < 1.0:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    return gray, mask


def _stretch(gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Contrast-stretch the subject's 1-99th percentile to 0-255, so a darker copy of the same
    object yields the same keypoints (SIFT's contrast threshold is absolute)."""
    vals = gray[mask > 0]
    if vals.size < 16:
        return gray
    lo, hi = np.percentile(vals, (1, 99))
    if hi - lo < 8:
        return gray
    out = (gray.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(out, 0, 255).astype(np.uint8)


def _rootsift(gray: np.ndarray, mask: np.ndarray, sift) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint xy (N, 2) and RootSIFT descriptors (Arandjelovic & Zisserman 2012) inside mask."""
    import cv2
    m = cv2.erode(mask, np.ones((3, 3), np.uint8)) if mask.min() == 0 else mask
    kps, desc = sift.detectAndCompute(gray, m)
    if desc is None or len(kps) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    desc = desc.astype(np.float32)
    desc /= np.maximum(desc.sum(axis=1, keepdims=True), 1e-7)
    desc = np.sqrt(desc)
    return np.array([k.pt for k in kps], np.float32), desc


def _ratio_matches(d_ref: np.ndarray, d_tgt: np.ndarray, ratio: float) -> list[tuple[int, int]]:
    """Lowe-ratio matches ref -> tgt, one per target keypoint (the closest wins)."""
    import cv2
    if len(d_ref) < 2 or len(d_tgt) < 2:
        return []
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d_ref, d_tgt, k=2)
    best: dict[int, tuple[float, int]] = {}
    for pair in knn:
        if len(pair) < 2:
            continue
        m, n = pair
        if m.distance < ratio * n.distance:
            cur = best.get(m.trainIdx)
            if cur is None or m.distance < cur[0]:
                best[m.trainIdx] = (m.distance, m.queryIdx)
    return [(q, t) for t, (_, q) in best.items()]


def _homography_inliers(p_ref: np.ndarray, p_tgt: np.ndarray, reproj: float) -> int:
    import cv2
    if len(p_ref) < 4:
        return 0
    method = getattr(cv2, "USAC_MAGSAC", cv2.RANSAC)
    H, inl = cv2.findHomography(p_ref.reshape(-1, 1, 2), p_tgt.reshape(-1, 1, 2), method, reproj,
                                maxIters=2000, confidence=0.999)
    if H is None or inl is None:
        return 0
    # a degenerate fit (everything collapsed to a line/point, or a reflection) is no evidence
    det = float(np.linalg.det(H[:2, :2]))
    if not np.isfinite(det) or det <= 1e-4 or det > 1e4:
        return 0
    return int(inl.sum())


def verify_geometric(ref: np.ndarray, tgt: np.ndarray, *, min_inliers: int, ratio: float, max_side: int) -> Verdict:
    """Same object instance? Counts homography inliers of RootSIFT matches (ref and mirrored ref).

    `ref`, `tgt`: RGBA crops (alpha>0 = subject, as subjects/<id>.png) or RGB crops. A planar
    homography is a good local model for product faces and logos; for strongly 3-D subjects it
    still explains the matches of one visible side, which is what the inlier count measures.
    """
    import cv2
    g_ref, m_ref = _fit_side(*_split_rgba(ref), max_side)
    g_tgt, m_tgt = _fit_side(*_split_rgba(tgt), max_side)
    g_ref, g_tgt = _stretch(g_ref, m_ref), _stretch(g_tgt, m_tgt)
    sift = cv2.SIFT_create(nfeatures=SIFT_MAX_FEATURES)
    p_tgt, d_tgt = _rootsift(g_tgt, m_tgt, sift)
    if len(p_tgt) < 4:
        return Verdict("geometric", None, None, f"too few keypoints in target ({len(p_tgt)})")
    # the tolerance scales with the target's size, but never below 2 px (SIFT localisation on small,
    # blurred crops is ~1 px)
    reproj = max(RANSAC_MIN_REPROJ_PX, RANSAC_REPROJ_PX * max(g_tgt.shape) / 512.0)
    best_inl, best_matches, best_flip, n_ref = 0, 0, False, 0
    for flip in (False, True):
        g, m = (cv2.flip(g_ref, 1), cv2.flip(m_ref, 1)) if flip else (g_ref, m_ref)
        p_ref, d_ref = _rootsift(g, m, sift)
        n_ref = max(n_ref, len(p_ref))
        matches = _ratio_matches(d_ref, d_tgt, ratio)
        if len(matches) < 4:
            inl = 0
        else:
            q, t = np.array(matches).T
            inl = _homography_inliers(p_ref[q], p_tgt[t], reproj)
        if inl > best_inl or (inl == best_inl and len(matches) > best_matches and not flip):
            best_inl, best_matches, best_flip = inl, len(matches), flip
    if n_ref < 4:
        return Verdict("geometric", None, None, f"too few keypoints in reference ({n_ref})")
    # no timings in the detail: verdict strings are data and must be identical across engines/runs
    detail = f"inliers={best_inl}" + (",flipped" if best_flip else "") + f",matches={best_matches}"
    return Verdict("geometric", best_inl >= min_inliers, float(best_inl), detail)


# ----------------------------------------------------------------------------- faces

def verify_face_agreement(ref_vec: np.ndarray | None, tgt_vec: np.ndarray | None, *, max_distance: float) -> Verdict:
    """Same person? Distance between dlib 128-d face descriptors, in face_recognition's units.

    Accepts raw dlib descriptors or the unit vectors `backends.face.DlibFaces.embed` returns:
    both are L2-normalised and scaled to dlib's typical raw norm (DLIB_RAW_NORM = 1.42,
    measured), so `max_distance` is face_recognition's tolerance on raw descriptors (0.6)
    whatever the caller stored. For raw inputs the result differs from the plain raw distance
    only by the spread of raw norms (+-3% measured).
    """
    vecs = []
    for v in (ref_vec, tgt_vec):
        if v is None:
            return Verdict("face_agreement", None, None, "no face embedding")
        a = np.asarray(v, np.float64).ravel()
        n = float(np.linalg.norm(a)) if a.size else 0.0
        if a.size == 0 or not np.all(np.isfinite(a)) or n < 1e-9:
            return Verdict("face_agreement", None, None, "invalid face embedding")
        vecs.append(a / n)
    if vecs[0].shape != vecs[1].shape:
        return Verdict("face_agreement", None, None, f"embedding sizes differ ({vecs[0].size} vs {vecs[1].size})")
    dist = DLIB_RAW_NORM * float(np.linalg.norm(vecs[0] - vecs[1]))
    return Verdict("face_agreement", dist <= max_distance, dist, f"dist={dist:.3f}")


# ----------------------------------------------------------------------------- text / logo prior

def _on_white(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, np.uint8)
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        return (a[..., :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(a)


def _ocr_text(ocr, img: np.ndarray, min_side: int = OCR_MIN_SIDE) -> str:
    import cv2
    rgb = _on_white(img)
    h, w = rgb.shape[:2]
    if min(h, w) < min_side:    # PP-OCR's detector misses text a few pixels high
        s = min_side / max(1, min(h, w))
        rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
    boxes = ocr.detect(rgb)
    boxes = sorted((b for b in boxes if b.text), key=lambda b: (round(b.center[1] / 16), b.center[0]))
    return normalise_text(" ".join(b.text for b in boxes))


def normalise_text(text: str) -> str:
    """Lowercase alphanumerics only (NFKC), so OCR spacing/punctuation noise does not count."""
    t = unicodedata.normalize("NFKC", text or "").lower()
    return "".join(ch for ch in t if ch.isalnum())


def text_similarity(a: str, b: str) -> float:
    """difflib ratio of the normalised texts (0 when either is empty)."""
    a, b = normalise_text(a), normalise_text(b)
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def verify_text_match(ref: np.ndarray, tgt: np.ndarray, ocr=None, *, min_ratio: float) -> Verdict:
    """Same printed text/logo on both crops? (OCR prior for products.)

    `ocr`: a `backends.ocr.TextDetector` (default: the embedded rapidocr PP-OCR). ok=None when
    neither crop has readable text; text on one side only is a fail with score 0 (a product
    seen from its unprinted side also lands there: use this check as a prior, not a veto, when
    views differ).
    """
    if ocr is None:
        from ...backends.ocr import get_text_detector
        ocr = get_text_detector("rapidocr")
    a, b = _ocr_text(ocr, ref), _ocr_text(ocr, tgt)
    if not a and not b:
        return Verdict("text_match", None, None, "no text in either crop")
    if not a or not b:
        side = "reference" if a else "target"
        return Verdict("text_match", False, 0.0, f"text only in {side} ({(a or b)[:24]!r})")
    r = text_similarity(a, b)
    return Verdict("text_match", r >= min_ratio, r, f"ratio={r:.2f},ref={a[:24]!r},tgt={b[:24]!r}")


# ----------------------------------------------------------------------------- VLM

VLM_PROMPT = (
    "Image 1 is a reference crop of a subject ({phrase}). Image 2 is a frame from a video.\n"
    "1. same_identity: is the subject in image 2 the very same individual/instance as in image 1 "
    "(same person, same animal, same product with the same design and markings), not merely the same kind "
    "of thing? Ignore pose, lighting, scale and mirroring.\n"
    "2. context_different: is the surrounding context (background, scene, setting) of image 2 clearly "
    "different from that of image 1?\n"
    'Answer with JSON only: {{"same_identity": "yes" or "no", "context_different": "yes" or "no", '
    '"reason": "<one short sentence>"}}'
)
_YES = {"yes", "y", "true", "1", "same", "different"}
_NO = {"no", "n", "false", "0", "not same", "not different"}


def _yes_no(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().strip(".!").lower()
        if v in _YES:
            return True
        if v in _NO:
            return False
    return None


def parse_vlm_answer(text: str | None) -> dict | None:
    """The JSON object in a VLM answer (code fences and prose around it tolerated), or None."""
    if not text:
        return None
    s = re.sub(r"^```[a-zA-Z]*\s*|\s*```$", "", text.strip()).strip()
    for cand in (s, s[s.find("{"): s.rfind("}") + 1] if "{" in s and "}" in s else ""):
        if not cand:
            continue
        try:
            obj = json.loads(cand)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return {str(k).strip().lower().replace(" ", "_"): v for k, v in obj.items()}
    return None


def _rgb(img: np.ndarray, background: int = 255) -> np.ndarray:
    a = np.asarray(img, np.uint8)
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        return (a[..., :3] * alpha + background * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(a)


class VlmVerifier:
    """Identity-consistency + context-diversity check through an OpenAI-compatible VLM endpoint."""

    def __init__(self, client: "JudgeClient", *, long_side: int) -> None:
        self.client = client
        self.long_side = int(long_side)

    def __repr__(self) -> str:
        return f"VlmVerifier({self.client!r}, long_side={self.long_side})"

    def verify(self, ref_crop: np.ndarray, target_frame: np.ndarray, phrase: str) -> list[Verdict]:
        """[vlm_identity, vlm_context]. Endpoint or parse failures give ok=None with a short reason.

        Authentication failures (JudgeAuthError) propagate: asking again cannot succeed, and
        recording thousands of "unknown" verdicts would hide a configuration error.
        """
        from ...backends.judge import JudgeAuthError, image_content, jpeg_data_url

        try:
            urls = [jpeg_data_url(_rgb(ref_crop), self.long_side), jpeg_data_url(_rgb(target_frame), self.long_side)]
        except Exception as e:  # noqa: BLE001 - a bad image is a recorded failure, not a crash
            return self._unknown(f"image encoding failed: {type(e).__name__}")
        prompt = VLM_PROMPT.format(phrase=(phrase or "subject").strip()[:200])
        try:
            answer = self.client.chat(image_content(urls, prompt), temperature=0.0, max_tokens=200)
        except JudgeAuthError:
            raise
        except Exception as e:  # noqa: BLE001 - JudgeError and anything transport-level
            # JudgeClient already scrubs its key from messages; keep only a short reason
            return self._unknown(f"endpoint error: {str(e)[:160]}")
        obj = parse_vlm_answer(answer)
        if obj is None:
            return self._unknown(f"unparseable answer: {answer[:80]!r}")
        reason = str(obj.get("reason", ""))[:160]
        out = []
        for check, key in (("vlm_identity", "same_identity"), ("vlm_context", "context_different")):
            val = _yes_no(obj.get(key))
            if val is None:
                out.append(Verdict(check, None, None, f"no yes/no for {key}: {str(obj.get(key))[:40]!r}"))
            else:
                out.append(Verdict(check, val, 1.0 if val else 0.0, reason))
        return out

    @staticmethod
    def _unknown(why: str) -> list[Verdict]:
        return [Verdict("vlm_identity", None, None, why), Verdict("vlm_context", None, None, why)]


VLM_KEYS = ("enabled", "base_url", "model", "api_key_env", "timeout_s", "max_retries", "long_side")


def vlm_verifier_from_config(cfg: dict | None) -> VlmVerifier | None:
    """A verifier from the recipe's `pairs.verify.vlm` section {enabled, base_url, model,
    api_key_env, timeout_s, max_retries, long_side}; None when the section is null, disabled or
    names no endpoint (the check is then skipped)."""
    if not cfg:
        return None
    v = take(cfg, VLM_KEYS, "pairs.verify.vlm")
    if v["enabled"] is False or not v["base_url"]:
        return None
    if not v["model"]:
        raise ValueError("pairs verify vlm endpoint needs 'model' as well as 'base_url'")
    from ...backends.judge import JudgeClient
    client = JudgeClient(v["base_url"], v["model"], v["api_key_env"], timeout_s=float(v["timeout_s"]),
                         max_retries=int(v["max_retries"]))
    return VlmVerifier(client, long_side=int(v["long_side"]))
