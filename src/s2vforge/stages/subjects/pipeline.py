"""The subjects stage over a curated dataset: kept clips -> subjects.parquet + RGBA crops.

For every kept clip of clips.parquet:

1. phrases from its caption (phrases.py; the fixed "person" and "face" always);
2. one decode of the clip file `clips/<clip_id>.mp4` (fallback: the source video between the
   clip's start_s and end_s, crop and rotation applied) keeping the frames at the recipe's
   fractions of the clip (Phantom-Data: 0.05, 0.5, 0.95) at full size, and frames at
   `face_track.fps` scaled down for the face track;
3. per frame: detectors (detect.py) -> Phantom-Data box rules (boxrules.py) -> for each kept box
   a mask (masks.segment), the RGBA crop with the background removed (alpha = mask), its
   quality (quality.crop_quality);
4. the clip's longest single-identity face segment (facetrack.longest_face_segment).

Every candidate box becomes a row, kept or not, with the verdicts that decided it; a clip that
yields no box (or cannot be read) still gets one row of category "none" saying why.

Resume: each finished clip's rows are a Parquet part plus a JSON marker (written last,
atomically) under DATASET/.work/subjects/, stamped with a hash of the subjects recipe; a rerun
skips clips whose marker carries the same hash, and subjects.parquet is assembled from the
parts sorted by subject_id. Crops are written to a temporary name and renamed.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ...engine.parts import StampedParts, atomic_parquet, config_hash
from ...engine.pool import run_pool

FRAME_FRACTIONS = (0.05, 0.5, 0.95)   # Phantom-Data: frames at 5%, 50% and 95% of the clip

DEFAULT_SUBJECTS: dict = {
    "frames": {"fractions": list(FRAME_FRACTIONS)},
    "phrases": {"backend": "spacy", "endpoint": None},
    "detect": {},                    # detect.DEFAULT_DETECT
    "boxes": {},                     # boxrules.BoxRules defaults
    "masks": {"backend": "auto"},
    "quality": {"brisque": True, "aesthetic": "auto"},
    "face_track": {"enabled": True, "fps": 2.0, "long_side": 640},
}

SUBJECT_SCHEMA = pa.schema([
    ("subject_id", pa.string()),      # <clip_id>-f<frame_idx>-<category>-<8 hex of box+phrase>, or <clip_id>-none
    ("clip_id", pa.string()),
    ("video_id", pa.string()),
    ("group_id", pa.string()),
    ("frame_idx", pa.int64()),        # frame index within the clip (0 = the clip's first frame)
    ("time_s", pa.float64()),         # seconds from the clip's start
    ("phrase", pa.string()),          # caption phrase, "face", "person" or "salient object"
    ("category", pa.string()),        # face | person | animal | object | none
    ("bbox", pa.list_(pa.int32())),   # x0, y0, x1, y1 in clip-frame pixels (exclusive ends)
    ("mask_rle", pa.string()),        # JSON of COCO RLE {"size": [h, w], "counts": str}, full frame
    ("crop_path", pa.string()),       # subjects/<subject_id>.png (RGBA, alpha = mask), kept rows only
    ("det_score", pa.float64()),
    ("backend", pa.string()),         # detector that proposed the box
    ("quality", pa.string()),         # JSON of quality.crop_quality
    ("checks", pa.list_(pa.string())),  # verdicts against this instance; empty iff keep
    ("keep", pa.bool_()),
    ("caption_verdicts", pa.list_(pa.string())),  # why the caption gave no (or fewer) phrases
    ("caption_phrases", pa.list_(pa.string())),   # the phrases looked for in this clip
    ("face_segment", pa.string()),    # JSON of facetrack.longest_face_segment for the clip
])

PARTS_DIR = Path(".work") / "subjects"
CROPS_DIR = "subjects"


class ClipUnreadable(Exception):
    pass


def subjects_config(recipe: dict) -> dict:
    """The recipe's `subjects` section over DEFAULT_SUBJECTS (one level of merge per sub-section)."""
    sub = dict(recipe.get("subjects") or {})
    cfg = {}
    for key, default in DEFAULT_SUBJECTS.items():
        val = sub.pop(key, None)
        cfg[key] = {**default, **val} if isinstance(default, dict) and isinstance(val, dict) else (
            default if val is None else val)
    cfg.update(sub)
    return cfg


def subject_id_for(clip_id: str, frame_idx: int, category: str, box, phrase: str) -> str:
    key = ",".join(str(int(v)) for v in box) + "|" + phrase
    return f"{clip_id}-f{frame_idx:05d}-{category}-{hashlib.blake2b(key.encode(), digest_size=4).hexdigest()}"


# ------------------------------------------------------------------ frames

@dataclass
class SampledFrames:
    frames: list[tuple[int, float, np.ndarray]]        # (frame_idx, time_s, rgb) at the fractions
    track_frames: list[np.ndarray] = field(default_factory=list)
    track_times: list[float] = field(default_factory=list)
    source: str = "clip"                                # clip | source


def _targets(n: int, fractions) -> list[int]:
    return sorted({min(n - 1, max(0, int(round(f * (n - 1))))) for f in fractions})


def sample_frames(path, fractions, n_expected: int, *, start_s: float = 0.0, end_s: float | None = None,
                  crop=None, rotation: int = 0, track_fps: float = 0.0, track_long_side: int = 640) -> SampledFrames:
    """One forward decode of `path` between start_s and end_s: the frames at the fractions
    (full size, crop applied) and face-track frames every 1/track_fps s (scaled down)."""
    import av
    import cv2
    from ...media.decode import fit_size, frame_to_rgb, open_video

    targets = set(_targets(max(1, n_expected), fractions))
    last_target = max(targets)

    def full_rgb(frame) -> np.ndarray:
        rgb = frame_to_rgb(frame, None, rotation)
        if crop is not None:
            x0, y0, x1, y1 = crop
            rgb = rgb[y0:y1, x0:x1]
        return np.ascontiguousarray(rgb)

    out: list[tuple[int, float, np.ndarray]] = []
    track_frames, track_times = [], []
    next_track = 0.0
    last = None
    k = -1
    try:
        container, stream = open_video(path)
    except (av.FFmpegError, OSError, IndexError) as e:
        raise ClipUnreadable(f"cannot open: {getattr(e, 'strerror', None) or e}") from None
    try:
        with container:
            if start_s > 0:
                tb = float(stream.time_base) if stream.time_base else None
                container.seek(int(start_s / tb) if tb else int(start_s * av.time_base), stream=stream if tb else None,
                               backward=True, any_frame=False)
            for frame in container.decode(stream):
                t_abs = float(frame.time) if frame.time is not None else start_s + (k + 1) / 25.0
                if t_abs < start_s - 1e-6:
                    continue
                if end_s is not None and t_abs >= end_s - 1e-6:
                    break
                k += 1
                t = t_abs - start_s
                last = (k, t, frame)
                if k in targets:
                    out.append((k, t, full_rgb(frame)))
                if track_fps > 0 and t >= next_track - 1e-6:
                    if crop is None:     # swscale scales straight to the small size
                        dw, dh = (frame.height, frame.width) if rotation in (90, 270) else (frame.width, frame.height)
                        small = frame_to_rgb(frame, fit_size(dw, dh, track_long_side), rotation)
                    else:
                        small = full_rgb(frame)
                    sc = min(1.0, track_long_side / max(small.shape[:2]))
                    if sc < 1:
                        small = cv2.resize(small, (max(2, round(small.shape[1] * sc)), max(2, round(small.shape[0] * sc))),
                                           interpolation=cv2.INTER_AREA)
                    track_frames.append(small)
                    track_times.append(t)
                    next_track = (math.floor(t * track_fps + 1e-6) + 1) / track_fps
                elif track_fps <= 0 and k >= last_target:
                    break
    except av.FFmpegError as e:
        if not out:
            raise ClipUnreadable(f"decoding failed: {getattr(e, 'strerror', None) or e}") from None
    if last is None:
        raise ClipUnreadable("no decodable frames")
    # the file holds fewer frames than the table says: a missing late target takes the last frame
    got = {i for i, _, _ in out}
    if len(got) < len(targets) and last[0] not in got and any(i > last[0] for i in targets - got):
        out.append((last[0], last[1], full_rgb(last[2])))
    out.sort(key=lambda x: x[0])
    return SampledFrames(out, track_frames, track_times)


def clip_frames(dataset: Path, clip: dict, video: dict | None, cfg: dict) -> SampledFrames:
    """Frames of one clip from its clip file, else from the source video (see module doc)."""
    fractions = cfg["frames"]["fractions"]
    track = cfg["face_track"]
    fps = float(track.get("fps") or 0.0) if track.get("enabled", True) else 0.0
    n_expected = int(clip["end_frame"] - clip["start_frame"])
    rel = clip.get("path") or f"clips/{clip['clip_id']}.mp4"
    path = dataset / rel
    errors = []
    if path.is_file():
        try:
            return sample_frames(path, fractions, n_expected, track_fps=fps,
                                 track_long_side=int(track.get("long_side", 640)))
        except ClipUnreadable as e:
            errors.append(f"clip file: {e}")
    else:
        errors.append(f"clip file {rel} missing")
    src = _source_path(video)
    if src is not None and os.path.exists(src):
        crop = clip.get("crop")
        full = video.get("width") and video.get("height") and list(crop or []) == [0, 0, video["width"], video["height"]]
        try:
            s = sample_frames(src, fractions, n_expected, start_s=float(clip["start_s"]), end_s=float(clip["end_s"]),
                              crop=None if (crop is None or full) else tuple(int(v) for v in crop),
                              rotation=int(video.get("rotation") or 0), track_fps=fps,
                              track_long_side=int(track.get("long_side", 640)))
            s.source = "source"
            return s
        except ClipUnreadable as e:
            errors.append(f"source video: {e}")
    else:
        errors.append("source video missing")
    raise ClipUnreadable("; ".join(errors))


def _source_path(video: dict | None):
    if not video:
        return None
    raw = video.get("path_raw")
    if raw:
        return os.fsdecode(raw)
    return video.get("path")


# ------------------------------------------------------------------ one clip

_WORKER: dict = {}


def _worker_state(cfg: dict) -> dict:
    """Detectors and clients built once per process per config."""
    key = config_hash(cfg)
    if _WORKER.get("key") != key:
        from .detect import load_detectors
        _WORKER.clear()
        _WORKER["key"] = key
        _WORKER["detectors"] = load_detectors(cfg.get("detect"))
        _WORKER["client"] = _phrase_client(cfg["phrases"])
        _WORKER["embedder"] = None
        _WORKER["unavailable"] = dict(_WORKER["detectors"].unavailable)
    return _WORKER


def _phrase_client(pcfg: dict):
    if pcfg.get("backend") != "endpoint":
        return None
    ep = pcfg.get("endpoint") or {}
    if not ep.get("base_url") or not ep.get("model"):
        raise ValueError("subjects.phrases.backend=endpoint needs phrases.endpoint.base_url and .model")
    from ...backends.judge import JudgeClient
    return JudgeClient(ep["base_url"], ep["model"], ep.get("api_key_env", "OPENAI_API_KEY"),
                       timeout_s=float(ep.get("timeout_s", 60)), max_retries=int(ep.get("max_retries", 3)))


class _FaceAdapter:
    """Detections as backends.face.Face, for facetrack."""

    def __init__(self, det) -> None:
        self.det = det

    def detect(self, rgb):
        from ...backends.face import Face
        return [Face(bbox=np.asarray(d.box, np.float32), score=d.score, kps=None) for d in self.det.detect(rgb)]


def _face_segment(state: dict, frames: SampledFrames, cfg: dict) -> dict | None:
    if not cfg["face_track"].get("enabled", True) or not frames.track_frames:
        return None
    from ...backends.errors import BackendUnavailable
    from .facetrack import longest_face_segment
    ds = state["detectors"]
    try:
        if state.get("embedder") is None:
            from ...backends.face import DlibFaces
            state["embedder"] = DlibFaces()
        det = _FaceAdapter(ds.face) if ds.face is not None else state["embedder"]
        return longest_face_segment(frames.track_frames, frames.track_times, detector=det, embedder=state["embedder"])
    except BackendUnavailable as e:
        state["unavailable"]["face_track"] = str(e)
        return None


def _int_box(box, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x1, y1 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    return x0, y0, x1, y1


def write_png_atomic(path: Path, rgba: np.ndarray) -> None:
    import cv2
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise ValueError("PNG encoding failed")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def process_clip(clip: dict, video: dict | None, cfg: dict, dataset: Path, state: dict | None = None) -> tuple[list[dict], dict]:
    """Rows of one clip (see module doc) and a small meta dict. Never raises for bad media."""
    from ...backends.errors import BackendUnavailable
    from .boxrules import BoxRules, apply_box_rules
    from .phrases import PhraseResult, extract_phrases, fixed_phrases
    state = state or _worker_state(cfg)
    t0 = time.perf_counter()
    base = {"clip_id": clip["clip_id"], "video_id": clip.get("video_id"),
            "group_id": clip.get("group_id") or (video or {}).get("group_id") or clip.get("video_id")}
    try:
        pres = extract_phrases(clip.get("caption"), cfg["phrases"].get("backend", "spacy"), state.get("client"))
    except BackendUnavailable as e:     # no spaCy model: the fixed categories are still looked for
        state["unavailable"]["phrases"] = str(e)
        pres = PhraseResult(fixed_phrases(), ["phrases_unavailable"], cfg["phrases"].get("backend", "spacy"))
    base["caption_verdicts"] = list(pres.verdicts)
    base["caption_phrases"] = [p.text for p in pres.subjects]
    try:
        frames = clip_frames(dataset, clip, video, cfg)
    except ClipUnreadable as e:
        row = _none_row(base, [f"clip_unreadable: {e}"] + pres.verdicts)
        return [row], {"clip_id": clip["clip_id"], "status": "error", "error": str(e), "n_rows": 1, "n_kept": 0,
                       "seconds": time.perf_counter() - t0}
    segment = _face_segment(state, frames, cfg)
    base["face_segment"] = json.dumps(segment, sort_keys=True) if segment is not None else None
    rules = BoxRules.from_recipe(cfg.get("boxes"))
    rows: list[dict] = []
    crops_dir = dataset / CROPS_DIR
    crops_dir.mkdir(parents=True, exist_ok=True)
    timings = {"detect": 0.0, "mask": 0.0, "quality": 0.0}
    for frame_idx, t, rgb in frames.frames:
        h, w = rgb.shape[:2]
        td = time.perf_counter()
        cands = state["detectors"].candidates(rgb, pres.phrases)
        cands = apply_box_rules(cands, w, h, rules)
        timings["detect"] += time.perf_counter() - td
        for c in cands:
            box = _int_box(c["box"], w, h)
            sid = subject_id_for(clip["clip_id"], frame_idx, c["category"], box, c["phrase"])
            row = {**base, "subject_id": sid, "frame_idx": int(frame_idx), "time_s": round(float(t), 6),
                   "phrase": c["phrase"], "category": c["category"], "bbox": list(box), "mask_rle": None,
                   "crop_path": None, "det_score": round(float(c["score"]), 6), "backend": c["backend"],
                   "quality": None, "checks": list(c["checks"]), "keep": bool(c["keep"])}
            if row["keep"]:
                _cut_out(row, rgb, box, c["category"], cfg, crops_dir, timings)
            rows.append(row)
    if not rows:
        rows.append(_none_row(base, ["no_subjects_detected"] + pres.verdicts))
    # one subject_id per row even if two detectors proposed the very same box and phrase
    seen: dict[str, int] = {}
    for r in rows:
        n = seen.get(r["subject_id"], 0)
        seen[r["subject_id"]] = n + 1
        if n:
            r["subject_id"] = f"{r['subject_id']}-{n}"
            r["keep"] = False
            r["checks"] = list(r["checks"]) + ["duplicate_box"]
    meta = {"clip_id": clip["clip_id"], "status": "ok", "error": None, "frames_from": frames.source,
            "n_rows": len(rows), "n_kept": sum(1 for r in rows if r["keep"]), "face_segment": segment,
            "seconds": time.perf_counter() - t0, "timings": timings}
    return rows, meta


def _cut_out(row: dict, rgb: np.ndarray, box, category: str, cfg: dict, crops_dir: Path, timings: dict) -> None:
    from .masks import segment
    from .quality import crop_quality
    from .rle import mask_to_rle
    tm = time.perf_counter()
    mask = np.asarray(segment(rgb, box, category, backend=cfg["masks"].get("backend", "auto")), dtype=bool)
    timings["mask"] += time.perf_counter() - tm
    x0, y0, x1, y1 = box
    sub = mask[y0:y1, x0:x1]
    if not sub.any():
        row["keep"] = False
        row["checks"] = list(row["checks"]) + ["empty_mask"]
        return
    row["mask_rle"] = json.dumps(mask_to_rle(mask), sort_keys=True)
    rgba = np.dstack([rgb[y0:y1, x0:x1], (sub * 255).astype(np.uint8)])
    tq = time.perf_counter()
    qcfg = cfg.get("quality") or {}
    q = crop_quality(rgba, box, rgb.shape, aesthetic=qcfg.get("aesthetic", "auto"), brisque=bool(qcfg.get("brisque", True)))
    timings["quality"] += time.perf_counter() - tq
    row["quality"] = json.dumps(q, sort_keys=True, default=float)
    write_png_atomic(crops_dir / f"{row['subject_id']}.png", rgba)
    row["crop_path"] = f"{CROPS_DIR}/{row['subject_id']}.png"


def _none_row(base: dict, checks: list[str]) -> dict:
    return {**base, "subject_id": f"{base['clip_id']}-none", "frame_idx": None, "time_s": None, "phrase": None,
            "category": "none", "bbox": None, "mask_rle": None, "crop_path": None, "det_score": None, "backend": None,
            "quality": None, "checks": checks, "keep": False, "face_segment": base.get("face_segment")}


# ------------------------------------------------------------------ parts (resume)

class SubjectParts(StampedParts):
    """Per-clip subject rows + stamped markers under DATASET/.work/subjects/ (engine.parts.StampedParts)."""

    def __init__(self, dataset: Path, stamp: str) -> None:
        super().__init__(Path(dataset) / PARTS_DIR, SUBJECT_SCHEMA, stamp)

    def finalize(self, clip_ids: list[str], out: Path) -> pa.Table:
        table = self.read_table(clip_ids).sort_by("subject_id")
        atomic_parquet(table, out)
        return table


def _work(clip: dict, video: dict | None, cfg: dict, dataset: str, stamp: str) -> dict:
    ds = Path(dataset)
    try:
        rows, meta = process_clip(clip, video, cfg, ds)
    except Exception as e:   # a stage bug must not take the run down; the row says what happened
        base = {"clip_id": clip["clip_id"], "video_id": clip.get("video_id"), "group_id": clip.get("group_id"),
                "caption_verdicts": [], "caption_phrases": [], "face_segment": None}
        rows = [_none_row(base, [f"internal_error: {type(e).__name__}: {e}"])]
        meta = {"clip_id": clip["clip_id"], "status": "error", "error": f"{type(e).__name__}: {e}", "n_rows": 1,
                "n_kept": 0, "seconds": 0.0}
    meta["unavailable"] = dict(_WORKER.get("unavailable") or {})
    meta["detectors"] = _WORKER["detectors"].names() if _WORKER.get("detectors") else {}
    SubjectParts(ds, stamp).write(clip["clip_id"], rows, meta)
    return meta


def _work_on_clip(pair: tuple[dict, dict | None], cfg: dict, dataset: str, stamp: str) -> dict:
    clip, video = pair
    return _work(clip, video, cfg, dataset, stamp)


def run_subjects(dataset: Path, recipe: dict, workers: int = 1,
                 progress: Callable[[dict], None] | None = None, engine=None) -> dict:
    """Find subject instances in every kept clip of DATASET (see module doc); returns a summary.

    Writes DATASET/subjects.parquet, DATASET/subjects/<subject_id>.png and
    DATASET/subjects_run.json. Reruns resume: finished clips are not processed again."""
    dataset = Path(dataset)
    t0 = time.perf_counter()
    cfg = subjects_config(recipe)
    stamp = config_hash(cfg)
    clips_path = dataset / "clips.parquet"
    if not clips_path.exists():
        raise FileNotFoundError(f"{clips_path} not found: run `s2vforge curate` on the inputs first")
    clips = [c for c in pq.read_table(clips_path).to_pylist() if c.get("keep")]
    videos = {}
    if (dataset / "videos.parquet").exists():
        videos = {v["video_id"]: v for v in pq.read_table(dataset / "videos.parquet").to_pylist()}
    store = SubjectParts(dataset, stamp)
    store.sweep_tmp()
    crops = dataset / CROPS_DIR
    if crops.is_dir():
        for p in crops.glob(".*.tmp"):
            p.unlink(missing_ok=True)
    summary: dict = {"dataset": str(dataset), "n_clips": len(clips), "n_skipped_done": 0, "n_clip_errors": 0,
                     "n_rows": 0, "n_subjects": 0, "n_kept": 0, "kept_by_category": {}, "check_counts": {},
                     "unavailable": {}, "detectors": {}, "errors": [], "wall_s": 0.0}
    todo = []
    for c in clips:
        if store.is_done(c["clip_id"]):
            summary["n_skipped_done"] += 1
            if progress:
                progress(store.meta(c["clip_id"]))
        else:
            todo.append(c)
    def on_crash(pair: tuple, e: BaseException) -> dict:   # the worker died (OOM kill, a segfault in native code)
        c = pair[0]
        base = {"clip_id": c["clip_id"], "video_id": c.get("video_id"), "group_id": c.get("group_id"),
                "caption_verdicts": [], "caption_phrases": [], "face_segment": None}
        meta = {"clip_id": c["clip_id"], "status": "error", "n_rows": 1, "n_kept": 0,
                "error": f"worker crashed: {type(e).__name__}: {e}"}
        store.write(c["clip_id"], [_none_row(base, [f"worker_crashed: {type(e).__name__}"])], meta)
        return meta

    run_pool(_work_on_clip, [(c, videos.get(c.get("video_id"))) for c in todo], (cfg, str(dataset), stamp), workers,
             on_done=lambda pair, meta: progress(meta) if progress else None, on_crash=on_crash,
             engine=engine, stage="subjects")
    table = store.finalize([c["clip_id"] for c in clips], dataset / "subjects.parquet")
    for c in clips:
        m = store.meta(c["clip_id"])
        summary["unavailable"].update(m.get("unavailable") or {})
        summary["detectors"] = m.get("detectors") or summary["detectors"]
        if m.get("status") == "error":
            summary["n_clip_errors"] += 1
            summary["errors"].append({"clip_id": c["clip_id"], "error": m.get("error")})
    rows = table.select(["category", "keep", "checks"]).to_pylist()
    summary["n_rows"] = len(rows)
    summary["n_subjects"] = sum(1 for r in rows if r["category"] != "none")
    summary["n_kept"] = sum(1 for r in rows if r["keep"])
    for r in rows:
        if r["keep"]:
            summary["kept_by_category"][r["category"]] = summary["kept_by_category"].get(r["category"], 0) + 1
        for chk in r["checks"] or []:
            key = chk.split(":")[0].split("<")[0].split(">")[0]
            summary["check_counts"][key] = summary["check_counts"].get(key, 0) + 1
    summary["wall_s"] = round(time.perf_counter() - t0, 3)
    out = dataset / "subjects_run.json"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps({"subjects": cfg, "summary": summary}, indent=2, default=str))
    os.replace(tmp, out)
    return summary
