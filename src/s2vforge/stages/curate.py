"""The curate stage: one video per item -> its videos.parquet row, clips.parquet rows, the kept
clips (MP4) and thumbnails.

One video: probe, one streaming decode (scene cuts + analysis frames), crop, scores, filter,
then one partial decode to write the kept clips. Memory stays bounded on any length of video:
analysis frames are held only for the open scene, and a scene that grows past 2 x max_s has
its first max_s window closed early.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from ..engine.faults import raise_if_disk_full
from ..engine.stage import Context, Output, Resources, Stage, StageRun
from ..media.clipwriter import ClipSpec, write_clips
from ..media.decode import FrameClock, fit_size, frame_to_rgb, mp4_problem, open_video, sar_text
from ..media.frames import ClipFrames
from ..media.probe import ProbeError, ProbeInfo, probe
from ..media.scenes import StreamingSceneDetector, plan_windows
from ..schema import VIDEO_SCHEMA, TableSpec, clip_id_for, clip_schema, display_path
from .crop import detect_crop
from ..reasons import Code, Reason, as_columns, group_of
from .filters import apply_filters
from .scores import SCORERS, run_scorers

THUMB_LONG_SIDE = 320
TRUNCATION_RATIO = 0.9   # fewer decodable frames than this share of the header's count = truncated


# the recipe sections that decide curate's output (the journal's stamp)
CONFIG_SECTIONS = ("ingest", "split", "analysis", "crop", "scorers", "scorer_params", "filters", "write")


@dataclass
class VideoResult:
    video: dict
    clips: list[dict]
    unavailable: dict[str, str] = field(default_factory=dict)   # scorer -> reason, for the run report
    timings: dict[str, float] = field(default_factory=dict)     # seconds per phase
    failures: dict[str, str] = field(default_factory=dict)      # scorer -> a per-clip failure message
    files: dict[str, object] = field(default_factory=dict)      # dataset-relative path -> bytes | scratch Path


class CurateStage(Stage):
    """Items: input dicts {path, caption, group_id} from inputs.expand_inputs, with ids assigned
    by `assign_ids` (content ids; repeats marked duplicate, absent files missing)."""
    name = "curate"
    published = ("videos", "clips")
    file_dirs = ("clips", "thumbs")
    resources = Resources(num_cpus=1, actors=0)

    def __init__(self, recipe: dict) -> None:
        self.recipe = recipe
        _square_pixels(recipe["write"])      # a bad write.sample_aspect is a usage error now, not one per video
        self.columns = score_columns(recipe)
        self.tables = {"videos": TableSpec(VIDEO_SCHEMA, "video_id"),
                       "clips": TableSpec(clip_schema(self.columns), "clip_id")}

    def config(self) -> dict:
        return {k: self.recipe.get(k) for k in CONFIG_SECTIONS}

    def key(self, item: dict) -> str:
        return item["video_id"]

    def process(self, item: dict, ctx: Context) -> Output:
        t0 = time.perf_counter()
        if item.get("error"):          # a manifest line or folder that could not be read
            return self.error_output(item, item["error"])
        if item.get("missing"):
            return self.error_output(item, "no such file")
        if item.get("duplicate_of"):
            return self._output(item, _bare_video_row(item, "duplicate", f"same content as {item['duplicate_of']}"),
                                [], t0)
        res = curate_video(item, self.recipe, ctx.scratch)
        return self._output(item, res.video, res.clips, t0, res)

    def error_output(self, item: dict, message: str) -> Output:
        return self._output(item, _bare_video_row(item, "error", message), [], time.perf_counter())

    def _output(self, item: dict, video: dict, clips: list[dict], t0: float, res: VideoResult | None = None) -> Output:
        meta = {"video_id": item["video_id"], "path": video["path"], "status": video["status"],
                "error": video.get("error"), "unavailable": res.unavailable if res else {},
                "failures": res.failures if res else {}, "timings": res.timings if res else {},
                "seconds": round(time.perf_counter() - t0, 4), "n_clips": len(clips),
                "n_kept": sum(1 for c in clips if c["keep"])}
        return Output(rows={"videos": [video], "clips": clips}, files=dict(res.files) if res else {}, meta=meta)

    def check_file(self, path: Path) -> str | None:
        """A clip must still open and decode (a rerun redoes the video of one that does not)."""
        return mp4_problem(path)

    def run_info(self) -> dict:
        return {"recipe": self.recipe}

    def summarize(self, run: StageRun) -> dict:
        vt, ct = run.tables["videos"], run.tables["clips"]
        failures: dict[str, str] = {}
        for m in run.metas.values():
            failures.update(m.get("failures") or {})
        reject_counts: dict[str, int] = {}
        for rejects in ct.column("rejects").to_pylist():
            for r in rejects or []:
                reject_counts[group_of(r)] = reject_counts.get(group_of(r), 0) + 1
        return {"n_duplicate": vt.column("status").to_pylist().count("duplicate"), "n_clips": ct.num_rows,
                "n_kept": sum(1 for k in ct.column("keep").to_pylist() if k),
                "reject_counts": dict(sorted(reject_counts.items())), "scorer_failures": dict(sorted(failures.items()))}


def assign_ids(items: list[dict]) -> list[dict]:
    """Give each input its content id; a repeat of earlier content becomes a duplicate item."""
    import hashlib
    import os
    from ..inputs import input_id
    seen: dict[str, str] = {}
    occurrences: dict[tuple[str, str], int] = {}
    for it in items:
        vid = input_id(it["path"]) if not it.get("error") else _where_id(it["path"])
        it["video_id"] = vid
        if vid in seen:          # the same content, or the same absent path, given again
            it["duplicate_of"] = seen[vid]
            k = occurrences[(vid, it["path"])] = occurrences.get((vid, it["path"]), 0) + 1
            tag = hashlib.blake2b(f"{os.fsencode(it['path'])!r}#{k}".encode(), digest_size=4).hexdigest()
            it["video_id"] = f"{vid}-dup-{tag}"      # one row per occurrence, ids unique and stable
        else:
            seen[vid] = display_path(it["path"])
    return items


def _where_id(where: str) -> str:
    """The id of an input that is not a file (a manifest line, a folder): from where it is."""
    import hashlib
    return "v" + hashlib.blake2b(b"where:" + where.encode("utf-8", "backslashreplace"), digest_size=8).hexdigest()


def _bare_video_row(item: dict, status: str, message: str) -> dict:
    """The row of an input that yields no clips (missing, duplicate, failed)."""
    return {"video_id": item["video_id"], "path": item.get("uri") or display_path(item["path"]),
            "path_raw": _raw(item.get("uri") or item["path"]), "status": status, "error": message,
            "group_id": item.get("group_id") or item["video_id"], "caption": item.get("caption"),
            "n_scenes": 0, "n_clips": 0, "n_kept": 0}


def score_columns(recipe: dict) -> list[str]:
    cols = {"score_ocr_area", "score_ocr_area_in_crop"}
    for name in recipe["scorers"]:
        if name not in SCORERS:
            raise ValueError(f"recipe names unknown scorer {name!r}; known: {sorted(SCORERS)}")
        cols.update(SCORERS[name].columns)
    return sorted(cols)


def curate_video(item: dict, recipe: dict, scratch: Path) -> VideoResult:
    """item: {video_id, path, caption, group_id}. Never raises for bad media: error rows instead.
    Kept clips are encoded under `scratch`; they and the thumbnails are returned as files."""
    video = {
        "video_id": item["video_id"], "path": item.get("uri") or display_path(item["path"]), "path_raw": _raw(item.get("uri") or item["path"]),
        "status": "ok", "error": None, "group_id": item.get("group_id") or item["video_id"],
        "caption": item.get("caption"), "n_scenes": 0, "n_clips": 0, "n_kept": 0,
    }
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        info = probe(item["path"], max_pixels=int(recipe["ingest"]["max_pixels"]))
    except ProbeError as e:
        video.update(status="error", error=str(e))
        return VideoResult(video, [], timings={"probe": time.perf_counter() - t0})
    video.update(duration_s=info.duration_s, fps=info.fps, width=info.width, height=info.height,
                 rotation=info.rotation, codec=info.codec, has_audio=info.has_audio, size_bytes=info.size_bytes)
    timings["probe"] = time.perf_counter() - t0
    try:
        analysis = _analyse(item["path"], info, recipe, video, timings)
    except _DecodeFailure as e:
        video.update(status="error", error=str(e))
        return VideoResult(video, [], timings=timings)
    clips, unavailable, failures, files, clock = analysis
    video["n_clips"] = sum(1 for c in clips if c["duration_s"] >= recipe["split"]["min_s"] - 1e-6)
    t1 = time.perf_counter()
    kept = [c for c in clips if c["keep"]]
    if kept and recipe["write"]["clips"]:
        # frames by decode index: the clip holds exactly the frames analysed for its row
        specs = [ClipSpec(c["clip_id"], c["start_s"], c["end_s"], tuple(c["crop"]),
                          Path(scratch) / f"{c['clip_id']}.mp4", c["start_frame"], c["end_frame"]) for c in kept]
        wcfg = recipe["write"]
        square = _square_pixels(wcfg)
        try:
            written = write_clips(item["path"], specs, info.rotation, video["fps"], crf=int(wcfg["crf"]),
                                  preset=wcfg["preset"], threads=int(recipe["analysis"]["decode_threads"]),
                                  max_long_side=wcfg["max_long_side"], x264_asm=wcfg["x264_asm"],
                                  frame_pts=clock.pts if clock.seekable else None,
                                  sample_aspect=info.sample_aspect, square_pixels=square)
        except (av.FFmpegError, OSError) as e:
            raise_if_disk_full(e, scratch)     # not this video's fault: stops the run (engine/faults.py)
            written = {}
            video["error"] = f"writing clips failed: {e}"
        for c, spec in zip(kept, specs):
            if written.get(c["clip_id"], 0) > 0:
                c["path"] = f"clips/{c['clip_id']}.mp4"
                c["pixels_resampled"] = bool(square and info.sample_aspect != 1)
                files[c["path"]] = spec.out_path
            else:
                c["keep"], c["path"] = False, None
                c.update(as_columns([Reason(Code.WRITE_FAILED)]))
    timings["write"] = time.perf_counter() - t1
    video["n_kept"] = sum(1 for c in clips if c["keep"])
    return VideoResult(video, clips, unavailable, timings, failures, files)


class _DecodeFailure(Exception):
    pass


SAMPLE_ASPECT_MODES = ("square", "keep")


def _square_pixels(wcfg: dict) -> bool:
    """write.sample_aspect: square = resample non-square pixels to square, keep = carry the SAR."""
    mode = wcfg["sample_aspect"]
    if mode not in SAMPLE_ASPECT_MODES:
        raise ValueError(f"write.sample_aspect must be one of {SAMPLE_ASPECT_MODES}, got {mode!r}")
    return mode == "square"


@dataclass
class _Sample:
    index: int
    time: float
    rgb: np.ndarray
    next_rgb: np.ndarray | None = None
    next_index: int = -1
    next_dt: float = 0.0


def _analyse(path, info: ProbeInfo, recipe: dict, video: dict, timings: dict):
    split, ana = recipe["split"], recipe["analysis"]
    max_s = float(split["max_s"])

    def _new_detector() -> StreamingSceneDetector:
        return StreamingSceneDetector(info.fps, threshold=split["threshold"],
                                      min_scene_len_frames=int(split["min_scene_len_frames"]),
                                      detector=split["detector"],
                                      source_size=(info.width, info.height))   # display geometry

    detector = _new_detector()
    asize = fit_size(info.width, info.height, int(ana["long_side"]))
    period = 1.0 / float(ana["fps"])
    ctx = _ClipContext(recipe, info, video)
    samples: list[_Sample] = []
    scene_start = 0
    next_sample_t = -1.0
    t_decode = time.perf_counter()
    container, stream = open_video(path, int(ana["decode_threads"]))
    # frame identity is the decode index; time is the FrameClock's (pts where they are
    # continuous), so a splice, a reset, a negative start or a gap cannot scramble the plan
    clock = FrameClock(info.fps, float(ana["pts_gap_s"]), float(ana["pts_gap_frames"]))
    times = clock.times
    rot = info.rotation
    idx = -1
    n_discarded = 0     # packets the container marks as not shown (before an MP4 edit list's start)

    def close_at(cut: int, final: bool = True) -> None:
        nonlocal samples, scene_start
        ctx.close_scene(scene_start, cut, times, samples, final=final)
        samples = [s for s in samples if s.index >= cut]
        scene_start = cut

    try:
        with container:
            for packet in container.demux(stream):
                n_discarded += bool(packet.is_discard)
                for frame in packet.decode():
                    idx += 1
                    n_breaks = len(clock.breaks)
                    t = clock.push(frame)
                    if len(clock.breaks) > n_breaks:
                        # a timestamp discontinuity is a cut: the frames before and after it are
                        # not one continuous shot; the detector starts afresh on the new segment
                        for cut in detector.finish():
                            if scene_start < cut < idx:
                                close_at(cut)
                        if idx > scene_start:
                            close_at(idx)
                        ctx.breaks.add(idx)
                        detector = _new_detector()
                    if samples and samples[-1].next_index == -1 and samples[-1].index == idx - 1:
                        samples[-1].next_rgb = frame_to_rgb(frame, asize, rot)
                        samples[-1].next_index, samples[-1].next_dt = idx, t - samples[-1].time
                    if t >= next_sample_t - 1e-6:
                        samples.append(_Sample(idx, t, frame_to_rgb(frame, asize, rot)))
                        next_sample_t = (math.floor(t / period + 1e-6) + 1) * period
                    cuts = detector.push(frame_to_rgb(frame, detector.detect_size, rot), idx)
                    for cut in cuts:
                        if cut > scene_start:
                            close_at(cut)
                    # bound memory: close the first max_s window of a scene longer than 2 x max_s
                    if t - times[scene_start] >= 2 * max_s:
                        end = int(np.searchsorted(np.asarray(times[scene_start:]), times[scene_start] + max_s)) + scene_start
                        close_at(end, final=False)
    except av.FFmpegError as e:
        raise _DecodeFailure(f"decoding failed at frame {idx + 1} (t={times[-1] if times else 0:.2f}s): "
                             f"{getattr(e, 'strerror', None) or e}; the file is truncated or corrupt") from None
    n = len(times)
    if n == 0:
        raise _DecodeFailure("no decodable video frames")
    shown = info.n_frames_header - n_discarded
    if info.n_frames_header and n < TRUNCATION_RATIO * shown:
        raise _DecodeFailure(f"truncated: the container declares {shown} frames but only {n} "
                             f"decode ({times[-1]:.2f}s of {info.duration_s:.2f}s)")
    for cut in detector.finish():
        if cut > scene_start:
            close_at(cut)
    ctx.end_time = clock.end_time()
    ctx.close_scene(scene_start, n, times, samples, final=True)
    deltas = np.diff(np.asarray(times)) if n > 1 else np.zeros(1)
    video.update(n_frames=n, duration_s=ctx.end_time - times[0], vfr=bool(n > 2 and np.ptp(deltas) > 0.25 * np.median(deltas)),
                 n_scenes=ctx.n_scenes)
    if clock.breaks:
        # a gap or splice skews the container's average rate: the frames' own rate is the clock's
        video["fps"] = round(clock.frame_rate(), 6)
    timings["analyse"] = time.perf_counter() - t_decode - ctx.seconds_scoring
    timings["score"] = ctx.seconds_scoring
    timings.update({f"score.{k}": v for k, v in ctx.timings.items()})
    return ctx.clips, ctx.unavailable, ctx.failures, ctx.files, clock


def _end_time(times: list[float], fps: float) -> float:
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / fps
    return times[-1] + step


class _ClipContext:
    """Turns closed scenes into scored, filtered clip rows."""

    def __init__(self, recipe: dict, info: ProbeInfo, video: dict):
        self.recipe, self.info, self.video = recipe, info, video
        self.clips: list[dict] = []
        self.files: dict[str, object] = {}         # thumbs/<clip_id>.jpg -> JPEG bytes
        self.unavailable: dict[str, str] = {}
        self.failures: dict[str, str] = {}        # scorer -> last per-clip failure (clip rejected as :missing)
        self.timings: dict[str, float] = {}       # seconds per crop/scorer, inside "score"
        self.n_scenes = 0
        self.seconds_scoring = 0.0
        self.end_time: float | None = None
        self.breaks: set[int] = set()             # frame indices right after a timestamp discontinuity
        self._scene_index = 0

    def close_scene(self, start: int, end: int, times: list[float], samples: list[_Sample], final: bool) -> None:
        split = self.recipe["split"]
        clock = list(times[start:end])
        clock.append(times[end] if end < len(times) else (self.end_time if self.end_time is not None
                                                           else _end_time(times, self.info.fps)))
        plan = plan_windows([], end - start, clock, min_s=float(split["min_s"]), max_s=float(split["max_s"]))
        for s, e in plan.too_short:
            self._row(start + s, start + e, clock[s], clock[e], None, [Reason(Code.TOO_SHORT)])
        for s, e in plan.windows:
            a, b = start + s, start + e
            inside = [x for x in samples if a <= x.index < b]
            self._row(a, b, clock[s], clock[e], inside, [])
        if final:
            self.n_scenes += 1
            self._scene_index += 1

    def _row(self, a: int, b: int, start_s: float, end_s: float, samples: list[_Sample] | None,
             reasons: list[Reason]):
        clip_id = clip_id_for(self.video["video_id"], a, b)
        row = {"clip_id": clip_id, "video_id": self.video["video_id"], "scene_index": self._scene_index,
               "start_s": round(start_s, 6), "end_s": round(end_s, 6), "duration_s": round(end_s - start_s, 6),
               "start_frame": a, "end_frame": b, "path": None, "caption": self.video.get("caption"),
               "group_id": self.video["group_id"], "crop": [0, 0, self.info.width, self.info.height],
               "keep": False, "pts_discontinuity": a in self.breaks,
               "sample_aspect": sar_text(self.info.sample_aspect), "pixels_resampled": None}
        if samples:
            t0 = time.perf_counter()
            row.update(self._score(clip_id, start_s, end_s, samples, b))
            self.seconds_scoring += time.perf_counter() - t0
        elif samples is not None:
            reasons = reasons + [Reason(Code.NO_FRAMES)]
        if not reasons:
            skip = {c for name in self.unavailable for c in SCORERS[name].columns}
            reasons = apply_filters(row, self.recipe["filters"], skip)
            row["keep"] = not reasons
        row.update(as_columns(reasons))
        self.clips.append(row)

    def _score(self, clip_id: str, start_s: float, end_s: float, samples: list[_Sample], end_frame: int) -> dict:
        # a flow pair must not straddle the clip's end (the next frame may be across a cut);
        # only the last sample can, so next_rgb stays aligned with rgb
        pairs = [s for s in samples if s.next_rgb is not None and s.next_index < end_frame]
        frames = ClipFrames(clip_id=clip_id, fps=self.info.fps, start_s=start_s, end_s=end_s,
                            source_size=(self.info.width, self.info.height), rgb=[s.rgb for s in samples],
                            times=[s.time for s in samples],
                            next_rgb=[s.next_rgb for s in pairs], next_dt=[s.next_dt for s in pairs])
        out: dict = {}
        crop_cfg = self.recipe["crop"]
        if crop_cfg["enabled"]:
            t_crop = time.perf_counter()
            res = detect_crop(frames, crop_cfg)
            frames.crop = tuple(res.crop)
            self.timings["crop"] = self.timings.get("crop", 0.0) + time.perf_counter() - t_crop
            out.update(res.as_record())
        # a backend found unavailable on an earlier clip is not tried again on every clip
        names = [n for n in self.recipe["scorers"] if n not in self.unavailable]
        scores, unavailable, failed = run_scorers(frames, names, self.recipe["scorer_params"], self.timings)
        for name in self.recipe["scorers"]:
            if name in self.unavailable:
                scores.update(dict.fromkeys(SCORERS[name].columns))
        out.update(scores)
        self.unavailable.update(unavailable)
        self.failures.update(failed)
        self._thumbnail(clip_id, frames)
        return out

    def _thumbnail(self, clip_id: str, frames: ClipFrames) -> None:
        mid = frames.rgb[len(frames.rgb) // 2]
        img = cv2.cvtColor(mid, cv2.COLOR_RGB2BGR)
        x0, y0, x1, y1 = frames.crop_in_analysis()
        if (x0, y0, x1, y1) != (0, 0, img.shape[1], img.shape[0]):
            cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 255), 2)
        w, h = fit_size(img.shape[1], img.shape[0], THUMB_LONG_SIDE)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            self.files[f"thumbs/{clip_id}.jpg"] = buf.tobytes()


def _raw(path) -> bytes:
    import os
    return os.fsencode(path)
