"""The default recipe (recipes/openhumanvid.yaml) is the only source of default values.

(a) the stage modules carry no second copy of the defaults (no module-level DEFAULT_* dicts, no
    defaults on the parameters a recipe sets);
(b) every key the default recipe's `subjects`, `pairs`, `crop` and `scorer_params` sections
    gained is read by code: without it the consumer raises and names it, and changing its value
    in a recipe changes what the code does.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import s2vforge
from s2vforge.recipes import load_recipe
from s2vforge.stages.recipe_keys import MissingRecipeKey

STAGES = Path(s2vforge.__file__).resolve().parent / "stages"
# the pipelines are redesigned separately (their DEFAULT_* dicts go with that work); engine/ is
# not under stages/
EXCLUDED = {"subjects/pipeline.py", "pairs/pipeline.py"}
# the stage modules whose defaults moved into the recipe
MOVED = ["subjects/detect.py", "subjects/boxrules.py", "subjects/masks.py", "subjects/quality.py",
         "subjects/phrases.py", "subjects/facetrack.py", "pairs/embed.py", "pairs/verify.py", "pairs/bank.py",
         "pairs/diversity.py", "pairs/candidates.py", "pairs/tracks.py", "pairs/cluster.py", "scores/__init__.py",
         "scores/aesthetic.py", "scores/blur.py", "scores/brisque.py", "scores/luminance.py", "scores/motion.py",
         "scores/nsfw.py", "crop.py", "filters.py"]

DEFAULT_DICT = re.compile(r"^(DEFAULT_[A-Z_]+)\s*(?::[^=\n]*)?[:=]\s*\{", re.M)
DEFAULT_NAME = re.compile(r"^(DEFAULT_[A-Z_]+)\s*(?::[^=\n]*)?=", re.M)


def default_recipe() -> dict:
    return load_recipe(None)


# ----------------------------------------------------------------------------- (a) no second copy

def test_no_module_level_default_dicts_in_stages():
    hits = []
    for path in sorted(STAGES.rglob("*.py")):
        rel = path.relative_to(STAGES).as_posix()
        if rel in EXCLUDED:
            continue
        hits += [f"stages/{rel}: {m.group(1)}" for m in DEFAULT_DICT.finditer(path.read_text())]
    assert hits == [], "defaults belong in recipes/openhumanvid.yaml, not in code"


def test_no_default_constants_left_in_the_moved_modules():
    for rel in MOVED:
        assert (STAGES / rel).is_file(), rel
    hits = [f"stages/{rel}: {m.group(1)}" for rel in MOVED for m in DEFAULT_NAME.finditer((STAGES / rel).read_text())]
    assert hits == []


def _keyword_consumers():
    from s2vforge.stages import crop
    from s2vforge.stages.pairs import bank, cluster, diversity, embed, tracks, verify
    from s2vforge.stages.scores import aesthetic
    from s2vforge.stages.subjects import boxrules, facetrack, masks, phrases, quality
    return [
        (crop.detect_crop, ["cfg"]),
        (crop.detect_black_borders, ["threshold", "max_spread", "min_contrast", "edge_noise", "min_run"]),
        (crop.detect_text_band, ["band_region", "min_score", "min_chars", "pad"]),
        (crop.is_text, ["min_score", "min_chars"]),
        (masks.segment, ["cfg"]),
        (masks.grabcut_mask, list(masks.GRABCUT_KEYS.values())),
        (masks.selfie_mask, list(masks.SELFIE_KEYS.values())),
        (masks.clean_mask, ["min_component_share", "max_hole_share"]),
        (masks.sam2_mask, ["model_dir", "device"]),
        (quality.crop_quality, ["cfg"]),
        (quality.fill_outside, ["sigma_frac"]),
        (facetrack.longest_face_segment, ["cfg"]),
        (facetrack.track_faces, ["sim_threshold", "min_face_px", "max_faces_per_frame"]),
        (phrases.extract_phrases, ["backend"]),
        (boxrules.apply_box_rules, ["rules"]),
        (verify.verify_geometric, ["min_inliers", "ratio", "max_side"]),
        (verify.verify_face_agreement, ["max_distance"]),
        (verify.verify_text_match, ["min_ratio"]),
        (verify.VlmVerifier.__init__, ["long_side"]),
        (bank.IdentityBank.create, list(bank.BANK_OPTIONS)),
        (bank.IdentityBank.open_or_create, list(bank.BANK_OPTIONS)),
        (cluster.cluster_identities, ["method", "threshold"]),
        (embed.category_settings, ["cfg"]),
        (embed.embedder_key, ["cfg"]),
        (embed.embedder_for, ["cfg"]),
        (embed.build_embedder, ["cfg"]),
        (embed.reuses_face_rows, ["cfg"]),
        (diversity.background_embedder, ["cfg"]),
        (diversity.Dinov2Embedder.__init__, ["model", "device", "dtype", "long_side"]),
        (tracks.attach_face_rows, ["cfg"]),
        (aesthetic.load_predictor, ["clip_dir", "mlp_path", "device", "dtype"]),
    ]


def test_recipe_set_parameters_have_no_default_in_code():
    from s2vforge.stages.scores import SCORERS, required_params
    from s2vforge.stages.subjects.boxrules import BoxRules
    with_default = []
    for fn, names in _keyword_consumers():
        params = inspect.signature(fn).parameters
        for n in names:
            assert n in params, (fn.__qualname__, n)
            if params[n].default is not inspect.Parameter.empty:
                with_default.append(f"{fn.__module__}.{fn.__qualname__}({n}={params[n].default!r})")
    with_default += [f"BoxRules.{f.name}" for f in dataclasses.fields(BoxRules)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    params = default_recipe()["scorer_params"]
    for name, scorer in SCORERS.items():
        assert set(required_params(scorer)) == set(params[name]), name
    assert with_default == []


# ----------------------------------------------------------------------------- (b) every key is read

def _drop(section: dict, dotted: str) -> dict:
    """A copy of the merged section with `dotted` (a key path inside it) removed."""
    import copy
    out = copy.deepcopy(section)
    *parents, last = dotted.split(".")
    node = out
    for p in parents:
        node = node[p]
    del node[last]
    return out


def _fake_frames():
    return SimpleNamespace(rgb=[np.zeros((8, 8, 3), np.uint8)])


def _set_present(section: dict, **values) -> dict:
    """`section` with the given keys replaced, only where they are still there (a dropped key stays dropped)."""
    return {**section, **{k: v for k, v in values.items() if k in section}}


def _consume_subjects(sub: dict, key: str) -> None:
    """Call the code that reads subjects.<key> with the (partial) subjects section `sub`."""
    from s2vforge.backends.errors import BackendUnavailable
    from s2vforge.stages.subjects.boxrules import BoxRules
    from s2vforge.stages.subjects.detect import load_detectors
    from s2vforge.stages.subjects.facetrack import longest_face_segment
    from s2vforge.stages.subjects.masks import segment
    from s2vforge.stages.subjects.quality import crop_quality
    section, _, leaf = key.partition(".")
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    if section == "detect":        # no detector is loaded: every setting is checked first
        load_detectors(_set_present(sub["detect"], face="none", person="none", objects="none"))
    elif section == "boxes":
        BoxRules.from_recipe(sub["boxes"])
    elif section == "masks":
        masks = sub["masks"]
        if leaf in ("sam2_model_dir", "device"):
            masks = {**masks, "backend": "sam2"}
        category = "person" if leaf.startswith("selfie") else "object"
        try:
            segment(img, (16, 16, 48, 48), category, masks)
        except BackendUnavailable:     # no SAM 2 weights here: the settings were read before
            pass
    elif section == "quality":
        rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
        quality = _set_present(sub["quality"], brisque=False)
        quality["aesthetic_model"] = _set_present(quality.get("aesthetic_model", {}), clip_dir="/nonexistent/clip")
        if "aesthetic_model" not in sub["quality"]:
            del quality["aesthetic_model"]
        crop_quality(rgba, (0, 0, 64, 64), (128, 128), quality)
    elif section == "face_track":
        fake = SimpleNamespace(detect=lambda frame: [], embed=lambda frame, face: None)
        longest_face_segment([], [], detector=fake, embedder=fake, cfg=sub["face_track"])
    else:
        raise AssertionError(key)


SUBJECTS_KEYS = (
    [f"detect.{k}" for k in ("face", "face_model_dir", "person", "objects", "saliency_method", "salient_covered_iou",
                             "objects_require_phrase", "grounding", "grounding_model_dir", "grounding_box_threshold",
                             "device")]
    + [f"boxes.{k}" for k in ("min_area_frac", "max_area_frac", "min_side_px", "nms_iou", "ambiguous_margin",
                              "max_boxes_per_frame")]
    + [f"masks.{k}" for k in ("backend", "grabcut_iterations", "context_margin", "rect_margin", "work_long_side",
                              "min_component_share", "max_hole_share", "selfie_crop_margin", "selfie_threshold",
                              "selfie_min_box_fill", "sam2_model_dir", "device")]
    + [f"quality.{k}" for k in ("brisque", "aesthetic", "aesthetic_model", "aesthetic_model.clip_dir",
                                "aesthetic_model.mlp_path", "aesthetic_model.device", "aesthetic_model.dtype",
                                "work_long_side", "erode_px", "fill_sigma_frac")]
    + [f"face_track.{k}" for k in ("sim_threshold", "gap_tolerance_share", "min_face_px", "max_faces_per_frame")]
)


@pytest.mark.parametrize("key", SUBJECTS_KEYS)
def test_every_subjects_key_is_read(key):
    sub = default_recipe()["subjects"]
    _consume_subjects(sub, key)                         # the complete section works
    with pytest.raises(MissingRecipeKey) as err:
        _consume_subjects(_drop(sub, key), key)
    assert err.value.path == f"subjects.{key}"


def _consume_pairs(pairs: dict, key: str, tmp_path: Path) -> None:
    """Call the code that reads pairs.<key> with the (partial) pairs section `pairs`."""
    from s2vforge.stages.pairs.bank import IdentityBank
    from s2vforge.stages.pairs.cluster import cluster_identities
    from s2vforge.stages.pairs.diversity import background_embedder
    from s2vforge.stages.pairs.embed import build_embedder, embedder_key, reuses_face_rows
    from s2vforge.stages.pairs.tracks import Instance, attach_face_rows, build_tracks
    from s2vforge.stages.pairs.verify import (verify_face_agreement, verify_geometric, verify_text_match,
                                              vlm_verifier_from_config)
    parts = key.split(".")
    if parts[0] == "embed":
        cat, leaf = parts[1], parts[2]
        embed = dict(pairs["embed"])
        if leaf in ("model", "device", "dtype", "batch_size") and cat != "face":   # read by the image backends
            embed[cat] = _set_present({**embed[cat], "backend": "clip"}, model="/nonexistent/clip")
        if leaf == "face_row_inside_share":
            attach_face_rows([], None, {**pairs, "embed": embed})
        elif leaf in ("face", "face_model", "reuse_face_rows"):
            reuses_face_rows(embed)
        elif leaf == "weights":
            embedder_key(cat, embed)
        else:
            try:
                build_embedder(cat, embed)
            except MissingRecipeKey:
                raise
            except Exception:  # noqa: BLE001 - the model itself is not here (ModelNotFound, no torch): settings read
                pass
    elif parts[0] == "context":
        if parts[1] == "backend":
            background_embedder(pairs["context"])
        else:
            _dinov2_settings(pairs["context"])
    elif parts[0] == "bank":
        IdentityBank.create(tmp_path / "bank", 8, embedder="e", **pairs["bank"])
    elif parts[:2] == ["verify", "geometric"]:
        crop = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        verify_geometric(crop, crop, **pairs["verify"]["geometric"])
    elif parts[:2] == ["verify", "face"]:
        verify_face_agreement(None, None, **pairs["verify"]["face"])
    elif parts[:2] == ["verify", "text"]:
        blank = np.full((32, 32, 3), 200, np.uint8)
        verify_text_match(blank, blank, SimpleNamespace(detect=lambda img: []), **pairs["verify"]["text"])
    elif parts[:2] == ["verify", "vlm"]:
        vlm_verifier_from_config(pairs["verify"]["vlm"])
    elif parts[0] in ("in_clip_threshold", "in_clip_box_iou"):
        def inst(sid, frame, box):     # boxes apart: the identity cosine decides (in_clip_threshold)
            return Instance(sid, "c", "v", "g", "face", "face", frame, box, 1.0, 1.0, None,
                            np.ones(4, np.float32) / 2, None)
        build_tracks([inst("a", 0, [0, 0, 10, 10]), inst("b", 1, [50, 50, 60, 60])], pairs)
    elif parts[0] == "cluster":
        cluster_identities(3, [(0, 1, 1.0)], **pairs["cluster"])
    else:
        raise AssertionError(key)


def _dinov2_settings(context: dict) -> None:
    """background_embedder reads the dinov2 settings before it looks for the weights."""
    from s2vforge.backends.errors import BackendUnavailable
    from s2vforge.stages.pairs.diversity import background_embedder
    try:
        background_embedder(_set_present({**context, "backend": "dinov2"}, model="/nonexistent/dinov2"))
    except BackendUnavailable:
        pass        # settings complete; no weights here (ModelNotFound / no torch)


def _embed_keys() -> list[str]:
    embed = default_recipe()["pairs"]["embed"]
    return [f"embed.{cat}.{k}" for cat in ("face", "person", "animal", "object") for k in embed[cat]
            if k != "backend"] + [f"embed.{cat}.backend" for cat in ("face", "person", "animal", "object")]


PAIRS_KEYS = (
    _embed_keys()
    + [f"context.{k}" for k in ("backend", "model", "device", "dtype", "long_side")]
    + [f"bank.{k}" for k in ("index", "exact_max", "nlist", "hnsw_m", "tune_recall", "tune_recall_hnsw", "threads")]
    + ["verify.geometric.min_inliers", "verify.geometric.ratio", "verify.geometric.max_side",
       "verify.face.max_distance", "verify.text.min_ratio"]
    + [f"verify.vlm.{k}" for k in ("enabled", "base_url", "model", "api_key_env", "timeout_s", "max_retries",
                                   "long_side")]
    + ["in_clip_threshold", "in_clip_threshold.face", "in_clip_box_iou", "cluster.method", "cluster.threshold"]
)


@pytest.mark.parametrize("key", PAIRS_KEYS)
def test_every_pairs_key_is_read(key, tmp_path):
    pairs = default_recipe()["pairs"]
    if key.startswith("verify.vlm."):     # the default has no endpoint: name one so every setting is read
        pairs["verify"]["vlm"]["base_url"], pairs["verify"]["vlm"]["model"] = "http://127.0.0.1:9/v1", "m"
    _consume_pairs(pairs, key, tmp_path / "full")
    leaf = key.split(".")[-1]
    with pytest.raises((MissingRecipeKey, TypeError)) as err:
        _consume_pairs(_drop(pairs, key), key, tmp_path / "partial")
    if isinstance(err.value, MissingRecipeKey):
        assert err.value.path == f"pairs.{key}"
    else:                                  # a required keyword of the function the section is passed to
        assert f"'{leaf}'" in str(err.value)


CROP_KEYS = ["ocr", "ocr_frames", "border_threshold", "border_max_spread", "border_min_contrast", "border_edge_noise",
             "border_min_run", "border_frames", "min_area_after_crop", "band_region", "min_text_score",
             "min_text_chars", "band_pad"]


@pytest.mark.parametrize("key", CROP_KEYS)
def test_every_crop_key_is_read(key):
    from s2vforge.stages.crop import detect_crop
    crop = default_recipe()["crop"]
    with pytest.raises(MissingRecipeKey) as err:
        detect_crop(_fake_frames(), _drop(crop, key))
    assert err.value.path == f"crop.{key}"


@pytest.mark.parametrize("key", [f"{s}.{k}" for s, p in load_recipe(None)["scorer_params"].items() for k in p])
def test_every_scorer_param_is_read(key):
    from s2vforge.stages.scores import run_scorers
    params = default_recipe()["scorer_params"]
    name = key.split(".")[0]
    with pytest.raises(MissingRecipeKey) as err:
        run_scorers(_fake_frames(), [name], _drop(params, key))
    assert err.value.path == f"scorer_params.{key}"


# ----------------------------------------------------------------------------- (b) and it changes behaviour

def test_boxes_min_side_px_from_the_recipe_decides_the_verdict():
    from s2vforge.stages.subjects.boxrules import BoxRules, apply_box_rules

    def verdicts(recipe):
        cand = {"box": (0, 0, 300, 150), "score": 0.9, "category": "object", "phrase": "cup",
                "single_instance": False, "checks": []}
        return apply_box_rules([cand], 1000, 1000, BoxRules.from_recipe(recipe["subjects"]["boxes"]))[0]["checks"]

    assert verdicts(default_recipe()) == []                                   # 150 px >= 128 (Phantom-Data)
    assert verdicts(load_recipe(None, {"subjects": {"boxes": {"min_side_px": 200}}})) == ["min_side<200"]


def test_detect_objects_require_phrase_and_covered_iou_from_the_recipe():
    from s2vforge.backends.facedet import Detection
    from s2vforge.stages.subjects.detect import load_detectors
    from s2vforge.stages.subjects.phrases import Phrase

    class Objects:
        def detect(self, frame):
            return [Detection((10, 10, 60, 60), 0.8, "object", "saliency-test")]

    class Faces:
        def detect(self, frame):
            return [Detection((10, 10, 60, 70), 0.9, "face", "face-test")]

    def candidates(overrides, phrases=()):
        ds = load_detectors({**load_recipe(None, {"subjects": {"detect": overrides}})["subjects"]["detect"],
                             "face": "none", "person": "none", "objects": "none"})
        ds.objects, ds.face = Objects(), Faces()
        return ds.candidates(np.zeros((100, 100, 3), np.uint8), list(phrases))

    cup = [Phrase("cup", "cup", "object", source="spacy")]
    assert [c["category"] for c in candidates({})] == ["face"]                # no caption object: none looked for
    assert [c["category"] for c in candidates({}, cup)] == ["face", "object"]
    assert [c["category"] for c in candidates({"objects_require_phrase": False})] == ["face", "object"]
    # IoU of the two boxes is 50*50 / (50*60) = 0.83: covered at the default 0.5, not at 0.9
    assert candidates({}, cup)[1]["checks"] == ["covered_by_named_subject"]
    assert candidates({"salient_covered_iou": 0.9}, cup)[1]["checks"] == []


def test_face_track_gap_tolerance_share_from_the_recipe():
    from s2vforge.backends.face import Face
    from s2vforge.stages.subjects.facetrack import longest_face_segment

    class OneFace:       # a face on every frame but the 4th, always the same identity
        def detect(self, frame):
            return [] if frame[0, 0, 0] else [Face(np.array([0, 0, 40, 40], np.float32), 0.9, None)]

        def embed(self, frame, face):
            return np.ones(8, np.float32)

    frames = [np.full((4, 4, 3), 255 if i == 3 else 0, np.uint8) for i in range(8)]
    times = [i * 0.5 for i in range(8)]
    track = default_recipe()["subjects"]["face_track"]
    bridged = longest_face_segment(frames, times, OneFace(), OneFace(), cfg=track)   # ceil(0.05 * 8) = 1 gap frame
    strict = longest_face_segment(frames, times, OneFace(), OneFace(),
                                  cfg=load_recipe(None, {"subjects": {"face_track": {"gap_tolerance_share": 0.0}}})
                                  ["subjects"]["face_track"])
    assert (bridged["n_frames"], strict["n_frames"]) == (8, 4)


def test_bank_exact_max_and_tune_recall_from_the_recipe(tmp_path):
    from s2vforge.stages.pairs.bank import IdentityBank
    x = np.random.default_rng(0).standard_normal((400, 16)).astype(np.float32)

    def bank(name, overrides=None):
        opts = load_recipe(None, {"pairs": {"bank": overrides or {}}})["pairs"]["bank"]
        b = IdentityBank.create(tmp_path / name, 16, embedder="e", **opts)
        b.add([f"s{i}" for i in range(len(x))], x)
        return b

    assert bank("default").index_kind == "flat"                 # 400 <= exact_max 50000
    strict, loose = bank("strict", {"exact_max": 100}), bank("loose", {"exact_max": 100, "tune_recall": 0.2})
    assert strict.index_kind == loose.index_kind == "ivf"
    assert strict.manifest["params"]["tune_recall"] == 0.97 and loose.manifest["params"]["tune_recall"] == 0.2
    assert loose.manifest["search"]["nprobe"] < strict.manifest["search"]["nprobe"]


def test_geometric_min_inliers_from_the_recipe():
    from s2vforge.corpus.synth import load_photo
    from s2vforge.stages.pairs.verify import verify_geometric
    photo = np.ascontiguousarray(load_photo("coffee"))
    default = load_recipe(None)["pairs"]["verify"]["geometric"]
    strict = load_recipe(None, {"pairs": {"verify": {"geometric": {"min_inliers": 100000}}}})["pairs"]["verify"]["geometric"]
    assert verify_geometric(photo, photo, **default).ok is True
    assert verify_geometric(photo, photo, **strict).ok is False


def test_crop_border_threshold_from_the_recipe():
    from s2vforge.stages.crop import border_params, detect_black_borders
    frame = np.full((120, 160, 3), 150, np.uint8)
    frame[:, :, 0] = np.arange(160, dtype=np.uint8)[None, :]     # some picture content
    frame[:20] = frame[-20:] = 30                                 # dark-grey bars, level 30 of 255
    frames = [frame] * 4
    default = border_params(load_recipe(None)["crop"])             # 24: level 30 is not black
    assert detect_black_borders(frames, **default) == (0, 0, 0, 0)
    raised = border_params(load_recipe(None, {"crop": {"border_threshold": 40}})["crop"])
    assert detect_black_borders(frames, **raised) == (0, 20, 0, 20)
