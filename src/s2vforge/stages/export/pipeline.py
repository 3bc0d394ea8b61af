"""The export stage: a dataset's tables -> an export folder a trainer reads.

`s2vforge export DATASET --format F --out EXPORT`:

1. samples.py builds one sample row per kept clip (caption, scores, references by the recipe's
   rule); these are the stage's items;
2. per item (any engine, journaled in EXPORT/.work/export/): the clip file (hard-linked from
   the dataset, copied across filesystems, or re-cut to `export.clip.fps/frames`), every
   reference as RGBA + RGB on white + mask PNG, and a clip embedding for near-duplicate search;
3. finalize (once): near-duplicates (dedup.py) marked `duplicate_of` with the best copy kept,
   leak-free splits (splits.py), samples.parquet, export.json, then each `--format` writer
   (formats.py) over the kept samples.

Files keep the dataset's relative names (clips/<clip_id>.mp4, subjects/<subject_id>.png), so a
sample resolves the same way over a dataset and over its export.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from ...engine.stage import Context, Final, Output, Resources, Stage, StageRun
from ...media.decode import mp4_problem
from ...schema import TableSpec, sample_schema
from ..recipe_keys import need
from .samples import build_samples, check_refs_config

EMBEDDING_SCHEMA = pa.schema([("sample_id", pa.string()), ("vector", pa.list_(pa.float32())),
                              ("error", pa.string())])
MANIFEST = "export.json"


def export_config(recipe: dict | None) -> dict:
    from ...recipes import section
    return section(recipe, "export")


def rgb_on_white(rgba: np.ndarray) -> np.ndarray:
    """Alpha-composite an RGBA crop on white (trainers drop alpha: a black or random
    background would leak into what the model learns as the subject)."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def png_bytes(arr: np.ndarray, mode: str) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def reference_files(rgba_png: Path) -> tuple[bytes, bytes]:
    """(RGB-on-white PNG, 8-bit mask PNG) of an RGBA crop."""
    from PIL import Image
    with Image.open(rgba_png) as im:
        rgba = np.asarray(im.convert("RGBA"))
    mask = np.where(rgba[..., 3] > 127, 255, 0).astype(np.uint8)
    return png_bytes(rgb_on_white(rgba), "RGB"), png_bytes(mask, "L")


def link_or_copy(src: Path, scratch: Path) -> Path:
    """A scratch entry with src's bytes: a hard link when src is on the same filesystem (no
    bytes copied; the writer then renames it into place), a copy otherwise."""
    scratch.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, scratch)
    except OSError:
        shutil.copyfile(src, scratch)
    return scratch


def clip_header(path: Path) -> dict:
    """Frame count, rate and size of a clip this package wrote, from the container header alone
    (curate's clips declare exact frame counts; no frame is decoded)."""
    from ...media.decode import av_open, stream_fps
    with av_open(path) as c:
        s = c.streams.video[0]
        return {"frames": int(s.frames or 0), "fps": stream_fps(s), "width": int(s.codec_context.width),
                "height": int(s.codec_context.height)}


class ExportStage(Stage):
    name = "export"
    published = ()
    file_dirs = ("clips", "subjects")
    resources = Resources(num_cpus=1, actors="auto")

    def __init__(self, recipe: dict | None, dataset: Path, formats: list[str]) -> None:
        self.recipe = recipe
        self.cfg = export_config(recipe)
        check_refs_config(self.cfg)
        self.dataset = Path(dataset).resolve()
        from .formats import check_formats
        self.formats = check_formats(formats)
        clip = need(self.cfg, "clip", "export")
        self.clip_cfg = clip
        from ...media.recut import fit_length
        fit_length(1, need(clip, "length_rule", "export.clip"))     # a bad rule fails before any work
        from ...recipes import section
        self.write_cfg = section(recipe, "write")       # a re-cut is written as curate writes clips
        self.score_columns: list[str] = []
        self.tables = {"samples": TableSpec(sample_schema([]), "sample_id"),
                       "embeddings": TableSpec(EMBEDDING_SCHEMA, "sample_id")}
        self._embedder = None

    def items(self) -> list[dict]:
        """One item per kept clip of the dataset (its sample row, references chosen)."""
        table = build_samples(self.dataset, self.cfg)
        self.score_columns = [n for n in table.column_names if n.startswith("score_")]
        self.tables = {"samples": TableSpec(table.schema, "sample_id"),
                       "embeddings": TableSpec(EMBEDDING_SCHEMA, "sample_id")}
        return table.to_pylist()

    @property
    def dedup_enabled(self) -> bool:
        return bool(need(need(self.cfg, "dedup", "export"), "enabled", "export.dedup"))

    def config(self) -> dict:
        from .dedup import ClipEmbedder
        embedder = ClipEmbedder(self.cfg["dedup"]).config() if self.dedup_enabled else None
        return {"dataset": str(self.dataset), "refs": self.cfg["refs"], "caption": self.cfg["caption"],
                "clip": self.clip_cfg, "embedder": embedder,
                "write": {k: self.write_cfg.get(k) for k in ("crf", "preset", "x264_asm")}}

    def key(self, item: dict) -> str:
        return item["sample_id"]

    def setup(self) -> None:
        if self.dedup_enabled:       # the clip embedding is only for near-duplicate search
            from .dedup import ClipEmbedder
            self._embedder = ClipEmbedder(self.cfg["dedup"])
            self._embedder.setup()

    # ------------------------------------------------------------------ one sample

    def process(self, item: dict, ctx: Context) -> Output:
        t0 = time.perf_counter()
        row = dict(item)
        files: dict[str, bytes | Path] = {}
        if not row["keep"]:
            return self._output(row, files, None, None, t0)
        src = Path(row["source_clip_path"])
        if not src.is_file():
            return self.error_output(item, f"the dataset's clip {row['clip_path']} is missing: rerun "
                                           f"`s2vforge curate` on {self.dataset}")
        try:
            clip_file = self._clip_file(row, src, ctx, files)
        except Exception as e:     # a clip that does not decode is this sample's error, not the run's
            return self.error_output(item, f"cannot write the clip: {type(e).__name__}: {e}")
        if clip_file is None:
            return self._output(row, {}, None, None, t0)
        refs = []
        for ref in row["references"] or []:
            ref = dict(ref)
            rgba = self.dataset / ref["rgba_path"] if ref.get("rgba_path") else None
            if rgba is None or not rgba.is_file():
                row["drop_reasons"] = list(row["drop_reasons"]) + [f"reference_missing:{ref['subject_id']}"]
                continue
            stem = ref["rgba_path"][: -len(".png")]
            files[ref["rgba_path"]] = link_or_copy(rgba, ctx.scratch / ref["rgba_path"])
            rgb, mask = reference_files(rgba)
            ref["rgb_path"], ref["mask_path"] = stem + ".rgb.png", stem + ".mask.png"
            files[ref["rgb_path"]], files[ref["mask_path"]] = rgb, mask
            refs.append(ref)
        row["references"], row["n_refs"] = refs, len(refs)
        min_refs = int(self.cfg["refs"]["min_refs"])
        if len(refs) < min_refs:
            row["keep"] = False
            row["drop_reasons"] = list(row["drop_reasons"]) + [f"too_few_refs: {len(refs)} < {min_refs} (files)"]
            return self._output(row, {}, None, None, t0)
        vector, emb_error = None, None
        if self.dedup_enabled:
            if self._embedder is None:
                self.setup()
            try:
                vector = self._embedder.embed(clip_file)
            except Exception as e:     # no embedding: the sample is kept, never merged as a duplicate
                emb_error = f"{type(e).__name__}: {e}"
        return self._output(row, files, vector, emb_error, t0)

    def _clip_file(self, row: dict, src: Path, ctx: Context, files: dict) -> Path | None:
        """The sample's clip in scratch (linked, copied or re-cut); updates the row's clip fields.
        None when a re-cut leaves too few frames (the row is dropped with the reason)."""
        fps_out, frames = self.clip_cfg.get("fps"), self.clip_cfg.get("frames")
        rule = self.clip_cfg["length_rule"]
        dest = ctx.scratch / row["clip_path"]
        info = clip_header(src)
        n_src, fps_src = int(info["frames"] or row["n_frames"] or 0), float(info["fps"])
        if fps_out or frames or rule != "any":
            from ...media.recut import recut_clip, recut_indices
            idx = recut_indices(n_src, fps_src, fps_out, frames, rule)
            min_frames = int(need(self.clip_cfg, "min_frames", "export.clip"))
            if len(idx) < max(1, min_frames):
                row["keep"] = False
                row["drop_reasons"] = list(row["drop_reasons"]) + [
                    f"too_short_for_recut: {len(idx)} frames < {min_frames} at {fps_out or fps_src:g} fps ({rule})"]
                return None
            out_fps = float(fps_out or fps_src)
            if idx != list(range(n_src)) or abs(out_fps - fps_src) > 1e-6:
                w = self.write_cfg
                n = recut_clip(src, dest, idx, out_fps, crf=int(need(w, "crf", "write")),
                               preset=str(need(w, "preset", "write")), x264_asm=str(need(w, "x264_asm", "write")))
                row.update(recut=f"{out_fps:g}fps/{n}f", fps=out_fps, n_frames=n)
            else:
                link_or_copy(src, dest)
                row.update(fps=fps_src, n_frames=n_src)
        else:
            link_or_copy(src, dest)
            row.update(fps=fps_src, n_frames=n_src)
        row.update(width=info["width"], height=info["height"])
        if row["recut"]:
            row["duration_s"] = round(row["n_frames"] / row["fps"], 6)
        files[row["clip_path"]] = dest
        return dest

    def error_output(self, item: dict, message: str) -> Output:
        row = dict(item)
        row["keep"] = False
        row["drop_reasons"] = list(row.get("drop_reasons") or []) + [f"error: {message}"]
        out = self._output(row, {}, None, None, time.perf_counter())
        out.meta.update(status="error", error=message)
        return out

    def _output(self, row: dict, files: dict, vector, emb_error, t0: float) -> Output:
        emb = {"sample_id": row["sample_id"],
               "vector": None if vector is None else np.asarray(vector, np.float32).tolist(), "error": emb_error}
        meta = {"sample_id": row["sample_id"], "status": "ok", "error": None, "keep": row["keep"],
                "drop_reasons": list(row["drop_reasons"]), "seconds": round(time.perf_counter() - t0, 4)}
        return Output(rows={"samples": [row], "embeddings": [emb]}, files=files, meta=meta)

    def check_file(self, path: Path) -> str | None:
        return mp4_problem(path)

    # ------------------------------------------------------------------ the whole export

    def finalize(self, run: StageRun) -> Final:
        from .dedup import find_duplicates
        from .formats import write_formats
        from .splits import assign_splits
        rows = run.tables["samples"].to_pylist()
        vectors = {r["sample_id"]: r["vector"] for r in run.tables["embeddings"].to_pylist() if r["vector"]}
        dcfg = self.cfg["dedup"]
        summary: dict = {}
        kept = [r for r in rows if r["keep"]]
        if self.dedup_enabled and kept:
            with_vec = [r for r in kept if r["sample_id"] in vectors]
            clips = [{**r, "clip_id": r["sample_id"]} for r in with_vec]
            mat = np.asarray([vectors[r["sample_id"]] for r in with_vec], np.float32) if with_vec else None
            dups = find_duplicates(clips, mat, dcfg) if with_vec else {}
            n_dup = 0
            for r in kept:
                d = dups.get(r["sample_id"]) or {}
                r["duplicate_cluster"] = d.get("cluster")
                if d.get("duplicate_of"):
                    r["duplicate_of"], r["duplicate_similarity"] = d["duplicate_of"], d.get("similarity")
                    r["keep"] = False
                    r["drop_reasons"] = list(r["drop_reasons"]) + [f"duplicate_of:{d['duplicate_of']}"]
                    n_dup += 1
            summary["n_duplicates"] = n_dup
        scfg = need(self.cfg, "splits", "export")
        links = split_links(rows, self.dataset)
        splits = assign_splits([r for r in rows if r["keep"]], links, need(scfg, "fractions", "export.splits"),
                               int(need(scfg, "seed", "export.splits")))
        for r in rows:
            r["split"], r["split_group"] = splits.get(r["sample_id"], (None, None))
        schema = run.tables["samples"].schema
        from ...schema import table_from_rows
        table = table_from_rows(sorted(rows, key=lambda r: r["sample_id"]), schema)
        drops = Counter(d.split(":")[0] for r in rows for d in r["drop_reasons"] or [])
        kinds = Counter(ref["kind"] for r in rows if r["keep"] for ref in r["references"] or [])
        summary.update(n_samples=len(rows), n_kept=sum(1 for r in rows if r["keep"]),
                       splits=dict(sorted(Counter(r["split"] for r in rows if r["keep"]).items())),
                       drop_reasons=dict(sorted(drops.items())), reference_kinds=dict(sorted(kinds.items())))
        summary["formats"] = write_formats(run.dataset, table, self.cfg, self.formats, self.dataset)
        manifest = {"source_dataset": str(self.dataset), "formats": self.formats, "export": self.cfg,
                    "split_rule": "by linked source group (group_id, identity clusters, cross references, "
                                  "duplicate clusters); hash of (seed, group) against the fractions",
                    "summary": summary}
        return Final(tables={"samples": table},
                     files={MANIFEST: (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode()},
                     summary=summary)

    def run_info(self) -> dict:
        return {"recipe": self.recipe}


def split_links(rows: list[dict], dataset: Path) -> list[tuple[str, str]]:
    """Union edges for splits: identity clusters of pairs.parquet, cross references (to the
    reference's own group) and duplicate clusters."""
    import pyarrow.parquet as pq
    links: list[tuple[str, str]] = []
    by_clip = {r["clip_id"]: r for r in rows}
    pairs = Path(dataset) / "pairs.parquet"
    if pairs.exists():
        for p in pq.read_table(pairs, columns=["target_clip_id", "cluster_id", "reference_clip_ids"]).to_pylist():
            if p["target_clip_id"] in by_clip and p.get("cluster_id"):
                links.append(("s:" + p["target_clip_id"], "i:" + p["cluster_id"]))
    for r in rows:
        for ref in r.get("references") or []:
            src = ref.get("source_clip_id")
            if src and src != r["clip_id"]:
                other = by_clip.get(src)
                links.append(("s:" + r["sample_id"],
                              "g:" + str((other or {}).get("group_id") or ref.get("source_video_id") or src)))
        if r.get("duplicate_cluster"):
            links.append(("s:" + r["sample_id"], "d:" + r["duplicate_cluster"]))
    return links
