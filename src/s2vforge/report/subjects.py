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


def _verdict_key(v: str) -> str:
    return v.split(":")[0].split("<")[0].split(">")[0]


def subjects_section(dataset: Path) -> str:
    dataset = Path(dataset)
    path = dataset / "subjects.parquet"
    if not path.exists():
        return ""
    import pyarrow.parquet as pq
    rows = pq.read_table(path, columns=["subject_id", "clip_id", "phrase", "category", "bbox", "crop_path", "det_score",
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
    caption = Counter(_verdict_key(v) for cid in clips for v in
                      next((r["caption_verdicts"] or [] for r in rows if r["clip_id"] == cid), []))
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
    parts.append(f"<h2>Kept subject crops ({len(kept)})</h2><div class='grid subj'>{''.join(cells)}</div>{more}")
    return "\n".join(parts)
