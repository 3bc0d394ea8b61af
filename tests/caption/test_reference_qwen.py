"""The reference captioner (stages/caption/reference.py) on tiny random Qwen2-VL / Qwen2.5-VL checkpoints.

The checkpoints are the real architecture classes with a tiny config, saved to a tmp folder like the
real ones (tiny_qwen.py) and loaded through ReferenceCaptioner's own code path (model_dir). Their text
is gibberish; what is checked is the plumbing: a string comes out, deterministically, a batch gives
what one clip at a time gives, the patch layout equals transformers' own Qwen2-VL image processor,
and missing weights say what to do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from s2vforge.backends.errors import ModelNotFound  # noqa: E402
from s2vforge.stages.caption.base import STRUCTURED_FIELDS, Caption, ClipInput  # noqa: E402
from s2vforge.stages.caption.reference import ReferenceCaptioner, patchify, smart_resize  # noqa: E402

try:
    from .tiny_qwen import save_tiny_qwen_vl
except ImportError:          # tests/caption is not a package: pytest put this folder on sys.path
    from tiny_qwen import save_tiny_qwen_vl

pytestmark = pytest.mark.reference
MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_qwen")
    return {mt: save_tiny_qwen_vl(root / mt, mt) for mt in MODEL_TYPES}


def _clips(seed: int = 0) -> list[ClipInput]:
    """Two clips of small random frames: different sizes and frame counts (an odd one: padded)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (h, w, n) in enumerate([(64, 96, 4), (70, 50, 3)]):
        frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]
        out.append(ClipInput(clip_id=f"clip{i}", path=Path(f"clip{i}.mp4"), frames=frames,
                             times=[j * 0.5 for j in range(n)], duration_s=n * 0.5, fps=25.0, size=(w, h)))
    return out


def _captioner(model_dir: Path, **ref) -> ReferenceCaptioner:
    cfg = {"reference": {"model_dir": str(model_dir), "max_new_tokens": 10, "device": "cpu", **ref}}
    return ReferenceCaptioner(cfg, prompt_text="Describe the video.")


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("mode", ["video", "images"])
def test_tiny_checkpoint_captions_deterministically_and_batch_equals_single(tiny_dirs, model_type, mode):
    clips = _clips()
    cap = _captioner(tiny_dirs[model_type], input=mode)
    cap.setup()
    assert cap.model_type == model_type                       # read from the folder's config.json
    assert cap.model == model_type                            # the folder's name
    single = [cap.generate_raw([c])[0] for c in clips]
    for text, finish, n in single:
        assert isinstance(text, str) and finish in ("stop", "length") and 0 <= n <= 10
    again = _captioner(tiny_dirs[model_type], input=mode)     # a second load: same text
    assert [again.generate_raw([c])[0] for c in clips] == single
    assert cap.generate_raw(clips) == single                  # one left-padded batch == one at a time

    one = [cap.caption(c) for c in clips]
    batch = cap.caption_batch(clips)
    assert [c.row(k.clip_id) for c, k in zip(batch, clips)] == [c.row(k.clip_id) for c, k in zip(one, clips)]
    for c, (text, finish, _n) in zip(one, single):
        assert isinstance(c, Caption) and c.error is None
        assert c.captioner == "reference" and c.model == model_type and c.prompt_id == "custom"
        assert set(c.structured) == set(STRUCTURED_FIELDS)
        if finish == "length":
            assert any(v.startswith("truncated") for v in c.verdicts)


def test_batch_size_splits_generate_calls(tiny_dirs, monkeypatch):
    cap = _captioner(tiny_dirs["qwen2_5_vl"], batch_size=1)
    calls = []
    real = cap.generate_raw
    monkeypatch.setattr(cap, "generate_raw", lambda clips, *a, **k: calls.append(len(clips)) or real(clips, *a, **k))
    assert len(cap.caption_batch(_clips())) == 2
    assert calls == [1, 1]


def test_one_bad_clip_is_that_clips_error(tiny_dirs):
    cap = _captioner(tiny_dirs["qwen2_vl"])
    good, bad = _clips()[0], ClipInput(clip_id="empty", path=Path("e.mp4"), frames=[], times=[], duration_s=1.0,
                                       fps=25.0, size=(0, 0))
    out = cap.caption_batch([good, bad])
    assert out[0].error is None and out[1].error and "no sampled frames" in out[1].error


def test_patch_layout_matches_transformers_image_processor():
    """Our on-device patching of one frame (images mode) equals Qwen2-VL's own image processor."""
    import torch
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    frame = np.random.default_rng(1).integers(0, 256, (56, 84, 3), dtype=np.uint8)   # multiples of 28: no resize
    ref = Qwen2VLImageProcessorPil()(images=[frame], return_tensors="pt")
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    x = (torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0 - mean) / std
    ours, grid = patchify(x.expand(2, -1, -1, -1), 14, 2, 2)
    assert list(grid) == ref["image_grid_thw"][0].tolist() == [1, 4, 6]
    assert torch.allclose(ours, ref["pixel_values"].float(), atol=1e-5)
    assert smart_resize(720, 1280, 28, 12544, 602112) == (560, 1008)      # a 720p frame at the paper's max_pixels


def test_reformat_answer_fills_short_long_structured(tiny_dirs, monkeypatch):
    """A prompt with a reformat text: a second, text-only generation; its JSON fills the fields."""
    class P:
        caption_text = "Describe the video."
        reformat_text = "Rewrite as JSON: {caption}"
        id = "toy"

    cap = ReferenceCaptioner({"reference": {"model_dir": str(tiny_dirs["qwen2_vl"]), "max_new_tokens": 8}}, prompt=P())
    cap.setup()
    step1 = "A man walks a dog in a park. The camera pans left."
    answers = iter([
        [(step1, "stop", 12)],
        [('{"short": "A man walks a dog.", "long": "A man in a coat walks a brown dog.", '
          '"structured": {"appearance": "a coat", "camera": "pan left"}}', "stop", 30)],
        [(step1, "stop", 12)],
        [("no json here", "stop", 3)],
    ])
    seen = []
    monkeypatch.setattr(cap, "_generate", lambda texts, n, visual=None, min_new_tokens=None:
                        seen.append((texts, visual is not None)) or next(answers))
    c = cap.caption(_clips()[0])
    assert seen[0][1] and not seen[1][1]                      # step 1 with the video, step 2 text only
    assert "Rewrite as JSON: " + step1 in seen[1][0][0]
    assert (c.short, c.long, c.prompt_id) == ("A man walks a dog.", "A man in a coat walks a brown dog.", "toy")
    assert c.structured["appearance"] == "a coat" and c.structured["camera"] == "pan left"
    c2 = cap.caption(_clips()[0])                             # an answer with no JSON: deterministic split
    assert (c2.short, c2.long) == ("A man walks a dog in a park.", step1)
    assert "reformat_unreadable" in c2.verdicts


def test_missing_weights_say_what_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("S2VFORGE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cap = ReferenceCaptioner({}, prompt_text="Describe.")
    assert cap.config()["model"] == "Qwen/Qwen2.5-VL-7B-Instruct"      # config() loads nothing
    with pytest.raises(ModelNotFound) as e:
        cap.setup()
    msg = str(e.value)
    assert "Qwen/Qwen2.5-VL-7B-Instruct" in msg
    assert str(tmp_path / "models" / "Qwen2.5-VL-7B-Instruct") in msg
    assert "S2VFORGE_MODELS" in msg and "--models" in msg


def test_not_a_qwen_vl_folder_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    from s2vforge.backends.errors import BackendUnavailable
    with pytest.raises(BackendUnavailable, match="qwen2_5_vl"):
        ReferenceCaptioner({"reference": {"model_dir": str(tmp_path)}}, prompt_text="x").setup()
