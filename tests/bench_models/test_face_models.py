"""FaceSim: SCRFD decoding, 5-point alignment, IR-ResNet ONNX embeddings, dlib stand-in, metric."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from s2vforge.backends.errors import ModelNotFound
from s2vforge.backends.face import (ARCFACE_TEMPLATE_112, Face, ScrfdDetector, align_face, arcface_template,
                                    detect_largest_with_retry, find_face_models, similarity_transform)
from s2vforge.bench.opens2v.metrics.base import Sample
from s2vforge.bench.opens2v.metrics.facesim import (FaceSimCur, arc_score_as_official, facesim_from_sims,
                                                     reference_face_path)

from .conftest import read_frames, video_with_frames


def _rgb(path):
    from PIL import Image
    return np.asarray(Image.open(path).convert("RGB"))


def test_similarity_transform_is_umeyama_like_skimage():
    from skimage.transform import SimilarityTransform
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (5, 2))
    dst = rng.uniform(0, 112, (5, 2))
    st = SimilarityTransform()
    st.estimate(src, dst)
    np.testing.assert_allclose(similarity_transform(src, dst), st.params[:2], atol=1e-9)
    # a pure similarity is recovered exactly
    ang, sc, t = 0.3, 1.7, np.array([12.0, -5.0])
    rot = sc * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    np.testing.assert_allclose(similarity_transform(src, src @ rot.T + t), np.c_[rot, t], atol=1e-9)


def test_align_face_puts_keypoints_on_the_arcface_template(media):
    img = _rgb(media["grace_hopper"])
    # keypoints: the template placed on her face region by a known rotation+scale+shift
    ang, sc, t = -0.2, 1.9, np.array([150.0, 120.0])
    rot = sc * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    kps = ARCFACE_TEMPLATE_112 @ rot.T + t
    for size in (112, 224):
        crop = align_face(img, kps, size)
        assert crop.shape == (size, size, 3) and crop.std() > 10          # real content, not border
        m = similarity_transform(kps, arcface_template(size))
        mapped = np.c_[kps, np.ones(5)] @ m.T
        np.testing.assert_allclose(mapped, arcface_template(size), atol=1e-3)
    # 224 crop resized to 112 (OpenS2V's CurricularFace input) ~ the 112 crop
    import cv2
    a = cv2.resize(align_face(img, kps, 224), (112, 112)).astype(float)
    b = align_face(img, kps, 112).astype(float)
    assert np.abs(a - b).mean() < 12


def test_retry_on_padded_frame_maps_keypoints_back():
    class OnlyPaddedDetector:         # finds a face only once the frame has the grey border
        def detect(self, image):
            if image.shape[0] < 100:
                return []
            return [Face(np.array([30, 30, 70, 70], np.float32), 0.9, np.full((5, 2), 40.0, np.float32)),
                    Face(np.array([0, 0, 20, 20], np.float32), 0.99, None)]
    face = detect_largest_with_retry(OnlyPaddedDetector(), np.zeros((80, 80, 3), np.uint8))
    # pad = 0.25 * 80 = 20 px per side: keypoints and box shift back by (20, 20); largest box wins
    np.testing.assert_allclose(face.kps, np.full((5, 2), 20.0))
    np.testing.assert_allclose(face.bbox, [10, 10, 50, 50])


@pytest.fixture(scope="module")
def face_model_dir(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from .tiny_models import export_constant_scrfd, export_tiny_ir, scrfd_outputs_with_one_face
    d = tmp_path_factory.mktemp("face_models") / "models" / "buffalo_l"
    # one face: stride 16, cell (gy=5, gx=9), anchor 1 -> centre (144, 80) in the 320 input;
    # box distances (2, 3, 2, 3) strides -> (112, 32, 176, 128); keypoints = template inside it
    kps_in = ARCFACE_TEMPLATE_112 * (64 / 112) + np.array([112.0, 48.0])
    kps_dist = (kps_in - np.array([144.0, 80.0])) / 16
    outs = scrfd_outputs_with_one_face(320, 16, 5, 9, 1, (2, 3, 2, 3), kps_dist)
    export_constant_scrfd(d / "det_10g.onnx", outs)
    export_tiny_ir(d.parent.parent / "curricularface_ir101.onnx", seed=0)
    return d.parent.parent


@pytest.mark.reference
def test_scrfd_onnx_decoding_and_letterbox_scale(face_model_dir, media):
    models = find_face_models(face_model_dir)
    assert models.detector.name == "det_10g.onnx" and models.arcface is None
    det = ScrfdDetector.from_path(models.detector)
    frame = read_frames(media["bikes"], n=1)[0]                     # 640x272: letterbox scale 0.5
    faces = det.detect(frame)
    assert len(faces) == 1 and faces[0].score == pytest.approx(0.9)
    np.testing.assert_allclose(faces[0].bbox, np.array([112, 32, 176, 128]) / 0.5, atol=1e-3)
    kps_in = ARCFACE_TEMPLATE_112 * (64 / 112) + np.array([112.0, 48.0])
    np.testing.assert_allclose(faces[0].kps, kps_in / 0.5, atol=1e-3)


@pytest.mark.reference
def test_ir_onnx_export_matches_torch_and_reloads_state_dicts(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from safetensors.torch import save_file
    from s2vforge.backends.face import OnnxFaceEmbedder, build_ir_backbone, export_ir_onnx, ir_backbone_for_state
    torch.manual_seed(3)
    m = build_ir_backbone(units=(1, 2, 1, 1), widths=(8, 16, 24, 32), stem=8, embedding=24, layout="tface",
                          bn1d_affine=False).eval()
    state = m.state_dict()
    rebuilt = ir_backbone_for_state(state)          # architecture inferred from the keys alone
    rebuilt.load_state_dict(state, strict=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "ir.safetensors"))
    onnx_path = export_ir_onnx(tmp_path / "ir.safetensors", tmp_path / "curricularface_ir101.onnx")
    emb = OnnxFaceEmbedder.from_path(onnx_path)
    crops = [np.random.default_rng(i).integers(0, 255, (112, 112, 3), dtype=np.uint8) for i in range(3)]
    got = emb.embed_crops(crops)
    x = torch.from_numpy(((np.stack(crops).astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2))
    with torch.no_grad():
        ref = m(x).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert got.shape == (3, 24)
    np.testing.assert_allclose(got, ref, atol=1e-4)


@pytest.mark.reference
def test_facesim_onnx_pipeline_end_to_end(face_model_dir, media, tmp_path):
    ref_dir = tmp_path / "Images" / "singleface" / "crop_man"
    ref_dir.mkdir(parents=True)
    shutil.copy(media["grace_hopper"], ref_dir / "1.jpg")
    sample = Sample(id="singleface_1", prompt="p", ref_paths=[tmp_path / "Images/singleobj/x.jpg", ref_dir / "1.jpg"],
                    class_label=["Dog", "Man"])
    assert reference_face_path(sample) == ref_dir / "1.jpg"
    frames = read_frames(media["bikes"], n=6, step=3)
    metric = FaceSimCur(model_dir=face_model_dir, n_frames=6)
    assert metric.name == "facesim" and metric.applies_to(sample)
    assert not metric.applies_to(Sample(id="singleobj_3", prompt="p", ref_paths=[]))
    rec = metric.compute_record(video_with_frames(media["bikes"], frames), sample)
    assert rec["details"]["frames_with_face"] == 6 and "facesim_arc" not in rec["details"]
    assert 0.0 <= rec["value"] <= 1.0
    # same pixels as the reference -> identical embeddings -> similarity 1
    same = np.stack([_rgb(media["grace_hopper"])] * 2)
    assert metric.compute(video_with_frames(media["bikes"], same), sample) == pytest.approx(1.0, abs=1e-5)


def test_facesim_aggregation_clips_and_drops_zeros():
    assert facesim_from_sims([0.8, -0.3, 0.0, 0.6]) == pytest.approx(0.7)
    assert facesim_from_sims([-0.1]) == 0.0 and facesim_from_sims([]) == 0.0
    # the original's arc_score filter compares the list to 0.0, so its clipped zeros stay in
    assert arc_score_as_official([0.8, -0.3, 0.0, 0.6]) == pytest.approx(0.35)
    assert arc_score_as_official([]) == 0.0


class _FillPipeline:
    """Embeds an image by its fill value: a frame filled with v gets cur/arc vectors at cosines COS[v]."""
    keys = ("cur", "arc")
    COS = {10: (0.9, 0.8), 20: (0.5, -0.4), 30: (0.7, 0.6)}          # fill -> (cur cosine, arc cosine)

    @staticmethod
    def _unit(c):
        return np.array([c, np.sqrt(1 - c * c)])

    def embed_largest(self, image):
        v = int(image[0, 0, 0])
        if v == 0:                                                     # the reference
            return {"cur": np.array([1.0, 0.0]), "arc": np.array([1.0, 0.0])}
        cur, arc = self.COS[v]
        return {"cur": self._unit(cur), "arc": self._unit(arc)}


def test_facesim_reports_arc_both_as_the_original_and_corrected(tmp_path, media):
    from PIL import Image
    ref = tmp_path / "Images" / "singleface" / "crop_man" / "1.png"
    ref.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(ref)
    frames = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (10, 20, 30)])
    metric = FaceSimCur(n_frames=3, pipeline=_FillPipeline())
    rec = metric.compute_record(video_with_frames(media["bikes"], frames), Sample(id="singleface_1", prompt="p",
                                                                                   ref_paths=[ref]))
    assert rec["value"] == pytest.approx((0.9 + 0.5 + 0.7) / 3)                 # no Cur zero to drop
    assert rec["details"]["facesim_arc"] == pytest.approx((0.8 + 0.0 + 0.6) / 3)  # zero kept, as the original
    assert rec["details"]["facesim_arc_zeros_dropped"] == pytest.approx(0.7)


def test_dlib_facesim_separates_identities(media, tmp_path):
    import importlib.util
    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face-recognition-models is not installed")
    frames = read_frames(media["carphone"], n=60, step=1)
    video = video_with_frames(media["carphone"], frames)
    # the reference: a tight face crop from the clip (as OpenS2V's crop_man images), which only the
    # padded retry can detect
    from PIL import Image
    from s2vforge.backends.face import DlibFaces
    faces = DlibFaces()
    box = max(faces.detect(frames[0]), key=lambda f: f.area).bbox.astype(int)
    crop = frames[0][box[1]:box[3], box[0]:box[2]]
    assert faces.detect(crop) == [] and detect_largest_with_retry(faces, crop) is not None
    same_dir, other_dir = tmp_path / "crop_man", tmp_path / "woman"
    same_dir.mkdir(), other_dir.mkdir()
    Image.fromarray(crop).save(same_dir / "1.png")
    shutil.copy(media["grace_hopper"], other_dir / "2.jpg")
    metric = FaceSimCur(backend="dlib", n_frames=6, pipeline=None)
    assert metric.name == "facesim_dlib" and not metric.comparable
    same = metric.compute_record(video, Sample(id="singleface_2", prompt="p", ref_paths=[same_dir / "1.png"]))
    other = metric.compute(video, Sample(id="singleface_2", prompt="p", ref_paths=[other_dir / "2.jpg"]))
    assert same["details"]["frames_with_face"] >= 5
    assert same["value"] > 0.93 and other < same["value"] - 0.05


def test_missing_face_models_say_what_and_how(no_model_dirs):
    with pytest.raises(ModelNotFound) as e:
        find_face_models()
    msg = str(e.value)
    assert "det_10g.onnx" in msg and "curricularface_ir101.onnx" in msg and "export-ir" in msg
    assert str(no_model_dirs / "models" / "opens2v-face") in msg
    with pytest.raises(ModelNotFound):
        FaceSimCur(model_dir=no_model_dirs / "nothing").load()
