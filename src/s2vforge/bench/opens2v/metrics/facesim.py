"""FaceSim-Cur: identity similarity between the reference face and the faces in the video.

OpenS2V-Eval get_facesim.py, per video whose id contains singlehuman, singleface, faceobj or
humanobj: the reference image is the first `img_paths` entry under a man/woman/crop_man/
crop_woman folder; on it and on each of 32 uniform frames, insightface finds the largest face
(det_size 320, one retry on a 1.25x grey-padded frame), aligns it on its 5 keypoints (224 crop
resized to 112) and CurricularFace IR-101 embeds it; per frame the cosine with the reference
is clipped at 0, zeros are dropped, and the raw value is the mean (0.0 when no frame has a
face; no value when the reference has none, as the original skips that video).

backend="onnx" (reference, name `facesim`; also reports FaceSim-Arc in details when an
insightface ArcFace ONNX sits beside the detector: `facesim_arc` as the original computes it,
zeros kept by its list-vs-float filter, and `facesim_arc_zeros_dropped`) or backend="dlib"
(embedded, name `facesim_dlib`: dlib's detector and 128-d embedding, a different scale -
never mixed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Sample, Video

N_FRAMES = 32                                                      # get_facesim.py --num_frames
FACE_ID_KEYS = ("singlehuman", "singleface", "faceobj", "humanobj")  # get_facesim.py id filter
REF_DIR_KEYS = ("/man/", "/woman/", "/crop_woman/", "/crop_man/")     # get_facesim.py get_image_path_from_json


def reference_face_path(sample: Sample) -> Path | None:
    for p in sample.ref_paths:
        s = "/" + Path(p).as_posix().lstrip("/")
        if any(k in s for k in REF_DIR_KEYS):
            return Path(p)
    return None


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class OnnxFacePipeline:
    """SCRFD detection -> largest face (retry padded) -> CurricularFace (+ ArcFace) embeddings."""
    keys = ("cur", "arc")

    def __init__(self, model_dir=None, device: str = "cpu") -> None:
        from ....backends.face import CUR_ALIGN_SIZE, OnnxFaceEmbedder, ScrfdDetector, find_face_models
        m = find_face_models(model_dir)
        self.detector = ScrfdDetector.from_path(m.detector, device)
        self.cur = OnnxFaceEmbedder.from_path(m.curricularface, device, align_size=CUR_ALIGN_SIZE)
        self.arc = OnnxFaceEmbedder.from_path(m.arcface, device, align_size=112) if m.arcface else None

    def embed_largest(self, image: np.ndarray) -> dict[str, np.ndarray] | None:
        from ....backends.face import detect_largest_with_retry
        face = detect_largest_with_retry(self.detector, image)
        if face is None or face.kps is None:
            return None
        out = {"cur": self.cur.embed_crops([self.cur.crop(image, face)])[0]}
        if self.arc is not None:
            out["arc"] = self.arc.embed_crops([self.arc.crop(image, face)])[0]
        return out


class DlibFacePipeline:
    keys = ("dlib",)

    def __init__(self, **_kw) -> None:
        from ....backends.face import DlibFaces
        self.faces = DlibFaces()

    def embed_largest(self, image: np.ndarray) -> dict[str, np.ndarray] | None:
        from ....backends.face import detect_largest_with_retry
        face = detect_largest_with_retry(self.faces, image)
        return None if face is None else {"dlib": self.faces.embed(image, face)}


def facesim_from_sims(sims: list[float]) -> float:
    """get_facesim.py cur_score: cosine clipped at 0, zeros dropped, mean; 0.0 when nothing is left."""
    kept = [max(0.0, float(s)) for s in sims]
    kept = [s for s in kept if s != 0.0]
    return float(np.mean(kept)) if kept else 0.0


def arc_score_as_official(sims: list[float]) -> float:
    """get_facesim.py arc_score: its zero filter reads `if arc_scores != 0.0` (the list, not the
    score), which is always true, so clipped zeros are *kept* in the mean. Reproduced as such;
    the corrected reading is facesim_from_sims()."""
    clipped = [max(0.0, float(s)) for s in sims]
    return float(np.mean(clipped)) if clipped else 0.0


class FaceSimCur:
    """Raw value: FaceSim-Cur (or its dlib stand-in) over 32 uniform frames."""
    name = "facesim"          # instance value depends on the backend (facesim | facesim_dlib)
    comparable = True         # official backend and recipe; False for the dlib stand-in or other n_frames
    same_scale = True         # False for dlib: its cosines are compressed towards 1, never normalised as FaceSim

    def __init__(self, backend: str = "onnx", model_dir=None, device: str = "cpu", dtype=None,
                 n_frames: int = N_FRAMES, pipeline=None) -> None:
        if backend not in ("onnx", "dlib"):
            raise ValueError(f"FaceSim backend must be 'onnx' or 'dlib' (got {backend!r})")
        self.backend = backend
        self.name = "facesim" if backend == "onnx" else "facesim_dlib"
        self.n_frames = int(n_frames)
        self.comparable = backend == "onnx" and self.n_frames == N_FRAMES
        self.same_scale = backend == "onnx"
        self.model_dir, self.device = model_dir, device
        self.pipeline = pipeline

    def settings(self) -> dict:
        """What decides the values (the runner records it and never mixes rows of other settings)."""
        return {"backend": self.backend, "n_frames": self.n_frames}

    def load(self) -> None:
        if self.pipeline is None:
            self.pipeline = (OnnxFacePipeline(self.model_dir, self.device) if self.backend == "onnx"
                             else DlibFacePipeline())

    def applies_to(self, sample: Sample) -> bool:
        return any(k in sample.id for k in FACE_ID_KEYS)

    def compute_record(self, video: Video, sample: Sample) -> dict:
        self.load()
        ref_path = reference_face_path(sample)
        if ref_path is None:
            return {"value": None, "details": {"reason": "no man/woman reference image in img_paths"}}
        ref = self.pipeline.embed_largest(load_rgb(ref_path))
        if ref is None:
            return {"value": None, "details": {"reason": f"no face detected in reference {ref_path.name}"}}
        sims: dict[str, list[float]] = {k: [] for k in ref}
        with_face = 0
        for frame in video.uniform(self.n_frames):
            emb = self.pipeline.embed_largest(frame)
            if emb is None:
                continue
            with_face += 1
            for k in ref:
                sims[k].append(float(np.dot(ref[k], emb[k])))
        main = "cur" if self.backend == "onnx" else "dlib"
        details = {"metric": self.name, "frames_with_face": with_face, "n_frames": self.n_frames,
                   "reference": ref_path.name}
        if "arc" in sims:      # FaceSim-Arc is reported by the original but weighs nothing in the total
            details["facesim_arc"] = arc_score_as_official(sims["arc"])
            details["facesim_arc_zeros_dropped"] = facesim_from_sims(sims["arc"])
        return {"value": facesim_from_sims(sims[main]), "details": details}

    def compute(self, video: Video, sample: Sample) -> float | None:
        return self.compute_record(video, sample)["value"]


FaceSim = FaceSimCur   # the runner's registry name
