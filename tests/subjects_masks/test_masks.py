"""Subject masks on composites with exact ground truth (real photos pasted on real scenes)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from s2vforge.backends.errors import ModelNotFound
from s2vforge.recipes import load_recipe
from s2vforge.stages.subjects import masks
from s2vforge.stages.subjects.masks import clean_mask, grabcut_mask, segment

from .composites import SUBJECTS, composite, composites, load_rgb, mask_iou, skimage_photo

MASKS = load_recipe(None)["subjects"]["masks"]      # the default recipe's subjects.masks
GRABCUT = masks.grabcut_params(MASKS)


def with_backend(backend: str) -> dict:
    return {**MASKS, "backend": backend}


@pytest.fixture(scope="module")
def scenes():
    # one composite of every subject on two real backgrounds (seeded: the same set each run)
    return composites(1, seed=3, bg_names=["street_a", "table"])


def test_grabcut_on_real_composites(scenes):
    ious = {c.name: mask_iou(grabcut_mask(c.image, c.box, **GRABCUT), c.mask) for c in scenes}
    values = np.array(list(ious.values()))
    # measured on this set: median 0.98, 8 of 9 >= 0.8; the thin rocket on the grey street 0.63
    assert np.median(values) >= 0.9, ious
    assert (values >= 0.8).mean() >= 0.75, ious
    assert min(v for k, v in ious.items() if not k.startswith("rocket")) >= 0.8, ious


def test_selfie_and_auto_on_people(scenes):
    people = [c for c in scenes if c.subject.category == "person"]
    assert len(people) == 4
    for c in people:
        selfie = mask_iou(segment(c.image, c.box, "person", with_backend("selfie")), c.mask)
        auto = mask_iou(segment(c.image, c.box, "person", MASKS), c.mask)
        # measured 0.83-0.95; the low one is the astronaut, whose cut-out includes the helmet
        # she holds, which a person segmenter rightly leaves out
        assert selfie >= 0.75, (c.name, selfie)
        assert auto == pytest.approx(selfie)            # auto uses the selfie model for people


def test_auto_falls_back_to_grabcut_where_selfie_finds_nothing():
    """A 'person' box on empty evening sky (a detector mistake): the selfie model marks
    nothing there, so auto falls back to GrabCut instead of returning an empty mask.
    (On a salient object, e.g. a cup, the selfie model does mark it: it segments the
    foreground of a person-sized crop and is no person detector.)"""
    img = load_rgb(str(skimage_photo("rocket.jpg")))
    box = (380, 20, 560, 200)
    selfie = segment(img, box, "person", with_backend("selfie"))
    assert selfie.sum() < MASKS["selfie_min_box_fill"] * 180 * 180
    auto = segment(img, box, "person", MASKS)
    assert np.array_equal(auto, grabcut_mask(img, box, **GRABCUT))


def test_masks_stay_inside_the_box_and_are_deterministic(scenes):
    c = scenes[0]
    x0, y0, x1, y1 = c.box
    m = grabcut_mask(c.image, c.box, **GRABCUT)
    assert m.dtype == bool and m.shape == c.image.shape[:2]
    grown = masks.grow_box(c.box, MASKS["rect_margin"], c.image.shape, min_px=1)
    outside = m.copy()
    outside[grown[1]:grown[3], grown[0]:grown[2]] = False
    assert not outside.any()
    assert np.array_equal(m, grabcut_mask(c.image, c.box, **GRABCUT))


def test_flip_and_lighting_do_not_break_grabcut():
    subject = next(s for s in SUBJECTS if s.name == "cat_head")
    bg = load_rgb(str(skimage_photo("motorcycle_left.png")))
    for flip, gain in [(False, 0.75), (True, 1.25)]:
        c = composite(subject, "garage", bg, height_frac=0.5, pos=(0.7, 0.4), flip=flip, subject_gain=gain,
                      global_gain=1.0)
        assert mask_iou(grabcut_mask(c.image, c.box, **GRABCUT), c.mask) > 0.9


def test_degenerate_boxes():
    img = load_rgb(str(skimage_photo("coffee.png")))
    h, w = img.shape[:2]
    full = grabcut_mask(img, (0, 0, w, h), **GRABCUT)          # no background to learn from: the box itself
    assert full.all()
    tiny = grabcut_mask(img, (100, 100, 102, 101), **GRABCUT)
    assert tiny.shape == (h, w) and tiny.sum() <= 2 * 1 + 8
    partly_outside = grabcut_mask(img, (-50, -50, 120, 90), **GRABCUT)
    assert not partly_outside[100:, :].any()
    with pytest.raises(ValueError):
        segment(img, (w + 10, 0, w + 20, 10), "object", MASKS)
    with pytest.raises(ValueError):
        segment(img, (0, 0, 10, 10), "object", with_backend("magic"))


def test_clean_mask_drops_specks_and_fills_small_holes():
    m = np.zeros((100, 100), bool)
    m[10:90, 10:90] = True
    m[50, 50] = False                     # pinhole
    m[30:60, 40:45] = False               # a real gap (5 % of the area): kept
    m[2, 2] = True                        # speck
    out = clean_mask(m, MASKS["min_component_share"], MASKS["max_hole_share"])
    assert out[50, 50] and not out[2, 2] and not out[40, 42]


def test_sam2_without_weights_says_where_it_looked(tmp_path, monkeypatch):
    from s2vforge.backends import segmentation
    monkeypatch.setenv("S2VFORGE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFound) as err:
        segmentation.find_sam2_dir()
    msg = str(err.value)
    assert "sam2.1-hiera-large" in msg and str(tmp_path / "models") in msg
    img = np.zeros((32, 32, 3), np.uint8)
    segmentation.load_sam2.cache_clear()
    with pytest.raises(ModelNotFound):
        segment(img, (4, 4, 20, 20), "object", with_backend("sam2"))


@pytest.mark.reference
def test_sam2_tiny_random_model_through_the_loader(tmp_path, monkeypatch):
    """A randomly initialised SAM 2 of the real architecture, saved and found through
    S2VFORGE_MODELS like real weights; outputs are checked against the model's own forward."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    if not hasattr(tf, "Sam2Model"):
        pytest.skip("transformers without Sam2Model")
    from s2vforge.backends import segmentation

    backbone = tf.Sam2HieraDetConfig(hidden_size=12, image_size=128, blocks_per_stage=[1, 2, 7, 2],
                                     embed_dim_per_stage=[12, 24, 48, 96])
    vision = tf.Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[96, 48, 24, 12],
                                 backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]], fpn_hidden_size=32)
    config = tf.Sam2Config(
        vision_config=vision,
        prompt_encoder_config=tf.Sam2PromptEncoderConfig(image_size=128, patch_size=16, mask_input_channels=8,
                                                         hidden_size=32),
        mask_decoder_config=tf.Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=2,
                                                     num_attention_heads=4, iou_head_hidden_dim=32))
    torch.manual_seed(0)
    model = tf.Sam2Model(config).eval()
    model_dir = tmp_path / "models" / segmentation.SAM2_LOCAL_NAME
    model.save_pretrained(str(model_dir))
    (model_dir / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 128, "width": 128}, "image_mean": [0.485, 0.456, 0.406],
         "image_std": [0.229, 0.224, 0.225], "rescale_factor": 1 / 255}))
    monkeypatch.setenv("S2VFORGE_MODELS", str(tmp_path / "models"))
    segmentation.load_sam2.cache_clear()
    try:
        img = load_rgb(str(skimage_photo("coffee.png")))
        box = (150, 10, 480, 390)
        mask = segment(img, box, "object", with_backend("sam2"))
        assert mask.shape == img.shape[:2] and mask.dtype == bool

        seg = segmentation.load_sam2()
        assert seg.size == 128
        h, w = img.shape[:2]
        # box scaling must match transformers' own Sam2Processor coordinate normalisation
        ref_box = tf.Sam2Processor._normalize_coordinates(None, 128, torch.tensor([box], dtype=torch.float32), (h, w),
                                                          is_bounding_box=True)
        with torch.inference_mode():
            out = model(pixel_values=torch.from_numpy(seg.pixel_values(img)), input_boxes=ref_box.reshape(1, 1, 4),
                        multimask_output=False)
            ref = torch.nn.functional.interpolate(out.pred_masks[0, 0, :1][None], (h, w), mode="bilinear",
                                                  align_corners=False)[0, 0] > 0
        assert np.array_equal(mask, ref.numpy())
    finally:
        segmentation.load_sam2.cache_clear()
