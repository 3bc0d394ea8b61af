"""Face detection, 5-point alignment and identity embeddings for FaceSim.

Reference backend (what OpenS2V-Eval's get_facesim.py does through insightface, re-implemented
on onnxruntime so no insightface/torch is needed at run time):

- detection: an insightface SCRFD ONNX model (`det_10g.onnx` of buffalo_l/antelopev2, the
  RetinaFace-family detector insightface ships), input letterboxed top-left into 320x320
  (`prepare(det_size=(320, 320))`), RGB, (x - 127.5) / 128; score threshold 0.5, NMS IoU 0.4
  (insightface defaults). Outputs parsed: 9 tensors = scores, box distances, keypoint
  distances for strides 8/16/32 with 2 anchors per location (also the 6-output no-keypoint
  and 10/15-output 5-stride layouts);
- the largest face by box area; if none, one retry on the frame padded by 25% per side with
  grey (128) and the keypoints shifted back;
- alignment: least-squares similarity transform (Umeyama, as skimage's SimilarityTransform in
  insightface.utils.face_align.estimate_norm) of the 5 keypoints onto the ArcFace 112 template,
  `cv2.warpAffine` with black border. OpenS2V-Eval aligns to 224 (template x2) and then
  resizes to 112 before CurricularFace; `align_size` reproduces that;
- embedding: an IR-ResNet ONNX (CurricularFace IR-101 for FaceSim-Cur; insightface ArcFace
  `w600k_r50.onnx` for FaceSim-Arc), input 112x112 RGB, (x - 127.5) / 127.5, NCHW.

The CurricularFace weights are published as a torch state dict
(`glint360k_curricular_face_r101_backbone.bin`); `export_ir_onnx` converts it once (read with
`torch.load(weights_only=True)`, no code unpickled) so this module only ever loads ONNX.

Embedded backend (`dlib`): dlib's HOG frontal detector + 5-landmark predictor + ResNet 128-d
descriptor from the dlib-bin and face-recognition-models packages. Different detector,
alignment and embedding space: metrics on it are named `facesim_dlib`, never `facesim`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .boxes import nms
from .errors import BackendUnavailable, ModelNotFound
from .paths import model_search_dirs

# insightface.utils.face_align.arcface_dst: the 5-point template of 112x112 ArcFace crops.
ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)
DET_SIZE = 320         # OpenS2V-Eval get_facesim.py: FaceAnalysis.prepare(det_size=(320, 320))
DET_THRESH = 0.5       # insightface FaceAnalysis.prepare default det_thresh
DET_NMS_IOU = 0.4      # insightface SCRFD.nms_thresh
RETRY_PAD_SCALE = 1.25  # OpenS2V-Eval get_facesim.py pad_np_bgr_image(scale=1.25), grey 128
CUR_ALIGN_SIZE = 224   # OpenS2V-Eval get_facesim.py: norm_crop(image_size=224), then resize to 112

FACE_LOCAL_NAME = "opens2v-face"
DETECTOR_PATTERNS = ("det_10g.onnx", "scrfd*.onnx", "det_*.onnx", "retinaface*.onnx")
CURRICULAR_PATTERNS = ("curricularface*.onnx", "glint360k_curricular_face_r101*.onnx", "*curricular*.onnx")
ARCFACE_PATTERNS = ("w600k_r50.onnx", "glintr100.onnx", "arcface*.onnx")


@dataclass
class Face:
    bbox: np.ndarray            # (4,) x1, y1, x2, y2 in image pixels
    score: float
    kps: np.ndarray | None      # (5, 2) left eye, right eye, nose, left mouth, right mouth

    @property
    def area(self) -> float:
        return float((self.bbox[2] - self.bbox[0]) * (self.bbox[3] - self.bbox[1]))


class FaceDetector(Protocol):
    def detect(self, image_rgb: np.ndarray) -> list[Face]: ...


# ---------------------------------------------------------------- geometry (pure numpy)

def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, translation) mapping src -> dst (Umeyama 1991)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / n
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s0 ** 2).sum() / n
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def arcface_template(size: int = 112) -> np.ndarray:
    """insightface estimate_norm: the 112 template scaled for sizes that are multiples of 112,
    else scaled by size/128 and shifted 8*ratio in x."""
    if size % 112 == 0:
        return ARCFACE_TEMPLATE_112 * (size / 112.0)
    ratio = size / 128.0
    t = ARCFACE_TEMPLATE_112 * ratio
    t[:, 0] += 8.0 * ratio
    return t


def align_face(image: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """insightface norm_crop: warp so the 5 keypoints land on the ArcFace template (size x size)."""
    import cv2
    m = similarity_transform(kps, arcface_template(size))
    return cv2.warpAffine(image, m, (size, size), borderValue=0.0)


def pad_frame(image: np.ndarray, scale: float = RETRY_PAD_SCALE, value: int = 128) -> tuple[np.ndarray, tuple[int, int]]:
    """Grey border of (scale-1) x side on every side; returns the padded image and (left, top)."""
    import cv2
    h, w = image.shape[:2]
    top = int(h * (scale - 1.0))
    left = int(w * (scale - 1.0))
    padded = cv2.copyMakeBorder(image, top, top, left, left, cv2.BORDER_CONSTANT, value=(value, value, value))
    return padded, (left, top)


def largest_face(faces: Sequence[Face]) -> Face | None:
    return max(faces, key=lambda f: f.area) if faces else None


def detect_largest_with_retry(detector: FaceDetector, image_rgb: np.ndarray) -> Face | None:
    """Largest face; if none, retry once on the 1.25x grey-padded frame (coords mapped back)."""
    face = largest_face(detector.detect(image_rgb))
    if face is not None:
        return face
    padded, (left, top) = pad_frame(image_rgb)
    face = largest_face(detector.detect(padded))
    if face is None:
        return None
    shift = np.array([left, top], np.float32)
    kps = None if face.kps is None else face.kps - shift
    return Face(bbox=face.bbox - np.tile(shift, 2), score=face.score, kps=kps)


def letterbox_top_left(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """insightface SCRFD.detect: keep aspect, resize into (w, h), paste top-left on black."""
    import cv2
    w_in, h_in = size
    im_ratio = image.shape[0] / image.shape[1]
    if im_ratio > h_in / w_in:
        new_h, new_w = h_in, int(h_in / im_ratio)
    else:
        new_w, new_h = w_in, int(w_in * im_ratio)
    scale = new_h / image.shape[0]
    canvas = np.zeros((h_in, w_in, 3), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
    return canvas, scale


def decode_scrfd(outputs: Sequence[np.ndarray], input_hw: tuple[int, int], thresh: float = DET_THRESH
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """SCRFD heads -> (scores (N,), boxes (N,4), kps (N,5,2) | None) in network-input pixels."""
    n = len(outputs)
    layouts = {6: (3, (8, 16, 32), 2, False), 9: (3, (8, 16, 32), 2, True),
               10: (5, (8, 16, 32, 64, 128), 1, False), 15: (5, (8, 16, 32, 64, 128), 1, True)}
    if n not in layouts:
        raise ValueError(f"unrecognised SCRFD output layout: {n} outputs (expected 6, 9, 10 or 15)")
    fmc, strides, num_anchors, use_kps = layouts[n]
    h_in, w_in = input_hw
    scores_all, boxes_all, kps_all = [], [], []
    for idx, stride in enumerate(strides):
        sc = outputs[idx].reshape(-1)
        bb = outputs[idx + fmc].reshape(-1, 4) * stride
        h, w = h_in // stride, w_in // stride
        centers = np.stack(np.mgrid[:h, :w][::-1], axis=-1).astype(np.float32)
        centers = (centers * stride).reshape(-1, 2)
        if num_anchors > 1:
            centers = np.repeat(centers, num_anchors, axis=0)
        pos = np.where(sc >= thresh)[0]
        boxes = np.concatenate([centers - bb[:, :2], centers + bb[:, 2:]], axis=1)
        scores_all.append(sc[pos])
        boxes_all.append(boxes[pos])
        if use_kps:
            kp = outputs[idx + 2 * fmc].reshape(-1, 10) * stride
            kp = (kp.reshape(-1, 5, 2) + centers[:, None, :])
            kps_all.append(kp[pos])
    scores = np.concatenate(scores_all).astype(np.float32)
    boxes = np.concatenate(boxes_all).astype(np.float32)
    kps = np.concatenate(kps_all).astype(np.float32) if use_kps else None
    return scores, boxes, kps


def _ort_session(path: Path, device: str):
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise BackendUnavailable("onnxruntime", [], f"pip install onnxruntime ({exc})") from exc
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


class ScrfdDetector:
    """insightface SCRFD/RetinaFace-family ONNX face detector (see module docstring)."""

    def __init__(self, session, det_size: int = DET_SIZE, thresh: float = DET_THRESH, nms_iou: float = DET_NMS_IOU) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()]
        shape = session.get_inputs()[0].shape
        fixed = shape[2:4] if all(isinstance(s, int) for s in shape[2:4]) else None
        self.input_size = (int(fixed[1]), int(fixed[0])) if fixed else (det_size, det_size)   # (w, h)
        self.thresh = thresh
        self.nms_iou = nms_iou

    @classmethod
    def from_path(cls, path: str | os.PathLike, device: str = "cpu", **kw) -> "ScrfdDetector":
        return cls(_ort_session(Path(path), device), **kw)

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        canvas, scale = letterbox_top_left(image_rgb, self.input_size)
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]   # RGB, as swapRB on BGR
        outs = self.session.run(self.output_names, {self.input_name: blob})
        outs = [o[0] if o.ndim == 3 else o for o in outs]            # batched exports: drop batch dim
        scores, boxes, kps = decode_scrfd(outs, (blob.shape[2], blob.shape[3]), self.thresh)
        if scores.size == 0:
            return []
        boxes = boxes / scale
        kps = None if kps is None else kps / scale
        order = scores.argsort()[::-1]
        keep = nms(boxes[order], scores[order], self.nms_iou, convention="insightface")
        faces = []
        for k in keep:
            j = order[k]
            faces.append(Face(bbox=boxes[j], score=float(scores[j]), kps=None if kps is None else kps[j]))
        return faces


class OnnxFaceEmbedder:
    """IR-ResNet identity embedder on 5-point aligned crops; returns L2-normalised rows.

    `align_size` is the crop size before the resize to the network input (224 for OpenS2V's
    CurricularFace path, 112 for insightface ArcFace)."""

    def __init__(self, session, align_size: int = 112) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        shape = session.get_inputs()[0].shape
        self.input_hw = (int(shape[2]), int(shape[3])) if all(isinstance(s, int) for s in shape[2:4]) else (112, 112)
        self.align_size = align_size
        self.batch_dynamic = not isinstance(shape[0], int)

    @classmethod
    def from_path(cls, path: str | os.PathLike, device: str = "cpu", align_size: int = 112) -> "OnnxFaceEmbedder":
        return cls(_ort_session(Path(path), device), align_size)

    def crop(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        import cv2
        aligned = align_face(image_rgb, face.kps, self.align_size)
        h, w = self.input_hw
        if aligned.shape[:2] != (h, w):
            aligned = cv2.resize(aligned, (w, h))            # get_facesim.py inference(): cv2.resize to 112
        return aligned

    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, 0), np.float32)
        x = (np.stack(crops).astype(np.float32) - 127.5) / 127.5
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        if self.batch_dynamic:
            emb = self.session.run(None, {self.input_name: x})[0]
        else:                                                  # fixed batch-1 exports (insightface's)
            emb = np.concatenate([self.session.run(None, {self.input_name: x[i:i + 1]})[0] for i in range(len(x))])
        emb = emb.reshape(len(crops), -1).astype(np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _find_file(dirs: Sequence[Path], patterns: Sequence[str]) -> Path | None:
    for d in dirs:
        if not d.is_dir():
            continue
        for pat in patterns:
            hits = sorted(d.rglob(pat))
            if hits:
                return hits[0]
    return None


@dataclass
class FaceModels:
    detector: Path
    curricularface: Path
    arcface: Path | None


def find_face_models(model_dir: str | os.PathLike | None = None) -> FaceModels:
    """Locate the SCRFD detector and CurricularFace ONNX (searched recursively), ArcFace optional."""
    dirs = ([Path(model_dir)] if model_dir else []) + model_search_dirs(FACE_LOCAL_NAME) \
        + model_search_dirs("insightface-buffalo_l") + [Path.home() / ".insightface" / "models"]
    det = _find_file(dirs, DETECTOR_PATTERNS)
    cur = _find_file(dirs, CURRICULAR_PATTERNS)
    if det is None or cur is None:
        missing = " and ".join(n for n, p in (("an SCRFD face detector ONNX (det_10g.onnx of insightface buffalo_l)", det),
                                              ("a CurricularFace IR-101 ONNX (curricularface_ir101.onnx)", cur)) if p is None)
        raise ModelNotFound(
            "FaceSim-Cur face models", [str(d) for d in dirs],
            f"Missing {missing}. Copy insightface's buffalo_l/det_10g.onnx into one of these directories and convert "
            "OpenS2V-Weight's glint360k_curricular_face_r101_backbone.bin with "
            "`python -m s2vforge.backends.face export-ir BIN OUT_DIR/curricularface_ir101.onnx` (needs torch + onnx), "
            "or pass model_dir.")
    return FaceModels(det, cur, _find_file(dirs, ARCFACE_PATTERNS))


# ---------------------------------------------------------------- dlib (embedded)

class DlibFaces:
    """Embedded backend: dlib HOG detector + 5 landmarks + 128-d ResNet descriptor (dlib's own chip alignment)."""

    def __init__(self, upsample: int = 1) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise BackendUnavailable.missing_extra("faces", "dlib face embeddings (facesim_dlib)", exc) from None
        models = self.models_dir()
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self.upsample = upsample

    @staticmethod
    def models_dir() -> Path:
        """face_recognition_models' data dir, found without importing it (its __init__ needs pkg_resources)."""
        import importlib.util
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise BackendUnavailable.missing_extra("faces", "dlib face models (face-recognition-models)")
        d = Path(list(spec.submodule_search_locations)[0]) / "models"
        if not (d / "dlib_face_recognition_resnet_model_v1.dat").is_file():
            raise ModelNotFound("dlib_face_recognition_resnet_model_v1.dat", [str(d)], "reinstall face-recognition-models==0.3.0")
        return d

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        img = np.ascontiguousarray(image_rgb, dtype=np.uint8)
        rects, scores, _ = self.detector.run(img, self.upsample, 0.0)
        return [Face(bbox=np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32), score=float(s), kps=None)
                for r, s in zip(rects, scores)]

    def embed(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
        img = np.ascontiguousarray(image_rgb, dtype=np.uint8)
        shape = self.shape(img, self._dlib.rectangle(x1, y1, x2, y2))
        v = np.asarray(self.encoder.compute_face_descriptor(img, shape), np.float32)
        return v / max(float(np.linalg.norm(v)), 1e-12)


# ---------------------------------------------------------------- IR-ResNet (torch, for export and benchmarks)

IR_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}   # face.evoLVe get_blocks; IR_101 = 100


def build_ir_backbone(units: Sequence[int] = IR_UNITS[100], widths: Sequence[int] = (64, 128, 256, 512),
                      stem: int = 64, embedding: int = 512, input_size: int = 112, layout: str = "evolve",
                      bn1d_affine: bool = True):
    """IR ResNet of face.evoLVe/TFace (CurricularFace's IR_101 with the defaults).

    layout "evolve": res unit = BN, conv3x3, PReLU, conv3x3(stride), BN;
    layout "tface":  res unit = BN, conv3x3, BN, PReLU, conv3x3(stride), BN.
    Module names follow the originals so their state dicts load unchanged."""
    from torch import nn

    class IRUnit(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.shortcut_layer = (nn.MaxPool2d(1, stride) if cin == cout else
                                   nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))
            mid = [nn.PReLU(cout)] if layout == "evolve" else [nn.BatchNorm2d(cout), nn.PReLU(cout)]
            self.res_layer = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), *mid,
                                           nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return self.res_layer(x) + self.shortcut_layer(x)

    class IRBackbone(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input_layer = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem))
            body, cin = [], stem
            for n, w in zip(units, widths):
                body.append(IRUnit(cin, w, 2))
                body.extend(IRUnit(w, w, 1) for _ in range(n - 1))
                cin = w
            self.body = nn.Sequential(*body)
            side = input_size // 16
            self.output_layer = nn.Sequential(nn.BatchNorm2d(cin), nn.Dropout(0.4), nn.Flatten(),
                                              nn.Linear(cin * side * side, embedding),
                                              nn.BatchNorm1d(embedding, affine=bn1d_affine))

        def forward(self, x):
            return self.output_layer(self.body(self.input_layer(x)))

    return IRBackbone()


def ir_backbone_for_state(state: dict):
    """Infer units/widths/layout of an IR state dict (evoLVe or TFace naming) and build it.

    Stages are split where the width changes (IR nets widen at every stage: 64/128/256/512)."""
    import re
    unit_ids = sorted({int(m.group(1)) for k in state for m in [re.match(r"body\.(\d+)\.", k)] if m})
    widths_per_unit = [int(state[f"body.{i}.res_layer.1.weight"].shape[0]) for i in unit_ids]
    units, widths = [], []
    for w in widths_per_unit:
        if widths and widths[-1] == w:
            units[-1] += 1
        else:
            widths.append(w)
            units.append(1)
    layout = "tface" if f"body.{unit_ids[0]}.res_layer.5.weight" in state else "evolve"
    lin = state["output_layer.3.weight"]
    stem = int(state["input_layer.0.weight"].shape[0])
    side = int(round((lin.shape[1] / widths[-1]) ** 0.5))
    return build_ir_backbone(units, widths, stem, int(lin.shape[0]), side * 16, layout,
                             bn1d_affine="output_layer.4.weight" in state)


def export_ir_onnx(weights: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Convert an IR state dict (.bin/.pth via torch.load(weights_only=True), or .safetensors) to ONNX."""
    import torch
    weights = Path(weights)
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(weights))
    else:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = ir_backbone_for_state(state)
    model.load_state_dict(state, strict=True)
    return export_module_onnx(model.eval(), out_path, input_size=112)


def export_module_onnx(model, out_path: str | os.PathLike, input_size: int = 112) -> Path:
    import torch
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    x = torch.randn(1, 3, input_size, input_size)
    torch.onnx.export(model.eval(), (x,), str(out), input_names=["input"], output_names=["embedding"],
                      dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}}, dynamo=False, opset_version=17)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m s2vforge.backends.face export-ir WEIGHTS OUT.onnx`"""
    import sys
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "export-ir":
        print("usage: python -m s2vforge.backends.face export-ir WEIGHTS(.bin|.pth|.safetensors) OUT.onnx")
        return 2
    print(export_ir_onnx(args[1], args[2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
