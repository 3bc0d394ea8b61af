"""The embedded captioner: a *structured facts* caption of what s2vforge measures, not a VLM.

No captioning model ships in any package, so this backend does not pretend to be one. It
writes what it measures on the clip's sampled frames (ClipInput.frames) with the embedded
backends the subjects stage uses, and says so (`captioner = "facts"`, model
`s2vforge-facts-<FACTS_RULES_VERSION>`), so that training code can tell these captions apart:

- people: backends/persondet.py; faces: backends/facedet.py plus the human-face check
  (HumanFaceCheck), both loaded exactly as the subjects stage loads them, from the recipe's
  `subjects.detect` section (stages/subjects/detect.load_detectors);
- salient objects: backends/saliency.py, class-agnostic, so only ever "a salient object";
  regions the detectors already boxed as a person or face are not counted again;
- counts: the largest count seen on at least `min_frame_share` of the frames (a person who
  walks out of shot half way through is still "1 person"); where: the box centre in the left /
  centre / right third of the frame, near / far by the box height as a share of the frame's
  (`near_height`), from the middle frame that shows that count;
- camera motion: Farneback flow between consecutive sampled frames (grey, `flow_width` px wide;
  OpenS2V-Eval's Farneback settings with `flow_levels` pyramid levels, since the sampled frames
  are ~0.5 s apart). Per pair the camera's translation is the median flow of the textured
  pixels and its zoom the median radial flow (relative to the centre, after the translation),
  as shares of the frame per second; the clip's value is the median over pairs. Pan left =
  content moving right, tilt up = content moving down, zoom in = content expanding;
- face motion: the largest face's centre, frame to frame, minus where the camera's motion would
  carry that point, in face heights per second: `still` below `face_motion_min`, else `moving`
  (a proxy: it sees a face moving in the scene, not expressions or speech);
- lighting: the clip's `score_luminance` (Rec.709 luma of the curation stage) when measured,
  else the same luma of the sampled frames: dark / dim / bright (`dark_below`, `dim_below`);
- sharpness: only when curation measured `score_blur_cpbd`: blurry / sharp (`blurry_below_cpbd`);
- duration: ClipInput.duration_s.

Every setting is the recipe's `caption.facts` (values and sources in recipes/openhumanvid.yaml);
this module has no defaults of its own. The output is deterministic for the same frames.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..recipe_keys import need, take
from .base import STRUCTURED_FIELDS, Caption, Captioner, ClipInput

FACTS_RULES_VERSION = 1          # bump whenever a rule below changes what a caption says
FACTS_MODEL = f"s2vforge-facts-{FACTS_RULES_VERSION}"
FACTS_KEYS = ("objects", "object_frames", "min_frame_share", "near_height", "flow_width", "flow_levels", "pan_min", "zoom_min",
              "secondary_share", "face_motion_min", "dark_below", "dim_below", "blurry_below_cpbd")
# OpenS2V-Eval's Farneback settings (as stages/scores/motion.py) with the pyramid depth from the recipe
_FARNEBACK = dict(pyr_scale=0.5, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
_THIRDS = (1 / 3, 2 / 3)         # left / centre / right: the box centre's third of the frame width


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


class FactsCaptioner(Captioner):
    """`FactsCaptioner(cfg, detect_cfg)`: cfg is the recipe's `caption` section (as
    pipeline.make_captioner passes it) or its `caption.facts` section; detect_cfg the recipe's
    `subjects.detect` section, the default recipe's when None (`FactsCaptioner.from_recipe(recipe)`
    passes the recipe's own). setup() loads the detectors once."""

    name = "facts"
    model = FACTS_MODEL

    def __init__(self, cfg: dict, detect_cfg: dict | None = None) -> None:
        facts_cfg = cfg["facts"] if isinstance(cfg, dict) and isinstance(cfg.get("facts"), dict) else cfg
        if detect_cfg is None:
            from ...recipes import section
            detect_cfg = section(None, "subjects")["detect"]
        self.cfg = take(facts_cfg, FACTS_KEYS, "caption.facts")
        need(self.cfg["near_height"], "person", "caption.facts.near_height")
        need(self.cfg["near_height"], "face", "caption.facts.near_height")
        from ..subjects.detect import DETECT_KEYS
        # the subjects stage's face / person / human-face / saliency settings; no grounding: no phrases here
        self.detect_cfg = {**take(detect_cfg, DETECT_KEYS, "subjects.detect"), "grounding": None,
                           "objects": "saliency" if self.cfg["objects"] else "none", "objects_require_phrase": False}
        self._ds = None
        self._ds_no_objects = None

    @classmethod
    def from_recipe(cls, recipe: dict) -> FactsCaptioner:
        from ...recipes import section
        return cls(section(recipe, "caption")["facts"], section(recipe, "subjects")["detect"])

    def config(self) -> dict:
        d = self.detect_cfg
        return {"name": self.name, "model": self.model, "facts": dict(self.cfg),
                "detect": {k: d[k] for k in ("face", "face_model_dir", "person", "objects", "saliency_method",
                                             "salient_covered_iou", "human_face")}}

    def setup(self) -> None:
        if self._ds is None:
            import dataclasses

            from ..subjects.detect import load_detectors
            self._ds = load_detectors(self.detect_cfg)
            self._ds_no_objects = dataclasses.replace(self._ds, objects=None)

    @property
    def unavailable(self) -> dict[str, str]:
        return {} if self._ds is None else dict(self._ds.unavailable)

    # ------------------------------------------------------------------ caption

    def caption(self, clip: ClipInput) -> Caption:
        try:
            if not clip.frames:
                return Caption(captioner=self.name, model=self.model, error="no frames sampled from the clip")
            self.setup()
            return self._caption(clip)
        except Exception as exc:          # one clip's trouble is the row's error, never the run's
            return Caption(captioner=self.name, model=self.model, error=f"{type(exc).__name__}: {exc}")

    def measure(self, clip: ClipInput) -> dict[str, Any]:
        """Every fact the caption is written from (also handy for tests and the report)."""
        self.setup()
        frames = [np.ascontiguousarray(f, dtype=np.uint8) for f in clip.frames]
        n_obj = max(1, int(self.cfg["object_frames"]))
        obj_frames = set(np.linspace(0, len(frames) - 1, min(n_obj, len(frames))).round().astype(int).tolist())
        per_frame = [self._detect(f, i in obj_frames) for i, f in enumerate(frames)]
        h, w = frames[0].shape[:2]
        facts: dict[str, Any] = {"size": (w, h), "duration_s": float(clip.duration_s)}
        for cat in ("person", "face", "object"):
            facts[cat] = self._group(per_frame, cat, w, h)
        motion = camera_motion(frames, _times(clip), self.cfg)
        facts["camera"] = motion
        facts["face_motion"] = face_motion(per_frame, motion, (w, h), self.cfg) if facts["face"]["count"] else None
        facts["luminance"] = _luminance(clip, frames)
        cpbd = clip.measured.get("score_blur_cpbd") if clip.measured else None
        facts["cpbd"] = None if cpbd is None or (isinstance(cpbd, float) and math.isnan(cpbd)) else float(cpbd)
        # a detector that did not load: its sentence is left out (never "no person" for "not looked"), a verdict says so
        ds = self._ds
        facts["unavailable"] = [k for k, det in (("person", ds.person), ("face", ds.face), ("human_face", ds.human_face))
                                if det is None and any(u.split(":")[0] == k for u in ds.unavailable)]
        return facts

    def _detect(self, frame: np.ndarray, objects: bool) -> dict[str, list[tuple] | None]:
        """Kept boxes per category on one frame; "object" is None on frames saliency did not run on."""
        ds = self._ds if objects else self._ds_no_objects
        cands = ds.confirm_faces(frame, ds.candidates(frame, []))
        out: dict[str, list[tuple] | None] = {"person": [], "face": [], "object": []}
        for c in cands:
            if not c.get("keep", True) or "covered_by_named_subject" in c["checks"]:
                continue
            out[c["category"]].append(c["box"])
        for k in out:
            out[k].sort()
        if not objects or ds.objects is None:
            out["object"] = None
        return out

    def _group(self, per_frame: list[dict], cat: str, w: int, h: int) -> dict:
        looked = [i for i, d in enumerate(per_frame) if d[cat] is not None]
        per_frame = [per_frame[i] for i in looked]
        counts = [len(d[cat]) for d in per_frame]
        need_frames = self.cfg["min_frame_share"] * len(per_frame)
        count = max([k for k in set(counts) if k > 0 and sum(c >= k for c in counts) >= need_frames], default=0)
        if count == 0:
            return {"count": 0, "where": []}
        with_k = [i for i, c in enumerate(counts) if c == count] or [i for i, c in enumerate(counts) if c >= count]
        mid = with_k[len(with_k) // 2]
        boxes = sorted(per_frame[mid][cat], key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))[:count]
        boxes.sort(key=lambda b: (b[0] + b[2], b[1]))
        near_h = self.cfg["near_height"].get(cat)
        where = []
        for b in boxes:
            cx = (b[0] + b[2]) / 2 / w
            side = "left" if cx < _THIRDS[0] else "right" if cx > _THIRDS[1] else "centre"
            dist = None if near_h is None else ("near" if (b[3] - b[1]) / h >= near_h else "far")
            where.append((side, dist))
        return {"count": count, "where": where, "frame": looked[mid]}

    def _caption(self, clip: ClipInput) -> Caption:
        return write_caption(self.measure(clip), self.cfg, self.name, self.model)


# ---------------------------------------------------------------------- camera and face motion

def _times(clip: ClipInput) -> list[float]:
    n = len(clip.frames)
    if clip.times and len(clip.times) == n:
        return [float(t) for t in clip.times]
    step = clip.duration_s / n if clip.duration_s and n else 1.0
    return [i * step for i in range(n)]


def _pair_motion(a: np.ndarray, b: np.ndarray, cfg: dict) -> tuple[float, float, float]:
    """(tx, ty, s): the camera's translation (shares of the width / height) and zoom (scale
    change) from frame a to frame b (module doc)."""
    import cv2

    from ..scores.motion import flow_gray
    width = int(cfg["flow_width"])
    ga, gb = flow_gray(a, width), flow_gray(b, width)
    h, w = ga.shape
    flow = cv2.calcOpticalFlowFarneback(ga, gb, None, levels=int(cfg["flow_levels"]), **_FARNEBACK)
    # sampled frames are far apart (a pan moves the picture tens of px), more than Farneback's pyramid on a
    # small frame reaches: a second flow starts from the strongest global shift (phase correlation), and
    # each pixel keeps whichever of the two flows matches frame b better there (a still background keeps
    # the first when a large subject moves across it)
    (dx, dy), _ = cv2.phaseCorrelate(ga.astype(np.float64), gb.astype(np.float64), cv2.createHanningWindow((w, h), cv2.CV_64F))
    if math.hypot(dx, dy) >= 1.0:
        init = np.empty((h, w, 2), np.float32)
        init[..., 0], init[..., 1] = dx, dy
        shifted = cv2.calcOpticalFlowFarneback(ga, gb, init, levels=int(cfg["flow_levels"]),
                                               **{**_FARNEBACK, "flags": cv2.OPTFLOW_USE_INITIAL_FLOW})
        better = _warp_error(ga, gb, shifted) < _warp_error(ga, gb, flow)
        flow[better] = shifted[better]
    tex = np.hypot(cv2.Sobel(ga, cv2.CV_32F, 1, 0), cv2.Sobel(ga, cv2.CV_32F, 0, 1))
    m = max(1, round(0.05 * min(h, w)))                  # content enters and leaves at the border
    inner = np.zeros((h, w), bool)
    inner[m:h - m, m:w - m] = True
    sel = inner & (tex > np.median(tex[inner])) if tex[inner].max() > 0 else inner
    if sel.sum() < 16:
        sel = inner
    fx, fy = flow[..., 0][sel].astype(np.float64), flow[..., 1][sel].astype(np.float64)
    tx, ty = float(np.median(fx)), float(np.median(fy))
    ys, xs = np.nonzero(sel)
    rx, ry = xs - (w - 1) / 2, ys - (h - 1) / 2
    r2 = rx * rx + ry * ry
    far = r2 > (0.15 * min(h, w)) ** 2                  # the radial flow near the centre is noise
    s = float(np.median(((fx - tx) * rx + (fy - ty) * ry)[far] / r2[far])) if far.any() else 0.0
    return tx / w, ty / h, s


def _warp_error(ga: np.ndarray, gb: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """|a(p) - b(p + flow(p))|, box-averaged over 7x7 px: how well a flow explains frame b at each pixel."""
    import cv2
    h, w = ga.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(gb, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.blur(cv2.absdiff(ga, warped).astype(np.float32), (7, 7))


def camera_motion(frames: list[np.ndarray], times: list[float], cfg: dict) -> dict:
    """{label, pairs: [(tx, ty, s) per pair, per second], tx, ty, zoom} (module doc); label None
    with a single frame."""
    pairs = []
    for i in range(len(frames) - 1):
        dt = times[i + 1] - times[i]
        dt = dt if dt > 0 else 1.0
        tx, ty, s = _pair_motion(frames[i], frames[i + 1], cfg)
        pairs.append((tx / dt, ty / dt, s / dt, dt))
    if not pairs:
        return {"label": None, "pairs": [], "tx": None, "ty": None, "zoom": None}
    tx, ty, zoom = (float(np.median([p[k] for p in pairs])) for k in range(3))
    return {"label": camera_label(tx, ty, zoom, cfg), "pairs": pairs, "tx": tx, "ty": ty, "zoom": zoom}


def camera_label(tx: float, ty: float, zoom: float, cfg: dict) -> str:
    """static | pan left/right | tilt up/down | zoom in/out, with a second move when it is at
    least `secondary_share` of the first (e.g. "pan left, tilt up")."""
    pan_min, zoom_min = float(cfg["pan_min"]), float(cfg["zoom_min"])
    moves = []
    # a zoom of s moves the frame's edge by s/2 of the frame: compare it with a pan in those units
    if abs(zoom) >= zoom_min:
        moves.append((abs(zoom) / 2, "zoom in" if zoom > 0 else "zoom out"))
    if abs(tx) >= pan_min:
        moves.append((abs(tx), "pan left" if tx > 0 else "pan right"))
    if abs(ty) >= pan_min:
        moves.append((abs(ty), "tilt up" if ty > 0 else "tilt down"))
    if not moves:
        return "static"
    moves.sort(key=lambda m: -m[0])
    kept = [moves[0][1]] + [lab for v, lab in moves[1:] if v >= float(cfg["secondary_share"]) * moves[0][0]]
    return ", ".join(kept[:2])


def face_motion(per_frame: list[dict], motion: dict, size: tuple[int, int], cfg: dict) -> str | None:
    """still | moving: the largest face's movement against the camera's (module doc); None when no
    two consecutive frames both show a face."""
    rates = []
    for i, (tx, ty, s, dt) in enumerate(motion["pairs"]):
        fa, fb = per_frame[i]["face"], per_frame[i + 1]["face"]
        if not fa or not fb:
            continue
        a = max(fa, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        b = min(fb, key=lambda q: abs(q[0] + q[2] - a[0] - a[2]) + abs(q[1] + q[3] - a[1] - a[3]))
        rates.append(_face_shift(a, b, (tx * dt, ty * dt, s * dt), size) / dt)
    if not rates:
        return None
    return "moving" if float(np.median(rates)) >= float(cfg["face_motion_min"]) else "still"


def _face_shift(a, b, cam, size: tuple[int, int]) -> float:
    """|face centre shift - the camera's shift at that point| in face heights (frame pixels)."""
    w, h = size
    tx, ty, s = cam
    ax, ay = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    bx, by = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    px = tx * w + s * (ax - (w - 1) / 2)
    py = ty * h + s * (ay - (h - 1) / 2)
    return math.hypot(bx - ax - px, by - ay - py) / max(a[3] - a[1], 1.0)


# ---------------------------------------------------------------------- lighting

def _luminance(clip: ClipInput, frames: list[np.ndarray]) -> float:
    v = clip.measured.get("score_luminance") if clip.measured else None
    if v is not None and not (isinstance(v, float) and math.isnan(v)):
        return float(v)
    from ..scores.luminance import frame_luminance
    return float(np.mean([frame_luminance(f) for f in frames]))


def lighting_label(luma: float, cfg: dict) -> str:
    return "dark" if luma < cfg["dark_below"] else "dim" if luma < cfg["dim_below"] else "bright"


# ---------------------------------------------------------------------- writing

def _where_text(where: list[tuple], with_dist: bool = True) -> list[str]:
    out = []
    for side, dist in where:
        s = "in the centre" if side == "centre" else f"on the {side}"
        if with_dist and dist:
            s += ", near the camera" if dist == "near" else ", far from the camera"
        out.append(s)
    return out


def _short_where(where: list[tuple]) -> str:
    return ", ".join(f"{side}" + (f" {dist}" if dist else "") for side, dist in where)


_CAMERA_VERB = {"static": "is static", "pan left": "pans left", "pan right": "pans right", "tilt up": "tilts up",
                "tilt down": "tilts down", "zoom in": "zooms in", "zoom out": "zooms out"}
_CAMERA_ING = {"static": "static camera", "pan left": "camera panning left", "pan right": "camera panning right",
               "tilt up": "camera tilting up", "tilt down": "camera tilting down", "zoom in": "camera zooming in",
               "zoom out": "camera zooming out"}


def write_caption(f: dict, cfg: dict, name: str = "facts", model: str = FACTS_MODEL) -> Caption:
    """The Caption of measured facts `f` (FactsCaptioner.measure) under the `caption.facts` settings."""
    people, faces, objects = f["person"], f["face"], f["object"]
    unavailable = set(f.get("unavailable") or [])
    verdicts = [f"facts_unavailable:{k}" for k in sorted(unavailable)]
    short: list[str] = []
    long: list[str] = []
    subjects: list[str] = []

    # people
    if "person" not in unavailable:
        n = people["count"]
        short.append(_plural(n, "person", "people") if n else "no people")
        if n == 1:
            long.append(f"1 person is visible {_where_text(people['where'])[0]}.")
        elif n:
            long.append(f"{n} people are visible: " + "; ".join(_where_text(people["where"])) + ".")
        else:
            long.append("No person is detected.")
        if n:
            subjects.append(f"{_plural(n, 'person', 'people')} ({_short_where(people['where'])})")
    # faces
    if "face" not in unavailable:
        n = faces["count"]
        fm = f.get("face_motion")
        if n:
            short.append(_plural(n, "face", "faces"))
            where = _where_text(faces["where"])
            head = f"1 human face is visible {where[0]}" if n == 1 else f"{n} human faces are visible: " + "; ".join(where)
            tail = "" if fm is None else (
                (", and it stays still" if fm == "still" else ", and it moves") if n == 1
                else ("; the largest stays still" if fm == "still" else "; the largest moves"))
            long.append(head + tail + ".")
            subjects.append(f"{_plural(n, 'face', 'faces')} ({_short_where(faces['where'])})")
        elif people.get("count"):
            long.append("No human face is detected.")
    # salient objects (class-agnostic: never named)
    if objects["count"]:
        n = objects["count"]
        obj = "a salient object" if n == 1 else f"{n} salient objects"
        short.append(obj)
        sides = sorted({side for side, _ in objects["where"]}, key=("left", "centre", "right").index)
        at = " and ".join("in the centre" if s == "centre" else f"on the {s}" for s in sides)
        long.append(f"{obj[0].upper()}{obj[1:]} {'stands' if n == 1 else 'stand'} out {at}.")
        subjects.append(f"{obj} ({', '.join(side for side, _ in objects['where'])})")
    # camera
    cam = f["camera"]["label"]
    if cam is not None:
        parts = cam.split(", ")
        short.append(" and ".join(_CAMERA_ING[p] if i == 0 else _CAMERA_ING[p].replace("camera ", "")
                                  for i, p in enumerate(parts)))
        long.append("The camera " + " and ".join(_CAMERA_VERB[p] for p in parts) + ".")
    # lighting, sharpness
    light = lighting_label(f["luminance"], cfg)
    short.append(light)
    env = f"{light} lighting"
    sharp = None
    if f.get("cpbd") is not None:
        sharp = "blurry" if f["cpbd"] < cfg["blurry_below_cpbd"] else "sharp"
        env += f", {sharp} picture"
        long.append(f"The lighting is {light} and the picture is {sharp}.")
    else:
        long.append(f"The lighting is {light}.")
    dur = f"{f['duration_s']:.1f} s"
    short.append(dur)
    long.append(f"The clip lasts {dur}.")

    structured = {k: None for k in STRUCTURED_FIELDS}
    structured.update({"subjects": "; ".join(subjects) if subjects else "none detected",
                       "face_motion": f.get("face_motion"), "environment": env, "camera": cam})
    tags = (["person"] if people["count"] else []) + (["face"] if faces["count"] else [])
    return Caption(short=", ".join(short), long=" ".join(long), structured=structured, subject_tags=tags,
                   object_tags=[], background_tags=[], face_caption=None, captioner=name, model=model,
                   prompt_id=None, verdicts=verdicts)
