"""A synthetic dataset folder of any size, for the report's tests and benchmark.

Rows follow the real schemas (schema.VIDEO_SCHEMA, schema.clip_schema of the recipe's scorer
columns) and the real decisions: scores are drawn from fixed-seed distributions, too-short
scenes are unscored, and keep/rejects come from stages/filters.apply_filters over the recipe's
filters, exactly as curate decides. Clip and thumbnail files are empty placeholders (the report
only links them). Same arguments, same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..reasons import Code, Reason, as_columns
from ..schema import VIDEO_SCHEMA, clip_id_for, clip_schema, table_from_rows

UNAVAILABLE = {"aesthetic": "synthetic: no aesthetic model (as on a machine without its weights)"}
CLIPS_PER_VIDEO = 10


def _columns(recipe: dict) -> list[str]:
    from ..stages.scores import SCORERS
    cols = {"score_ocr_area", "score_ocr_area_in_crop"}
    for name in recipe["scorers"]:
        cols.update(SCORERS[name].columns)
    return sorted(cols)


def _draw(col: str, rng: np.random.Generator) -> float | None:
    if col == "score_luminance":
        return float(np.clip(rng.normal(110, 55), 0, 255))
    if col == "score_blur_cpbd":
        return float(rng.beta(2, 6))
    if col == "score_blur_laplacian":
        return float(rng.lognormal(5, 1))
    if col == "score_motion":
        return float(rng.lognormal(0.6, 1.1))
    if col == "score_brisque":
        return float(rng.normal(45, 15))
    if col == "score_nsfw":
        return float(rng.beta(0.3, 6))
    if col == "score_ocr_area":
        return float(rng.beta(0.4, 25))
    if col == "score_ocr_area_in_crop":
        return float(rng.beta(0.3, 40))
    return float(rng.random())


def synthetic_dataset(out: str | Path, n_clips: int, *, seed: int = 0, recipe: dict | None = None,
                      files: bool = True, too_short_share: float = 0.08, write_failed_share: float = 0.002,
                      n_bad_inputs: int | None = None) -> dict:
    """Write videos.parquet, clips.parquet, curate_run.json (and empty clips/ + thumbs/ files)
    under `out`; returns {"dataset", "recipe", "n_clips", "n_videos", "n_bad"}."""
    import pyarrow.parquet as pq

    from ..recipes import load_recipe
    from ..stages.filters import apply_filters
    from ..stages.scores import SCORERS

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = recipe or load_recipe(None)
    cols = _columns(recipe)
    skip = {c for name in UNAVAILABLE if name in recipe["scorers"] for c in SCORERS[name].columns}
    rng = np.random.default_rng(seed)
    n_videos = max(1, -(-n_clips // CLIPS_PER_VIDEO))
    n_bad = max(1, n_videos // 50) if n_bad_inputs is None else n_bad_inputs
    fps = 25.0
    videos, clips = [], []
    for v in range(n_videos):
        vid = f"v{v:016x}"
        count = min(CLIPS_PER_VIDEO, n_clips - v * CLIPS_PER_VIDEO)
        videos.append({"video_id": vid, "path": f"/data/in/video_{v:06d}.mp4", "path_raw": b"", "status": "ok",
                       "duration_s": count * 4.0, "fps": fps, "width": 1280, "height": 720, "group_id": vid,
                       "n_clips": count})
        frame = 0
        for k in range(count):
            short = rng.random() < too_short_share
            length = int(rng.integers(10, 50)) if short else int(rng.integers(50, 500))
            a, b = frame, frame + length
            frame = b
            row = {"clip_id": clip_id_for(vid, a, b), "video_id": vid, "scene_index": k, "start_s": a / fps,
                   "end_s": b / fps, "duration_s": (b - a) / fps, "start_frame": a, "end_frame": b,
                   "crop": [0, 0, 1280, 720], "path": None, "keep": False, "group_id": vid}
            if short:
                row.update(as_columns([Reason(Code.TOO_SHORT)]))
            else:
                for c in cols:
                    row[c] = None if c in skip else _draw(c, rng)
                reasons = apply_filters(row, recipe["filters"], skip)
                if not reasons and rng.random() < write_failed_share:
                    reasons = [Reason(Code.WRITE_FAILED)]
                row["keep"] = not reasons
                if row["keep"]:
                    row["path"] = f"clips/{row['clip_id']}.mp4"
                row.update(as_columns(reasons))
            clips.append(row)
    for j in range(n_bad):
        dup = j % 2 == 1
        videos.append({"video_id": f"vbad{j:012x}", "path": f"/data/in/bad_{j:05d}.mp4", "path_raw": b"",
                       "status": "duplicate" if dup else "error",
                       "error": "same content as /data/in/video_000000.mp4" if dup else
                       "not a readable media file (FFmpeg: Invalid data found when processing input)"})
    videos.sort(key=lambda r: r["video_id"])
    clips.sort(key=lambda r: r["clip_id"])
    pq.write_table(table_from_rows(videos, VIDEO_SCHEMA), out / "videos.parquet")
    pq.write_table(table_from_rows(clips, clip_schema(cols)), out / "clips.parquet")
    (out / "curate_run.json").write_text(json.dumps(
        {"stage": "curate", "recipe": recipe, "summary": {"unavailable": {k: v for k, v in UNAVAILABLE.items()
                                                                         if k in recipe["scorers"]}}},
        indent=2, sort_keys=True, default=str))
    if files:
        for sub in ("clips", "thumbs"):
            (out / sub).mkdir(exist_ok=True)
        for c in clips:
            if c["path"]:
                (out / c["path"]).touch()
            if c.get("rejects") and c["rejects"][0]["code"] == Code.TOO_SHORT.value:
                continue
            (out / "thumbs" / f"{c['clip_id']}.jpg").touch()
    return {"dataset": out, "recipe": recipe, "n_clips": len(clips), "n_videos": n_videos, "n_bad": n_bad}
