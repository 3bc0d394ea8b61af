"""Trainer layouts: the manifests five open video trainers read, written from the kept samples.

`write_trainer(EXPORT, samples, cfg, name)` writes EXPORT/trainers/<name>/ for one of TRAINERS.
Each writer emits exactly the keys or columns its trainer's loader reads (the loader functions
and the commits read are named in docs/trainers.md). Every file a manifest names is checked at
write time: a sample whose clip or reference file is missing or unreadable is an error in the
summary and never a row, because VideoX-Fun swallows load errors and retries a random sample (a
bad path silently loses data) and the other loaders stop the run. A clip whose frame rate or
length differs from the trainer's preset (export.trainers.presets) is written with a warning:
these loaders take frames as they are, so re-cut with export.clip.fps/frames.

Paths: VideoX-Fun opens object_file_path as given and Open-Sora opens `path` as given, so those
manifests hold absolute paths (move the export and re-run the format); the others are relative
to a root the command names.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ..recipe_keys import need
from .letterbox import letterboxed_png
from .samples import one_line

TRAINERS = ("videox-fun", "diffsynth", "finetrainers", "opensora", "musubi")
WHERE = "export.trainers"
VIDEOX_FUN_MAX_REFS = 4     # ImageVideoControlDataset.get_batch reads min(len(object_file_path), 4) images
FPS_TOLERANCE = 0.01


# ----------------------------------------------------------------------------- shared pieces

@dataclass(frozen=True)
class Reference:
    subject_id: str
    path: Path                  # absolute path of the RGB-on-white PNG


@dataclass(frozen=True)
class Entry:
    """A kept sample whose files were all found: what a writer turns into its row."""
    sample_id: str
    caption: str
    clip: Path                  # absolute
    width: int
    height: int
    fps: float
    n_frames: int
    refs: tuple[Reference, ...]  # the first `limit` references, every file present
    n_refs: int                  # the sample's references in all


@dataclass
class Job:
    """One trainer's folder being written, and what the summary reports about it."""
    trainer: str
    export_dir: Path
    out_dir: Path
    errors: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)
    n_bytes: int = 0
    refs_written: int = 0
    refs_dropped: int = 0

    def rel(self, path: Path) -> str:
        return path.relative_to(self.export_dir).as_posix()

    def rel_or_abs(self, path: Path) -> str:
        """EXPORT-relative when under EXPORT, else absolute (os.path.join(base, abs) is abs)."""
        try:
            return self.rel(path)
        except ValueError:
            return str(path)

    def error(self, sample_id: str, reason: str) -> None:
        self.errors.append({"sample_id": sample_id, "reason": reason})

    def warn(self, sample_id: str, reason: str) -> None:
        self.warnings.append({"sample_id": sample_id, "reason": reason})

    def write_bytes(self, name: str, data: bytes) -> Path:
        dest = self.out_dir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        self.files.append(self.rel(dest))
        self.n_bytes += len(data)
        return dest

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj) -> Path:
        return self.write_text(name, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=True) + "\n")

    def link(self, src: Path, name: str) -> Path:
        """`name` with src's bytes: a hard link (no bytes copied), a copy across filesystems."""
        dest = self.out_dir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.unlink()
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
        self.files.append(self.rel(dest))
        self.n_bytes += dest.stat().st_size
        return dest


def kept_rows(samples: pa.Table) -> list[dict]:
    """The rows with keep == true, by sample_id (the order every manifest is written in)."""
    rows = [r for r in samples.to_pylist() if r.get("keep") is True]
    return sorted(rows, key=lambda r: str(r["sample_id"]))


def _resolve(export_dir: Path, rel) -> Path | None:
    """The absolute path of an EXPORT-relative name (links are not followed: a manifest names
    the export's own file)."""
    if not rel:
        return None
    return Path(os.path.abspath(export_dir / rel))


def _image_problem(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, UnidentifiedImageError) as e:
        return f"does not open ({type(e).__name__})"
    return None if w > 0 and h > 0 else "is empty"


def references(export_dir: Path, row: dict, limit: int) -> tuple[tuple[Reference, ...], str | None]:
    """The sample's first `limit` references as RGB-on-white files, or why one cannot be used."""
    out = []
    for ref in (row.get("references") or [])[:max(0, limit)]:
        sid = ref.get("subject_id")
        rgb = ref.get("rgb_path")
        if not rgb:
            return (), f"reference {sid} has no rgb_path (an export writes subjects/<id>.rgb.png)"
        path = _resolve(export_dir, rgb)
        if not path.is_file():
            return (), f"reference file missing: {rgb}"
        bad = _image_problem(path)
        if bad:
            return (), f"reference file {rgb} {bad}"
        out.append(Reference(str(sid), path))
    return tuple(out), None


def _probe(clip: Path) -> tuple[int, int, float, int]:
    from ...media.decode import open_video
    container, stream = open_video(str(clip))
    with container:
        n = int(stream.frames or 0)
        if n <= 0:
            n = sum(1 for _ in container.decode(stream))
        return (int(stream.codec_context.width), int(stream.codec_context.height),
                float(stream.average_rate or 0), n)


def _clip_facts(row: dict, clip: Path) -> tuple[int, int, float, int]:
    """width, height, fps, n_frames of clip_path: the samples' values, the file's where null."""
    facts = (row.get("width"), row.get("height"), row.get("fps"), row.get("n_frames"))
    if any(v is None for v in facts):
        probed = _probe(clip)
        facts = tuple(p if v is None else v for v, p in zip(facts, probed))
    w, h, fps, n = facts
    return int(w), int(h), float(fps), int(n)


def collect(job: Job, rows: list[dict], ref_limit: int, preset_name: str, preset: dict) -> list[Entry]:
    """Entries for the rows whose clip (and first `ref_limit` references) exist and read; an
    error for each other row; a warning where the clip does not match the preset."""
    from ...media.decode import mp4_problem

    want_fps = float(need(preset, "fps", f"{WHERE}.presets.{preset_name}"))
    want_frames = int(need(preset, "frames", f"{WHERE}.presets.{preset_name}"))
    entries = []
    for row in rows:
        sid = str(row["sample_id"])
        caption = one_line(row.get("caption")) or ""
        clip = _resolve(job.export_dir, row.get("clip_path"))
        if clip is None:
            job.error(sid, "no clip_path")
            continue
        if not clip.is_file():
            job.error(sid, f"clip file missing: {row.get('clip_path')}")
            continue
        bad = mp4_problem(clip)
        if bad:
            job.error(sid, f"clip {row.get('clip_path')} {bad}")
            continue
        if not caption:
            job.error(sid, "no caption")
            continue
        refs, problem = references(job.export_dir, row, ref_limit)
        if problem:
            job.error(sid, problem)
            continue
        w, h, fps, n = _clip_facts(row, clip)
        if abs(fps - want_fps) > FPS_TOLERANCE or n != want_frames:
            job.warn(sid, f"clip is {fps:g} fps / {n} frames; the {job.trainer} preset {preset_name!r} trains at "
                          f"{want_fps:g} fps / {want_frames} frames (re-cut with export.clip.fps/frames)")
        entries.append(Entry(sid, caption, clip, w, h, fps, n, refs, len(row.get("references") or [])))
    return entries


def _preset(tcfg: dict, section: dict, trainer: str) -> tuple[str, dict]:
    name = need(section, "preset", f"{WHERE}.{trainer}")
    presets = need(tcfg, "presets", WHERE)
    if name not in presets:
        raise ValueError(f"{WHERE}.{trainer}.preset {name!r} is not one of {WHERE}.presets ({', '.join(sorted(presets))})")
    return str(name), presets[name]


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        text = repr(v)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)     # a TOML basic string: same escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def toml_text(general: dict, datasets: list[dict]) -> str:
    """A musubi-tuner dataset config: [general] and one [[datasets]] table per dict."""
    lines = ["# written by s2vforge export (docs/trainers.md)", "[general]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in general.items()]
    for ds in datasets:
        lines += ["", "[[datasets]]"] + [f"{k} = {_toml_value(v)}" for k, v in ds.items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the writers

def _write_videox_fun(job: Job, rows: list[dict], section: dict, preset_name: str, preset: dict) -> dict:
    """metadata.json: the JSON list ImageVideoControlDataset (enable_subject_info=True: the
    wan2.1_vace / wan2.2_vace_fun trainers) and AspectRatioBatchImageVideoSampler read."""
    max_refs = int(need(section, "max_refs", f"{WHERE}.videox-fun"))
    if not 0 <= max_refs <= VIDEOX_FUN_MAX_REFS:
        raise ValueError(f"{WHERE}.videox-fun.max_refs must be 0..{VIDEOX_FUN_MAX_REFS}: VideoX-Fun reads at most "
                         f"{VIDEOX_FUN_MAX_REFS} object_file_path images (got {max_refs})")
    out = []
    for e in collect(job, rows, max_refs, preset_name, preset):
        job.refs_written += len(e.refs)
        job.refs_dropped += e.n_refs - len(e.refs)
        out.append({
            "file_path": str(e.clip),                  # absolute: os.path.join(data_root, abs) is abs
            "text": e.caption,
            "type": "video",
            "width": e.width,                          # the bucket sampler's aspect without opening the file
            "height": e.height,
            "control_file_path": None,                 # read with [] (must be present); None = no control video
            "object_file_path": [str(r.path) for r in e.refs],   # opened as given: absolute
        })
    job.write_json("metadata.json", out)
    return {"manifest": job.rel(job.out_dir / "metadata.json"), "rows": len(out)}


def _write_diffsynth(job: Job, rows: list[dict], section: dict, preset_name: str, preset: dict) -> dict:
    """metadata.csv (video, prompt, vace_reference_image) relative to --dataset_base_path EXPORT,
    read by UnifiedDataset; references letterboxed to the training size so its centre crop
    (ImageCropAndResize) keeps all of the subject. Its Wan trainer passes one reference image
    (data["vace_reference_image"][0]), so a row carries the sample's first reference, and a
    sample with none is skipped (an empty cell would stop the run)."""
    where = f"{WHERE}.presets.{preset_name}"
    box = (int(need(preset, "width", where)), int(need(preset, "height", where)))
    out, written = [], set()
    for e in collect(job, rows, 1, preset_name, preset):
        if not e.refs:
            job.skipped["no_reference"] += 1
            continue
        ref = e.refs[0]
        name = f"refs/{ref.subject_id}.png"
        if name not in written:
            job.write_bytes(name, letterboxed_png(ref.path, box))
            written.add(name)
        job.refs_written += 1
        job.refs_dropped += e.n_refs - 1
        out.append([job.rel_or_abs(e.clip), e.caption, job.rel(job.out_dir / name)])
    job.write_text("metadata.csv", _csv_text(["video", "prompt", "vace_reference_image"], out))
    return {"manifest": job.rel(job.out_dir / "metadata.csv"), "rows": len(out), "reference_size": list(box)}


def _write_finetrainers(job: Job, rows: list[dict], section: dict, preset_name: str, preset: dict) -> dict:
    """prompts.txt + videos.txt (VideoFileCaptionFileListDataset: line i of one is line i of the
    other, video paths relative to the folder) and training.json, the --dataset_config naming
    the folder as data_root. The folder holds no .parquet/.tar/metadata.* file, which would make
    _initialize_local_dataset pick another reader."""
    where = f"{WHERE}.presets.{preset_name}"
    entries = collect(job, rows, 0, preset_name, preset)
    prompts = "".join(e.caption + "\n" for e in entries)
    videos = "".join(os.path.relpath(e.clip, job.out_dir).replace(os.sep, "/") + "\n" for e in entries)
    job.write_text("prompts.txt", prompts)
    job.write_text("videos.txt", videos)
    bucket = [int(need(preset, "frames", where)), int(need(preset, "height", where)), int(need(preset, "width", where))]
    job.write_json("training.json", {"datasets": [{
        "data_root": str(job.out_dir),
        "dataset_type": "video",
        "video_resolution_buckets": [bucket],
        "reshape_mode": str(need(section, "reshape_mode", f"{WHERE}.finetrainers")),
    }]})
    return {"manifest": job.rel(job.out_dir / "training.json"), "rows": len(entries)}


OPENSORA_COLUMNS = ["path", "text", "num_frames", "height", "width", "aspect_ratio", "resolution", "fps"]


def _write_opensora(job: Job, rows: list[dict], section: dict, preset_name: str, preset: dict) -> dict:
    """metadata.csv with the columns Open-Sora's docs/train.md requires and its loader reads
    (VideoTextDataset: path, text; the bucket sampler: num_frames, height, width, fps;
    aspect_ratio = height / width and resolution = height * width as scripts/cnv/meta.py
    computes them). `path` is opened as given: absolute."""
    out = []
    for e in collect(job, rows, 0, preset_name, preset):
        out.append([str(e.clip), e.caption, e.n_frames, e.height, e.width, e.height / e.width,
                    e.height * e.width, round(e.fps, 3)])
    job.write_text("metadata.csv", _csv_text(OPENSORA_COLUMNS, out))
    return {"manifest": job.rel(job.out_dir / "metadata.csv"), "rows": len(out)}


def _middle_frame_png(clip: Path, n_frames: int) -> bytes | None:
    from PIL import Image
    from ...media.decode import iter_frames
    want = max(0, n_frames // 2)
    last = None
    for i, _, rgb in iter_frames(str(clip)):
        last = rgb
        if i >= want:
            break
    if last is None:
        return None
    buf = io.BytesIO()
    Image.fromarray(last, mode="RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _write_musubi(job: Job, rows: list[dict], section: dict, preset_name: str, preset: dict) -> dict:
    """dataset.toml + videos/<id>.mp4 beside videos/<id>.txt (VideoDirectoryDatasource: the
    caption file is the video's name with caption_extension). Its video datasets take control
    videos only, so references go to a second config when subject_images is set: an image
    dataset with control images (ImageDirectoryDatasource: images/<id>.png, its caption
    images/<id>.txt, controls control/<id>_<k>.png), the layout its FLUX.2 / Qwen-Image-Edit-2509
    trainers read several reference images from; the target image is the clip's middle frame."""
    sec = f"{WHERE}.musubi"
    where = f"{WHERE}.presets.{preset_name}"
    resolution = [int(need(preset, "width", where)), int(need(preset, "height", where))]
    general = {"resolution": resolution, "caption_extension": ".txt",
               "batch_size": int(need(section, "batch_size", sec)),
               "enable_bucket": bool(need(section, "enable_bucket", sec)), "bucket_no_upscale": False}
    entries = collect(job, rows, 0, preset_name, preset)
    for e in entries:
        job.link(e.clip, f"videos/{e.sample_id}{e.clip.suffix}")
        job.write_text(f"videos/{e.sample_id}.txt", e.caption + "\n")
    out_abs = job.out_dir
    video_ds = {"video_directory": str(out_abs / "videos"), "cache_directory": str(out_abs / "cache" / "videos"),
                "target_frames": [int(need(preset, "frames", where))],
                "frame_extraction": str(need(section, "frame_extraction", sec))}
    job.write_text("dataset.toml", toml_text(general, [video_ds]))
    summary = {"manifest": job.rel(job.out_dir / "dataset.toml"), "rows": len(entries)}
    if bool(need(section, "subject_images", sec)):
        summary.update(_write_musubi_subject_images(job, rows, entries, general, section))
    return summary


def _write_musubi_subject_images(job: Job, rows: list[dict], entries: list[Entry], general: dict,
                                 section: dict) -> dict:
    limit = int(need(section, "max_control_images", f"{WHERE}.musubi"))
    by_id = {str(r["sample_id"]): r for r in rows}
    n = 0
    for e in entries:
        refs, problem = references(job.export_dir, by_id[e.sample_id], limit)
        if problem:
            job.error(e.sample_id, f"subject_images: {problem}")
            continue
        if not refs:
            job.skipped["subject_images_no_reference"] += 1
            continue
        frame = _middle_frame_png(e.clip, e.n_frames)
        if frame is None:
            job.error(e.sample_id, "subject_images: no frame decodes")
            continue
        job.write_bytes(f"subject_images/images/{e.sample_id}.png", frame)
        job.write_text(f"subject_images/images/{e.sample_id}.txt", e.caption + "\n")
        for k, ref in enumerate(refs):
            job.link(ref.path, f"subject_images/control/{e.sample_id}_{k}.png")
        job.refs_written += len(refs)
        job.refs_dropped += e.n_refs - len(refs)
        n += 1
    base = job.out_dir / "subject_images"
    image_ds = {"image_directory": str(base / "images"), "control_directory": str(base / "control"),
                "cache_directory": str(base / "cache")}
    job.write_text("dataset_subject_images.toml", toml_text(general, [image_ds]))
    return {"subject_images_manifest": job.rel(job.out_dir / "dataset_subject_images.toml"), "subject_images": n}


_WRITERS = {"videox-fun": _write_videox_fun, "diffsynth": _write_diffsynth, "finetrainers": _write_finetrainers,
            "opensora": _write_opensora, "musubi": _write_musubi}


def write_trainer(export_dir: Path, samples: pa.Table, cfg: dict, trainer: str) -> dict:
    """Write EXPORT/trainers/<trainer>/ from the kept samples; a JSON-able summary (rows,
    references written and dropped, errors and warnings per sample, files, bytes).
    `cfg` is the recipe's export section (its `trainers` table)."""
    if trainer not in TRAINERS:
        raise ValueError(f"unknown trainer {trainer!r}: one of {', '.join(TRAINERS)}")
    tcfg = need(cfg, "trainers", "export")
    section = need(tcfg, trainer, WHERE)
    preset_name, preset = _preset(tcfg, section, trainer)
    export_dir = Path(os.path.abspath(export_dir))
    out_dir = export_dir / "trainers" / trainer
    out_dir.mkdir(parents=True, exist_ok=True)
    job = Job(trainer, export_dir, out_dir)
    rows = kept_rows(samples)
    summary = _WRITERS[trainer](job, rows, section, preset_name, preset)
    return {
        "trainer": trainer,
        "dir": job.rel(out_dir),
        "preset": preset_name,
        "samples": len(rows),
        **summary,
        "references": job.refs_written,
        "references_dropped": job.refs_dropped,
        "skipped": dict(sorted(job.skipped.items())),
        "errors": sorted(job.errors, key=lambda d: (d["sample_id"], d["reason"])),
        "warnings": sorted(job.warnings, key=lambda d: (d["sample_id"], d["reason"])),
        "files": len(job.files),
        "bytes": job.n_bytes,
    }
