"""Reference identity backends through the public path, on tiny randomly initialised models."""
from __future__ import annotations

import numpy as np
import pytest

from pairs_embed_media import SUBJECTS, carphone_frames, embed_cfg, variants

from s2vforge.backends.errors import ModelNotFound
from s2vforge.stages.pairs.embed import clear_embedder_cache, embedder_for

pytestmark = pytest.mark.reference


def _tiny_clip(path):
    from transformers import CLIPConfig, CLIPModel
    cfg = CLIPConfig(text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                                  "num_attention_heads": 4, "vocab_size": 99, "max_position_embeddings": 32},
                     vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                                    "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
                     projection_dim=16)
    CLIPModel(cfg).save_pretrained(path)
    return 16


def _tiny_dinov2(path):
    from transformers import Dinov2Config, Dinov2Model
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                             image_size=28, patch_size=7)).save_pretrained(path)
    return 32


def _tiny_siglip(path):
    from transformers import SiglipConfig, SiglipModel
    cfg = SiglipConfig(text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                                    "num_attention_heads": 4, "vocab_size": 99, "max_position_embeddings": 32},
                       vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                                      "num_attention_heads": 4, "image_size": 32, "patch_size": 8})
    SiglipModel(cfg).save_pretrained(path)
    return 32


@pytest.mark.parametrize("kind,build", [("clip", _tiny_clip), ("dinov2", _tiny_dinov2), ("siglip", _tiny_siglip)])
def test_image_embedders_load_from_a_directory_and_embed_crops(kind, build, tmp_path):
    pytest.importorskip("transformers")
    model_dir = tmp_path / f"tiny-{kind}"
    dim = build(model_dir)
    clear_embedder_cache()
    cfg = embed_cfg(object={"backend": kind, "model": str(model_dir)})
    emb = embedder_for("object", cfg)
    assert emb.name == f"{kind}:tiny-{kind}" and emb.dim == dim
    crops = variants(SUBJECTS[0], 2) + variants(SUBJECTS[5], 1)
    empty = crops[0].copy()
    empty[..., 3] = 0
    out = emb.embed(crops + [empty, crops[0][..., :3]])
    assert out.shape == (5, dim) and out.dtype == np.float32
    assert np.isfinite(out[:3]).all() and np.isnan(out[3]).all() and np.isfinite(out[4]).all()
    assert np.allclose(np.linalg.norm(out[:3], axis=1), 1.0, atol=1e-5)
    assert np.allclose(emb.embed(crops[:1]), out[:1], atol=1e-5)       # batch-independent
    assert embedder_for("object", cfg) is emb                          # loaded once per process
    assert embedder_for("animal", embed_cfg(animal=cfg["object"])).name == emb.name


def test_missing_model_dir_raises_model_not_found_with_where_it_looked(tmp_path):
    clear_embedder_cache()
    absent = tmp_path / "no-such-clip"
    with pytest.raises(ModelNotFound) as info:
        embedder_for("object", embed_cfg(object={"backend": "dinov2", "model": str(absent)}))
    msg = str(info.value)
    assert str(absent) in msg and "dinov2" in msg and "Looked in" in msg


def test_arcface_onnx_on_dlib_aligned_faces(tmp_path):
    pytest.importorskip("dlib")
    pytest.importorskip("onnx")
    from s2vforge.backends.face import build_ir_backbone, export_module_onnx
    net = build_ir_backbone(units=(1, 1, 1, 1), widths=(8, 16, 16, 32), stem=8, embedding=24)
    export_module_onnx(net.eval(), tmp_path / "arcface_tiny.onnx", input_size=112)
    clear_embedder_cache()
    face = embedder_for("face", embed_cfg(face={"backend": "arcface", "model": str(tmp_path)}))
    assert face.name == "arcface:arcface_tiny.onnx" and face.dim == 24
    frames = carphone_frames((0, 60, 110))
    crop = np.ascontiguousarray(frames[0][30:105, 55:125])
    out, info = face.embed_with_info([crop, np.zeros((4, 4, 3), np.uint8)])
    assert info[0]["face"] == "hog" and np.isfinite(out[0]).all() and np.isnan(out[1]).all()
    assert np.linalg.norm(out[0]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ModelNotFound, match="arcface"):
        embedder_for("face", embed_cfg(face={"backend": "arcface", "model": str(tmp_path / "empty")}))
