"""Each trainer layout read back the way that trainer reads it.

Every reader below re-implements, in a few lines, the parse of the trainer's own loader at the
commit docs/trainers.md names (file and function cited on each), then checks every path exists
and every key is on every row. Fixture: trainer_export.py (s0 no ref, s1 one, s2 five, s3
keep=false, s4 a newline caption and a 25 fps clip, s5 a missing clip).
"""
from __future__ import annotations

import csv
import glob
import json
import os
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from s2vforge.corpus.synth import read_frames, video_info
from s2vforge.stages.export.trainers import write_trainer
from trainer_export import CLIP_SIZE, NEWLINE_CAPTION_ONE_LINE, SAMPLES, cfg, samples_table

KEPT_WITH_CLIP = ["s0", "s1", "s2", "s4"]
REFS = {r["sample_id"]: [x["subject_id"] for x in r["references"]] for r in SAMPLES}
CAPTION = {r["sample_id"]: " ".join(r["caption"].split()) for r in SAMPLES}


def _stem(path: str) -> str:
    return Path(path).stem


def _clip_error_only(summary: dict) -> None:
    assert summary["errors"] == [{"sample_id": "s5", "reason": "clip file missing: clips/s5.mp4"}]


# ----------------------------------------------------------------------------- VideoX-Fun

def read_videox_fun(ann_path: str, data_root: str | None) -> list[dict]:
    """videox_fun/data/dataset_image_video.py ImageVideoControlDataset.__init__ (json.load of a
    .json ann_path) and get_batch (video branch, enable_subject_info=True: file_path and
    control_file_path joined to data_root, object_file_path opened as given, at most 4);
    videox_fun/data/bucket_sampler.py AspectRatioBatchImageVideoSampler.__iter__ (width/height)."""
    assert ann_path.endswith(".json")
    with open(ann_path) as f:
        dataset = json.load(f)
    out = []
    for info in dataset:
        assert info.get("type", "image") == "video"
        ratio = int(info["height"]) / int(info["width"])
        video_dir = info["file_path"] if data_root is None else os.path.join(data_root, info["file_path"])
        control = info["control_file_path"]            # [] access: a missing key fails every retry
        control_path = None if control is None else (control if data_root is None else os.path.join(data_root, control))
        subject_paths = list(info.get("object_file_path", []))
        subjects = [Image.open(p) for p in subject_paths[:min(len(subject_paths), 4)]]
        out.append({"video": video_dir, "text": info["text"], "ratio": ratio, "control": control_path,
                    "subject_paths": subject_paths, "subjects": subjects, "keys": sorted(info)})
    return out


def padding_image(image: Image.Image, new_width: int, new_height: int) -> Image.Image:
    """videox_fun/data/utils.py padding_image: fit inside, paste centred on a white RGB canvas."""
    canvas = Image.new("RGB", (new_width, new_height), (255, 255, 255))
    ar = image.width / image.height
    if ar > new_width / new_height:
        w, h = new_width, int(new_width / ar)
    else:
        w, h = int(new_height * ar), new_height
    canvas.paste(image.resize((w, h)), ((new_width - w) // 2, (new_height - h) // 2))
    return canvas


def test_videox_fun_reads_every_row_with_at_most_four_absolute_references(export_dir):
    summary = write_trainer(export_dir, samples_table(), cfg(), "videox-fun")
    ann = str(export_dir / summary["manifest"])
    # relative-path mode (--train_data_dir EXPORT) and absolute mode (DATASET_NAME="") both resolve
    for root in (str(export_dir), None):
        rows = read_videox_fun(ann, root)
        assert [_stem(r["video"]) for r in rows] == KEPT_WITH_CLIP
        for r in rows:
            assert os.path.isfile(r["video"]) and os.path.isabs(r["video"])
            assert r["keys"] == ["control_file_path", "file_path", "height", "object_file_path", "text", "type", "width"]
            assert r["control"] is None
    rows = {(_stem(r["video"])): r for r in read_videox_fun(ann, str(export_dir))}
    for sid, r in rows.items():
        assert r["text"] == CAPTION[sid] and "\n" not in r["text"]
        assert r["ratio"] == pytest.approx(CLIP_SIZE[1] / CLIP_SIZE[0])
        info = video_info(r["video"])
        assert (info["width"], info["height"]) == CLIP_SIZE
        assert all(os.path.isabs(p) and os.path.isfile(p) for p in r["subject_paths"])
        assert [Path(p).name for p in r["subject_paths"]] == [f"{s}.rgb.png" for s in REFS[sid][:4]]
        assert all(im.mode == "RGB" for im in r["subjects"])          # opened without convert: must be RGB
    assert rows["s4"]["text"] == NEWLINE_CAPTION_ONE_LINE
    assert len(rows["s2"]["subject_paths"]) == 4 and rows["s0"]["subject_paths"] == []
    assert summary["rows"] == 4 and summary["references"] == 1 + 4 + 2 and summary["references_dropped"] == 1
    _clip_error_only(summary)
    assert [w["sample_id"] for w in summary["warnings"]] == ["s4"]          # 25 fps / 40 frames vs 16 / 81


def test_videox_fun_padding_of_our_reference_is_white_where_the_rgba_would_leak(export_dir):
    """Its padding_image pastes the image into RGB with no mask: an RGBA crop's transparent
    pixels would show the photo behind the subject; the RGB-on-white file shows white."""
    write_trainer(export_dir, samples_table(), cfg(), "videox-fun")
    rgb = Image.open(export_dir / "subjects" / "r_tall.rgb.png")
    rgba = Image.open(export_dir / "subjects" / "r_tall.png")
    ours = np.asarray(padding_image(rgb, 832, 480))
    leaked = np.asarray(padding_image(rgba, 832, 480))
    x0 = (832 - int(480 * rgb.width / rgb.height)) // 2
    corner = (2, x0 + 2)                                   # inside the pasted crop, outside the ellipse
    assert tuple(ours[corner]) == (255, 255, 255)
    assert tuple(leaked[corner]) != (255, 255, 255)


# ----------------------------------------------------------------------------- DiffSynth-Studio

def read_diffsynth(metadata_path: str, base_path: str, data_file_keys=("video", "vace_reference_image")) -> list[dict]:
    """diffsynth/core/data/unified_dataset.py UnifiedDataset.load_metadata (a non-.json/.jsonl
    path: pandas.read_csv, rows as dicts) and __getitem__ (each data_file_key present in the row
    goes through ToAbsolutePath(base_path) = os.path.join; default_video_operator routes only
    str values); examples/wanvideo/model_training/train.py parse_extra_inputs takes
    data["vace_reference_image"][0] (one image)."""
    metadata = pd.read_csv(metadata_path)
    data = [metadata.iloc[i].to_dict() for i in range(len(metadata))]
    for row in data:
        for key in data_file_keys:
            assert key in row and isinstance(row[key], str), (key, row)     # NaN/list: "Unsupported data"
            row[key] = os.path.join(base_path, row[key])
        assert isinstance(row["prompt"], str)
    return data


def crop_and_resize(image: Image.Image, target_height: int, target_width: int) -> Image.Image:
    """diffsynth/core/data/operators.py ImageCropAndResize.crop_and_resize (scale to cover, then
    centre crop), with PIL's bilinear resize in place of torchvision's on a PIL image."""
    width, height = image.size
    scale = max(target_width / width, target_height / height)
    image = image.resize((round(width * scale), round(height * scale)), Image.Resampling.BILINEAR)
    left, top = (image.width - target_width) // 2, (image.height - target_height) // 2
    return image.crop((left, top, left + target_width, top + target_height))


def _subject_pixels(img: np.ndarray) -> int:
    return int((img < 250).any(axis=2).sum())


def _content_extent(img: np.ndarray) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 (inclusive) of the non-white pixels."""
    ys, xs = np.nonzero((img < 250).any(axis=2))
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def test_diffsynth_metadata_rows_and_letterboxed_references_survive_its_crop(export_dir):
    summary = write_trainer(export_dir, samples_table(), cfg(), "diffsynth")
    rows = read_diffsynth(str(export_dir / summary["manifest"]), str(export_dir))
    assert list(pd.read_csv(export_dir / summary["manifest"]).columns) == ["video", "prompt", "vace_reference_image"]
    assert [_stem(r["video"]) for r in rows] == ["s1", "s2", "s4"]         # s0 has no reference
    assert summary["skipped"] == {"no_reference": 1}
    _clip_error_only(summary)
    assert summary["references"] == 3 and summary["references_dropped"] == (5 - 1) + (2 - 1)
    for r in rows:
        sid = _stem(r["video"])
        assert os.path.isfile(r["video"]) and r["prompt"] == CAPTION[sid]
        assert Path(r["vace_reference_image"]).name == f"{REFS[sid][0]}.png"
        ref = Image.open(r["vace_reference_image"]).convert("RGB")           # LoadImage(convert_RGB=True)
        assert ref.size == (832, 480)
        cropped = crop_and_resize(ref, 480, 832)
        assert np.array_equal(np.asarray(cropped), np.asarray(ref))           # its crop cuts nothing
    wide = np.asarray(Image.open(export_dir / "trainers/diffsynth/refs/r_wide.png"))
    x0, _, x1, _ = _content_extent(wide)
    assert x0 <= 2 and x1 >= 829                                              # the whole width of the subject
    tall = np.asarray(Image.open(export_dir / "trainers/diffsynth/refs/r_tall.png"))
    _, y0, _, y1 = _content_extent(tall)
    assert y0 <= 2 and y1 >= 477
    # the same crop of the reference as it is: a 420x80 crop is scaled to 2520x480 and cut to
    # its middle third, so most of the subject never reaches the model
    raw = Image.open(export_dir / "subjects/r_wide.rgb.png").convert("RGB")
    scale = max(832 / raw.width, 480 / raw.height)
    covered = raw.resize((round(raw.width * scale), round(raw.height * scale)), Image.Resampling.BILINEAR)
    kept = _subject_pixels(np.asarray(crop_and_resize(raw, 480, 832))) / _subject_pixels(np.asarray(covered))
    assert kept < 0.5


# ----------------------------------------------------------------------------- finetrainers

def read_finetrainers(dataset_config: str) -> list[dict]:
    """finetrainers/trainer/sft_trainer/trainer.py (json.load(...)["datasets"], data_root,
    dataset_type); finetrainers/data/dataset.py _initialize_local_dataset (metadata.* first,
    then any .tar/.parquet under the root means webdataset, then caption-file pairs, then file
    lists), _has_data_caption_file_pairs, VideoFileCaptionFileListDataset.__init__ (splitlines,
    videos joined to the root) and IterableDatasetPreprocessingWrapper's keyword arguments."""
    with open(dataset_config) as f:
        configs = json.load(f)["datasets"]
    out = []
    for config in configs:
        root = Path(config.pop("data_root"))
        assert config.pop("dataset_type") == "video"
        assert config.pop("dataset_file", None) is None
        assert set(config) <= {"id_token", "image_resolution_buckets", "video_resolution_buckets", "rename_columns",
                               "drop_columns", "reshape_mode", "remove_common_llm_caption_prefixes"}
        assert config["reshape_mode"] in ("center_crop", "random_crop", "bicubic")
        assert not any((root / m).exists() for m in ("metadata.json", "metadata.jsonl", "metadata.csv"))
        assert not [p for p in root.rglob("*") if p.name.endswith((".tar", ".parquet"))]
        for caption_file in glob.glob(os.path.join(root, "*.txt")):
            for ext in ("jpg", "jpeg", "png", "mp4", "mov"):
                assert not Path(caption_file).with_suffix(f".{ext}").exists()
        caption_files = [f for f in ("caption.txt", "captions.txt", "prompt.txt", "prompts.txt") if (root / f).exists()]
        video_files = [f for f in ("video.txt", "videos.txt") if (root / f).exists()]
        assert len(caption_files) == 1 and len(video_files) == 1
        with open((root / caption_files[0]).as_posix(), "r") as f:
            captions = f.read().splitlines()
        with open((root / video_files[0]).as_posix(), "r") as f:
            videos = [(root / v).as_posix() for v in f.read().splitlines()]
        assert len(captions) == len(videos)
        out += [{"caption": c, "video": v, "buckets": config["video_resolution_buckets"]} for c, v in zip(captions, videos)]
    return out


def test_finetrainers_file_lists_pair_line_by_line(export_dir):
    summary = write_trainer(export_dir, samples_table(), cfg(), "finetrainers")
    rows = read_finetrainers(str(export_dir / summary["manifest"]))
    assert [_stem(r["video"]) for r in rows] == KEPT_WITH_CLIP
    for r in rows:
        sid = _stem(r["video"])
        assert os.path.samefile(r["video"], export_dir / "clips" / f"{sid}.mp4")
        assert r["caption"] == CAPTION[sid]
        assert r["buckets"] == [[81, 480, 832]]                              # (frames, height, width) of the preset
    assert rows[3]["caption"] == NEWLINE_CAPTION_ONE_LINE                    # U+2028 would have split the line
    assert summary["rows"] == 4
    _clip_error_only(summary)


# ----------------------------------------------------------------------------- Open-Sora

def read_opensora(data_path: str) -> pd.DataFrame:
    """opensora/datasets/utils.py read_file (.csv: pandas.read_csv); the columns docs/train.md
    requires; opensora/datasets/datasets.py VideoTextDataset.get_video opens sample["path"] as
    given; opensora/datasets/sampler.py apply reads num_frames, height, width, fps."""
    assert data_path.endswith(".csv")
    data = pd.read_csv(data_path)
    required = ["path", "text", "num_frames", "height", "width", "aspect_ratio", "resolution", "fps"]
    assert list(data.columns) == required
    return data


def test_opensora_csv_has_its_columns_and_the_files_true_facts(export_dir):
    summary = write_trainer(export_dir, samples_table(), cfg(), "opensora")
    data = read_opensora(str(export_dir / summary["manifest"]))
    assert [_stem(p) for p in data["path"]] == KEPT_WITH_CLIP
    for i in range(len(data)):
        sample = data.iloc[i].to_dict()
        path = sample["path"]
        assert os.path.isabs(path) and os.path.isfile(path)
        sid = _stem(path)
        decoded = read_frames(path)
        assert int(sample["num_frames"]) == len(decoded)                      # counted by decoding
        assert (int(sample["height"]), int(sample["width"])) == decoded[0].shape[:2]
        assert sample["fps"] == pytest.approx(video_info(path)["fps"], abs=1e-3)
        assert sample["aspect_ratio"] == pytest.approx(sample["height"] / sample["width"])
        assert int(sample["resolution"]) == sample["height"] * sample["width"]
        assert sample["text"] == CAPTION[sid]
    assert data.set_index(data["path"].map(_stem)).loc["s4", "num_frames"] == 40
    assert len(summary["warnings"]) == 4                                      # Open-Sora 2.0 trains at 24 fps / 129
    _clip_error_only(summary)


# ----------------------------------------------------------------------------- musubi-tuner

ASCENDABLE = {"caption_extension": str, "batch_size": int, "num_repeats": int, "resolution": list,
              "enable_bucket": bool, "bucket_no_upscale": bool}
IMAGE_DISTINCT = {"image_directory": str, "image_jsonl_file": str, "cache_directory": str, "control_directory": str,
                  "multiple_target": bool, "fp_latent_window_size": int, "fp_1f_clean_indices": list,
                  "fp_1f_target_index": int, "fp_1f_no_post": bool, "no_resize_control": bool,
                  "control_resolution": list}
VIDEO_DISTINCT = {"video_directory": str, "video_jsonl_file": str, "control_directory": str, "target_frames": list,
                  "frame_extraction": str, "frame_stride": int, "frame_sample": int, "max_frames": int,
                  "cache_directory": str, "source_fps": float, "fp_latent_window_size": int}
VIDEO_EXTENSIONS = [".mp4", ".webm", ".avi", ".mkv", ".mov", ".flv", ".wmv", ".m4v", ".mpg", ".mpeg"]
IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg", ".webp", ".bmp"]


def _check_schema(table: dict, schema: dict) -> None:
    for k, v in table.items():
        assert k in schema, k                                    # voluptuous Schema: an unknown key is an error
        assert type(v) is schema[k] or (schema[k] is list and isinstance(v, list)), (k, v)


def read_musubi_config(path: str) -> dict:
    """src/musubi_tuner/dataset/config_utils.py ConfigSanitizer: general = the ascendable schema;
    a dataset with video_directory/video_jsonl_file validates against the video schema, any
    other against the image schema (Schema without extra keys)."""
    with open(path, "rb") as f:
        config = tomllib.load(f)
    assert set(config) <= {"general", "datasets"}
    _check_schema(config.get("general", {}), ASCENDABLE)
    for ds in config["datasets"]:
        is_video = "video_directory" in ds or "video_jsonl_file" in ds
        _check_schema(ds, {**ASCENDABLE, **(VIDEO_DISTINCT if is_video else IMAGE_DISTINCT)})
    return config


def read_musubi_videos(video_directory: str, caption_extension: str) -> list[tuple[str, str]]:
    """src/musubi_tuner/dataset/media_utils.py glob_videos (every extension, sorted) and
    datasources.py VideoDirectoryDatasource.get_caption (splitext(video) + caption_extension, strip)."""
    paths = []
    for ext in VIDEO_EXTENSIONS:
        paths.extend(glob.glob(os.path.join(glob.escape(video_directory), "*" + ext)))
    out = []
    for video_path in sorted(set(paths)):
        with open(os.path.splitext(video_path)[0] + caption_extension, "r", encoding="utf-8") as f:
            out.append((video_path, f.read().strip()))
    return out


def read_musubi_images(image_directory: str, control_directory: str, caption_extension: str) -> dict[str, list[str]]:
    """datasources.py ImageDirectoryDatasource.__init__: images that have a caption file; each
    one's controls = control images named <stem>.<ext> or <stem>_<digits>.<ext>, sorted by the
    digits; an image without a control stops the run."""
    images = [p for ext in IMAGE_EXTENSIONS for p in glob.glob(os.path.join(glob.escape(image_directory), "*" + ext))]
    images = [p for p in images if os.path.exists(os.path.splitext(p)[0] + caption_extension)]
    controls = {p for ext in IMAGE_EXTENSIONS for p in glob.glob(os.path.join(glob.escape(control_directory), "*" + ext))}
    out = {}
    for image in sorted(images, key=lambda p: len(os.path.basename(p)), reverse=True):
        stem = os.path.splitext(os.path.basename(image))[0]
        found = [p for p in controls if os.path.basename(p).startswith((stem + ".", stem + "_"))]
        controls -= set(found)
        assert found, f"no control image for {image}"
        found.sort(key=lambda p: 0 if os.path.splitext(os.path.basename(p))[0] == stem
                   else int(os.path.splitext(os.path.basename(p))[0].rsplit("_", 1)[-1]) + 1)
        out[image] = found
    return out


def test_musubi_video_dataset_and_subject_image_dataset(export_dir):
    summary = write_trainer(export_dir, samples_table(), cfg(), "musubi")
    config = read_musubi_config(str(export_dir / summary["manifest"]))
    general, (video_ds,) = config["general"], config["datasets"]
    assert general["resolution"] == [832, 480] and general["caption_extension"] == ".txt"
    assert video_ds["target_frames"] == [81] and all(t % 4 == 1 for t in video_ds["target_frames"])
    assert video_ds["frame_extraction"] in ("head", "chunk", "slide", "uniform", "full")
    assert video_ds["cache_directory"] != video_ds["video_directory"]
    videos = read_musubi_videos(video_ds["video_directory"], general["caption_extension"])
    assert [_stem(v) for v, _ in videos] == KEPT_WITH_CLIP
    for video, caption in videos:
        sid = _stem(video)
        assert Path(video).read_bytes() == (export_dir / "clips" / f"{sid}.mp4").read_bytes()
        assert caption == CAPTION[sid]
    _clip_error_only(summary)

    config = read_musubi_config(str(export_dir / summary["subject_images_manifest"]))
    (image_ds,) = config["datasets"]
    pairs = read_musubi_images(image_ds["image_directory"], image_ds["control_directory"],
                               config["general"]["caption_extension"])
    assert sorted(_stem(p) for p in pairs) == ["s1", "s2", "s4"]
    for image, controls in pairs.items():
        sid = _stem(image)
        expected = REFS[sid][:3]
        assert [Path(c).read_bytes() for c in controls] == \
            [(export_dir / "subjects" / f"{r}.rgb.png").read_bytes() for r in expected]
        frames = read_frames(export_dir / "clips" / f"{sid}.mp4")
        assert np.array_equal(np.asarray(Image.open(image).convert("RGB")), frames[len(frames) // 2])
    assert summary["subject_images"] == 3 and summary["skipped"] == {"subject_images_no_reference": 1}


def test_opensora_csv_quotes_a_caption_with_commas_and_quotes(export_dir):
    rows = [dict(r) for r in SAMPLES]
    rows[0] = {**rows[0], "caption": 'A man, smiling, says "hi", twice'}
    summary = write_trainer(export_dir, samples_table(rows), cfg(), "opensora")
    data = read_opensora(str(export_dir / summary["manifest"]))
    assert data.iloc[0]["text"] == 'A man, smiling, says "hi", twice'
    with open(export_dir / summary["manifest"], newline="") as f:
        assert len(list(csv.reader(f))) == 1 + 4
