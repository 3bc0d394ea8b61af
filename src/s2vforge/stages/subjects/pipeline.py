"""The subjects stage over a curated dataset: kept clips -> subjects.parquet + RGBA crops.

For every kept clip of clips.parquet:

1. phrases from its caption (phrases.py; the fixed "person" and "face" always);
2. one decode of the clip file `clips/<clip_id>.mp4` (fallback: the source video between the
   clip's start_s and end_s, crop and rotation applied) keeping the frames at the recipe's
   fractions of the clip (Phantom-Data: 0.05, 0.5, 0.95) at full size, and frames at
   `face_track.fps` scaled down for the face track;
3. per frame: detectors (detect.py) -> Phantom-Data box rules (boxrules.py) -> the human-face
   check of the kept face boxes (detect.DetectorSet.confirm_faces: no cat faces) -> for each kept box
   a mask (masks.segment), the RGBA crop with the background removed (alpha = mask), its
   quality (quality.crop_quality);
4. the clip's longest single-identity face segment (facetrack.longest_face_segment).

Every candidate box becomes a row, kept or not, with the verdicts that decided it; a clip that
yields no box (or cannot be read) still gets one row of category "none" saying why.

SubjectsStage is this stage under the stage contract (engine/stage.py): one kept clip per item,
its detectors loaded once per worker in setup(), its rows and RGBA crops returned to the driver,
which journals them (stamped with the subjects config) and assembles subjects.parquet.
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
import pyarrow.parquet as pq

from ...engine.stage import Context, Output, Resources, Stage, StageRun
from ...reasons import verdict_code
from ...schema import SUBJECT_SCHEMA, TableSpec

CROPS_DIR = "subjects"
class ClipUnreadable(Exception):
    pass


def subjects_config(recipe: dict | None) -> dict:
    """The recipe's `subjects` section over the default recipe's (recipes.section)."""
    from ...recipes import section
    return section(recipe, "subjects")


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
    fps = float(track["fps"] or 0.0) if track["enabled"] else 0.0
    n_expected = int(clip["end_frame"] - clip["start_frame"])
    rel = clip.get("path") or f"clips/{clip['clip_id']}.mp4"
    path = dataset / rel
    errors = []
    if path.is_file():
        try:
            return sample_frames(path, fractions, n_expected, track_fps=fps,
                                 track_long_side=int(track["long_side"]))
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
                              track_long_side=int(track["long_side"]))
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

def load_state(cfg: dict) -> dict:
    """Detectors and clients of one worker (SubjectsStage.setup)."""
    from .detect import load_detectors
    detectors = load_detectors(cfg["detect"])
    return {"detectors": detectors, "client": _phrase_client(cfg["phrases"]), "embedder": None,
            "unavailable": dict(detectors.unavailable)}


def _phrase_client(pcfg: dict):
    if pcfg["backend"] != "endpoint":
        return None
    ep = pcfg["endpoint"] or {}
    if not ep.get("base_url") or not ep.get("model"):
        raise ValueError("subjects.phrases.backend=endpoint needs phrases.endpoint.base_url and .model")
    from ...backends.judge import JudgeClient
    return JudgeClient(ep["base_url"], ep["model"], ep["api_key_env"], timeout_s=float(ep["timeout_s"]),
                       max_retries=int(ep["max_retries"]))


class _FaceAdapter:
    """Detections as backends.face.Face, for facetrack; faces the human-face check rejects
    (DetectorSet.is_human_face: animal faces) are left out, so a cat is no face segment."""

    def __init__(self, det, detectors, min_face_px: int) -> None:
        self.det, self.detectors, self.min_face_px = det, detectors, min_face_px

    def detect(self, rgb):
        from ...backends.face import Face
        out = []
        for d in self.det.detect(rgb):
            small = min(d.box[2] - d.box[0], d.box[3] - d.box[1]) < self.min_face_px   # facetrack drops it anyway
            if self.detectors is not None and not small and not self.detectors.is_human_face(rgb, d.box):
                continue
            out.append(Face(bbox=np.asarray(d.box, np.float32), score=d.score, kps=None))
        return out


def _face_segment(state: dict, frames: SampledFrames, cfg: dict) -> dict | None:
    if not cfg["face_track"]["enabled"] or not frames.track_frames:
        return None
    from ...backends.errors import BackendUnavailable
    from .facetrack import longest_face_segment
    ds = state["detectors"]
    try:
        if state.get("embedder") is None:
            from ...backends.face import DlibFaces
            state["embedder"] = DlibFaces()
        det = _FaceAdapter(ds.face, ds, int(cfg["face_track"]["min_face_px"])) if ds.face is not None \
            else state["embedder"]
        return longest_face_segment(frames.track_frames, frames.track_times, detector=det, embedder=state["embedder"],
                                    cfg=cfg["face_track"])
    except BackendUnavailable as e:
        state["unavailable"]["face_track"] = str(e)
        return None


def _int_box(box, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x1, y1 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    return x0, y0, x1, y1


def png_bytes(rgba: np.ndarray) -> bytes:
    import cv2
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def clip_phrases(clip: dict, caption_row: dict | None, pcfg: dict, client=None):
    """What to look for in a clip: the phrases of its caption. The caption is the manifest's or
    the caption stage's (captions.parquet), whichever `subjects.phrases.caption_source` puts first;
    a generated caption's word tags are used as they are (OpenS2V-Nexus grounds its word_tags)."""
    from .phrases import PhraseResult, extract_phrases, fixed_phrases, phrases_from_tags
    source = pcfg["caption_source"]
    if source not in ("manifest", "captions"):
        raise ValueError(f"subjects.phrases.caption_source must be manifest or captions, got {source!r}")
    manifest = clip.get("caption")
    generated = caption_row if caption_row and (caption_row.get("long") or caption_row.get("short")) else None
    use_generated = generated is not None and (source == "captions" or not manifest)
    if not use_generated:
        return extract_phrases(manifest, pcfg["backend"], client)
    tags = {"subject": list(generated.get("subject_tags") or []), "object": list(generated.get("object_tags") or [])}
    where = f"caption_source: captions ({generated.get('captioner')})"
    if tags["subject"] or tags["object"]:
        fixed = fixed_phrases()
        named = [p for p in phrases_from_tags(tags) if p.text not in {f.text for f in fixed}]
        return PhraseResult(fixed + named, [where], "captions")
    pres = extract_phrases(generated.get("long") or generated.get("short"), pcfg["backend"], client)
    return PhraseResult(pres.phrases, [where, *pres.verdicts], pres.backend)


def process_clip(clip: dict, video: dict | None, cfg: dict, dataset: Path,
                 state: dict | None = None, caption_row: dict | None = None) -> tuple[list[dict], dict, dict[str, bytes]]:
    """Rows of one clip (see module doc), a small meta dict and the crops (path -> PNG bytes).
    Never raises for bad media."""
    from ...backends.errors import BackendUnavailable
    from .boxrules import BoxRules, apply_box_rules
    from .phrases import PhraseResult, fixed_phrases
    state = state or load_state(cfg)
    t0 = time.perf_counter()
    files: dict[str, bytes] = {}
    base = {"clip_id": clip["clip_id"], "video_id": clip.get("video_id"),
            "group_id": clip.get("group_id") or (video or {}).get("group_id") or clip.get("video_id")}
    try:
        pres = clip_phrases(clip, caption_row, cfg["phrases"], state.get("client"))
    except BackendUnavailable as e:     # no spaCy model: the fixed categories are still looked for
        state["unavailable"]["phrases"] = str(e)
        pres = PhraseResult(fixed_phrases(), ["phrases_unavailable"], cfg["phrases"]["backend"])
    base["caption_verdicts"] = list(pres.verdicts)
    base["caption_phrases"] = [p.text for p in pres.subjects]
    try:
        frames = clip_frames(dataset, clip, video, cfg)
    except ClipUnreadable as e:
        row = _none_row(base, [f"clip_unreadable: {e}"] + pres.verdicts)
        return [row], {"clip_id": clip["clip_id"], "status": "error", "error": str(e), "n_rows": 1, "n_kept": 0,
                       "seconds": time.perf_counter() - t0}, files
    segment = _face_segment(state, frames, cfg)
    base["face_segment"] = json.dumps(segment, sort_keys=True) if segment is not None else None
    rules = BoxRules.from_recipe(cfg["boxes"])
    rows: list[dict] = []
    timings = {"detect": 0.0, "mask": 0.0, "quality": 0.0}
    for frame_idx, t, rgb in frames.frames:
        h, w = rgb.shape[:2]
        td = time.perf_counter()
        cands = state["detectors"].candidates(rgb, pres.phrases)
        cands = apply_box_rules(cands, w, h, rules)
        cands = state["detectors"].confirm_faces(rgb, cands)     # animal faces out (detect.py)
        timings["detect"] += time.perf_counter() - td
        for c in cands:
            box = _int_box(c["box"], w, h)
            sid = subject_id_for(clip["clip_id"], frame_idx, c["category"], box, c["phrase"])
            row = {**base, "subject_id": sid, "frame_idx": int(frame_idx), "time_s": round(float(t), 6),
                   "phrase": c["phrase"], "category": c["category"], "bbox": list(box), "mask_rle": None,
                   "crop_path": None, "det_score": round(float(c["score"]), 6), "backend": c["backend"],
                   "quality": None, "checks": list(c["checks"]), "keep": bool(c["keep"])}
            if row["keep"]:
                _cut_out(row, rgb, box, c["category"], cfg, files, timings)
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
    # a crop renamed by the dedup above is stored under its row's final id
    crops = {r["crop_path"]: files[r["crop_path"]] for r in rows if r.get("keep") and r.get("crop_path") in files}
    return rows, meta, crops


def _cut_out(row: dict, rgb: np.ndarray, box, category: str, cfg: dict, files: dict[str, bytes], timings: dict) -> None:
    from .masks import segment
    from .quality import crop_quality
    from .rle import mask_to_rle
    tm = time.perf_counter()
    mask = np.asarray(segment(rgb, box, category, cfg["masks"]), dtype=bool)
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
    q = crop_quality(rgba, box, rgb.shape, cfg["quality"])
    timings["quality"] += time.perf_counter() - tq
    row["quality"] = json.dumps(q, sort_keys=True, default=float)
    row["crop_path"] = f"{CROPS_DIR}/{row['subject_id']}.png"
    files[row["crop_path"]] = png_bytes(rgba)


def _none_row(base: dict, checks: list[str]) -> dict:
    return {**base, "subject_id": f"{base['clip_id']}-none", "frame_idx": None, "time_s": None, "phrase": None,
            "category": "none", "bbox": None, "mask_rle": None, "crop_path": None, "det_score": None, "backend": None,
            "quality": None, "checks": checks, "keep": False, "face_segment": base.get("face_segment")}


# ------------------------------------------------------------------ the stage

class SubjectsStage(Stage):
    """Items: {"clip": a kept clips.parquet row, "video": its videos.parquet row or None}."""
    name = "subjects"
    tables = {"subjects": TableSpec(SUBJECT_SCHEMA, "subject_id")}
    published = ("subjects",)
    file_dirs = (CROPS_DIR,)
    resources = Resources(num_cpus=1, actors="auto")

    def __init__(self, recipe: dict | None) -> None:
        self.cfg = subjects_config(recipe)
        _phrase_client(self.cfg["phrases"])      # a bad endpoint setting is a usage error now, not per clip
        self.state: dict | None = None

    def config(self) -> dict:
        return self.cfg

    def key(self, item: dict) -> str:
        return item["clip"]["clip_id"]

    def setup(self) -> None:
        self.state = load_state(self.cfg)

    def teardown(self) -> None:
        self.state = None

    def process(self, item: dict, ctx: Context) -> Output:
        if self.state is None:
            self.setup()
        rows, meta, crops = process_clip(item["clip"], item.get("video"), self.cfg, ctx.dataset, self.state,
                                         caption_row=item.get("caption"))
        meta["unavailable"] = dict(self.state["unavailable"])
        meta["detectors"] = self.state["detectors"].names()
        return Output(rows={"subjects": rows}, files=crops, meta=meta)

    def error_output(self, item: dict, message: str) -> Output:
        c = item["clip"]
        base = {"clip_id": c["clip_id"], "video_id": c.get("video_id"), "group_id": c.get("group_id"),
                "caption_verdicts": [], "caption_phrases": [], "face_segment": None}
        meta = {"clip_id": c["clip_id"], "status": "error", "error": message, "n_rows": 1, "n_kept": 0}
        return Output(rows={"subjects": [_none_row(base, [f"error: {message}"])]}, meta=meta)

    def summarize(self, run: StageRun) -> dict:
        rows = run.tables["subjects"].select(["category", "keep", "checks"]).to_pylist()
        kept_by: dict[str, int] = {}
        checks: dict[str, int] = {}
        for r in rows:
            if r["keep"]:
                kept_by[r["category"]] = kept_by.get(r["category"], 0) + 1
            for chk in r["checks"] or []:
                k = verdict_code(chk)
                checks[k] = checks.get(k, 0) + 1
        detectors = next((m.get("detectors") for m in run.metas.values() if m.get("detectors")), {})
        return {"n_clips": len(run.keys), "n_rows": len(rows),
                "n_subjects": sum(1 for r in rows if r["category"] != "none"),
                "n_kept": sum(1 for r in rows if r["keep"]), "kept_by_category": dict(sorted(kept_by.items())),
                "check_counts": dict(sorted(checks.items())), "detectors": detectors}


def subject_items(dataset: Path) -> list[dict]:
    """The work of `subjects`: every kept clip of DATASET with its video row."""
    dataset = Path(dataset)
    clips_path = dataset / "clips.parquet"
    if not clips_path.exists():
        raise FileNotFoundError(f"{clips_path} not found: run `s2vforge curate ... --out {dataset}` first")
    clips = [c for c in pq.read_table(clips_path).to_pylist() if c.get("keep")]
    videos = {}
    if (dataset / "videos.parquet").exists():
        videos = {v["video_id"]: v for v in pq.read_table(dataset / "videos.parquet").to_pylist()}
    captions = {}
    if (dataset / "captions.parquet").exists():     # the caption stage's output (stages/caption)
        cols = ["clip_id", "short", "long", "subject_tags", "object_tags", "captioner"]
        captions = {r["clip_id"]: r for r in pq.read_table(dataset / "captions.parquet", columns=cols).to_pylist()}
    return [{"clip": c, "video": videos.get(c.get("video_id")), "caption": captions.get(c["clip_id"])}
            for c in clips]


def run_subjects(dataset: Path, recipe: dict | None, workers: int = 1,
                 progress: Callable[[dict], None] | None = None, engine=None) -> dict:
    """Find subject instances in every kept clip of DATASET (see module doc); returns the summary.

    Writes DATASET/subjects.parquet, DATASET/subjects/<subject_id>.png and
    DATASET/subjects_run.json. Reruns resume: finished clips are not processed again."""
    from ...engine.driver import run_stage
    from ...engine.spec import EngineSpec
    _, summary = run_stage(SubjectsStage(recipe), subject_items(dataset), Path(dataset),
                           engine=engine or EngineSpec(workers=workers), progress=progress)
    return summary
