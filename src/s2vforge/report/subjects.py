"""Report section for the subjects stage: counts, verdicts and a grid of kept RGBA crops.

`subjects_section(dataset)` returns an HTML fragment (empty when subjects.parquet is absent),
for report/html.py's SECTIONS. Crops are embedded as small JPEGs with the removed background
shown white (OpenS2V-Nexus' reference-image convention), so the report stays small.
"""
from __future__ import annotations

import base64
import html
import json
from collections import Counter
from pathlib import Path

MAX_CROPS = 60

CSS = ("<style>.subj figure{width:160px}"
       ".subj figure img{width:160px;height:160px;object-fit:contain;border:1px solid #eee}</style>")


def _esc(x) -> str:
    return html.escape("" if x is None else str(x))


THUMB_SIDE = 192


def _b64(path: Path) -> str | None:
    """A crop as a small PNG (alpha kept), base64; None when unreadable."""
    import cv2
    import numpy as np
    try:
        data = np.frombuffer(path.read_bytes(), np.uint8)
    except OSError:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    h, w = img.shape[:2]
    s = THUMB_SIDE / max(h, w)
    if s < 1:
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    if img.ndim == 3 and img.shape[2] == 4:   # on white, as OpenS2V-Nexus shows reference images
        a = img[:, :, 3:4].astype(np.float32) / 255.0
        img = (img[:, :, :3].astype(np.float32) * a + 255.0 * (1 - a)).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(buf.tobytes()).decode() if ok else None


MAX_OVERLAY_FRAMES = 12
OVERLAY_WIDTH = 360


def _clip_frame(dataset: Path, clip_id: str, frame_idx: int):
    """Frame `frame_idx` (0 = first frame of the clip) of a kept clip's file, RGB, or None."""
    from ..media.decode import iter_frames
    path = dataset / "clips" / f"{clip_id}.mp4"
    if not path.exists():
        return None
    try:
        for i, _, rgb in iter_frames(str(path)):
            if i == frame_idx:
                return rgb
    except Exception:  # an unreadable clip only costs its overlay
        return None
    return None


def _overlays(dataset: Path, rows: list[dict]) -> str:
    """Frames with every subject box (green kept, red rejected) and mask outline drawn on them."""
    import cv2
    import numpy as np
    from ..stages.subjects.rle import rle_to_mask

    frames: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if r["category"] != "none" and r["bbox"] is not None:
            frames.setdefault((r["clip_id"], r["frame_idx"]), []).append(r)
    keyed = sorted(frames, key=lambda k: (-sum(x["keep"] for x in frames[k]), k))[:MAX_OVERLAY_FRAMES]
    cells = []
    for clip_id, idx in keyed:
        rgb = _clip_frame(dataset, clip_id, idx)
        if rgb is None:
            continue
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for r in frames[(clip_id, idx)]:
            colour = (60, 200, 60) if r["keep"] else (60, 60, 220)
            if r.get("mask_rle"):
                try:
                    mask = rle_to_mask(json.loads(r["mask_rle"])).astype(np.uint8)
                    if mask.shape == img.shape[:2]:
                        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                        cv2.drawContours(img, contours, -1, (255, 200, 0), 2)
                except (ValueError, KeyError, TypeError):
                    pass
            x0, y0, x1, y1 = (int(v) for v in r["bbox"])
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, 2)
            cv2.putText(img, f"{r['category']} {r['det_score']:.2f}", (x0 + 3, max(14, y0 + 16)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
        h, w = img.shape[:2]
        img = cv2.resize(img, (OVERLAY_WIDTH, max(1, round(h * OVERLAY_WIDTH / w))), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            cells.append(f"<figure style='width:{OVERLAY_WIDTH}px'><img style='width:{OVERLAY_WIDTH}px' "
                         f"src='data:image/jpeg;base64,{base64.b64encode(buf.tobytes()).decode()}'>"
                         f"<figcaption><small>{_esc(clip_id)} frame {idx}</small></figcaption></figure>")
    if not cells:
        return ""
    return ("<h2>Subjects on frames</h2><p>Boxes: green kept, red rejected; blue: mask outline.</p>"
            f"<div class='grid'>{''.join(cells)}</div>")


def _verdict_key(v: str) -> str:
    from ..reasons import verdict_code
    return verdict_code(v)


def subjects_section(dataset: Path) -> str:
    dataset = Path(dataset)
    path = dataset / "subjects.parquet"
    if not path.exists():
        return ""
    import pyarrow.parquet as pq
    rows = pq.read_table(path, columns=["subject_id", "clip_id", "frame_idx", "mask_rle", "phrase", "category", "bbox",
                                        "crop_path", "det_score",
                                        "backend", "checks", "keep", "caption_verdicts", "quality"]).to_pylist()
    run = {}
    if (dataset / "subjects_run.json").exists():
        try:
            run = json.loads((dataset / "subjects_run.json").read_text())
        except ValueError:
            run = {}
    summary = run.get("summary") or {}
    kept = [r for r in rows if r["keep"]]
    clips = {r["clip_id"] for r in rows}
    clips_with = {r["clip_id"] for r in kept}
    by_cat = Counter(r["category"] for r in kept)
    by_backend = Counter(r["backend"] for r in kept)
    verdicts = Counter(_verdict_key(v) for r in rows if not r["keep"] for v in r["checks"] or [])
    first_of_clip: dict[str, list] = {}      # caption verdicts are per clip: the clip's first row holds them
    for r in rows:
        first_of_clip.setdefault(r["clip_id"], r["caption_verdicts"] or [])
    caption = Counter(_verdict_key(v) for verdicts in first_of_clip.values() for v in verdicts)
    parts = [CSS, "<h1>Subjects</h1>",
             "<table class='kv'>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in [
                 ("clips processed", len(clips)), ("clips with a kept subject", len(clips_with)),
                 ("candidate boxes", sum(1 for r in rows if r["category"] != "none")), ("kept instances", len(kept)),
                 ("kept by category", ", ".join(f"{k} {v}" for k, v in by_cat.most_common()) or "none"),
                 ("kept by detector", ", ".join(f"{k} {v}" for k, v in by_backend.most_common()) or "none")]) + "</table>"]
    dets = summary.get("detectors") or {}
    if dets:
        parts.append("<p>Detectors: " + ", ".join(f"{_esc(k)} = <b>{_esc(v)}</b>" for k, v in dets.items() if v) +
                     ". Boxes from <code>saliency-*</code> are class-agnostic salient regions, not recognised objects.</p>")
    unavailable = summary.get("unavailable") or {}
    if unavailable:
        parts.append("<h2>Detectors not run</h2><ul>" + "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>"
                                                                 for k, v in sorted(unavailable.items())) + "</ul>")
    if verdicts:
        parts.append("<h2>Why boxes were not kept</h2><table class='kv'>" +
                     "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in verdicts.most_common()) + "</table>")
    if caption:
        parts.append("<h2>Caption verdicts (clips)</h2><table class='kv'>" +
                     "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in caption.most_common()) + "</table>")
    cells = []
    for r in kept[:MAX_CROPS]:
        b64 = _b64(dataset / r["crop_path"]) if r["crop_path"] else None
        img = f'<img src="data:image/jpeg;base64,{b64}">' if b64 else '<div class="noimg">no crop</div>'
        q = {}
        try:
            q = json.loads(r["quality"]) if r["quality"] else {}
        except ValueError:
            pass
        qs = " ".join(f"{k}={q[k]:.3g}" for k in ("sharpness", "brisque", "aesthetic") if isinstance(q.get(k), (int, float)))
        cells.append(f"<figure>{img}<figcaption><b>{_esc(r['phrase'])}</b> ({_esc(r['category'])}, "
                     f"{r['det_score']:.2f})<br><small>{_esc(r['clip_id'])}</small><br><small>{_esc(qs)}</small>"
                     f"</figcaption></figure>")
    more = f"<p>{len(kept) - MAX_CROPS} more not shown.</p>" if len(kept) > MAX_CROPS else ""
    parts.append(_overlays(dataset, rows))
    parts.append(f"<h2>Kept subject crops ({len(kept)})</h2><div class='grid subj'>{''.join(cells)}</div>{more}")
    return "\n".join(parts)
