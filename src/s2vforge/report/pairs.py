"""Report section for the pairs stage: counts by kind and category, identity clusters, and a
sample of pairs shown as the target frame (subject box drawn) beside its reference crop(s),
with similarity, context diversity and every verdict.

`pairs_section(dataset)` returns an HTML fragment (empty when pairs.parquet is absent), for
report/html.py's SECTIONS. Images are small embedded JPEGs, references on white (OpenS2V-Nexus'
reference-image convention), as in report/subjects.py.
"""
from __future__ import annotations

import base64
import html
import json
from collections import Counter
from pathlib import Path

MAX_SAMPLES = 24          # pairs shown with images
FRAME_WIDTH = 320
REF_SIDE = 160
KINDS = ("cross_video", "cross_clip", "in_pair", "none")

CSS = ("<style>.pairs .pair{display:flex;gap:8px;align-items:flex-start;border:1px solid #eee;padding:6px;"
       "margin:4px;font-size:11px;max-width:720px}.pairs .pair img{border:1px solid #ddd}"
       ".pairs .refs{display:flex;flex-direction:column;gap:4px}.pairs ul{margin:2px 0;padding-left:16px}</style>")


def _esc(x) -> str:
    return html.escape("" if x is None else str(x))


def _jpeg_b64(bgr) -> str | None:
    import cv2
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 82])
    return base64.b64encode(buf.tobytes()).decode() if ok else None


def _image_bgr(path: Path, box=None):
    """A crop/bank image as BGR on white (alpha composited), cut to box, scaled to REF_SIDE."""
    import cv2
    import numpy as np
    from ..stages.pairs.clipembed import read_rgba
    img = read_rgba(Path(path))
    if img is None:
        return None
    if box:
        x0, y0, x1, y1 = (int(v) for v in box)
        img = img[y0:y1, x0:x1]
    if img.shape[2] == 4:
        a = img[:, :, 3:4].astype(np.float32) / 255.0
        img = (img[:, :, :3].astype(np.float32) * a + 255.0 * (1 - a)).astype(np.uint8)
    img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    s = REF_SIDE / max(h, w, 1)
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _frames(dataset: Path, wanted: dict[str, set[int]]) -> dict[tuple[str, int], object]:
    """One decode per clip for the frames the sample needs (RGB)."""
    from ..stages.pairs.clipembed import clip_frames_at
    out = {}
    for clip_id, idx in wanted.items():
        try:
            for i, rgb in clip_frames_at(dataset / "clips" / f"{clip_id}.mp4", idx).items():
                out[(clip_id, i)] = rgb
        except Exception:   # an unreadable clip only costs its picture
            continue
    return out


def _bank_meta(dataset: Path, ref_id: str, category: str) -> dict:
    try:
        from ..stages.pairs.bank import IdentityBank
        return IdentityBank.open(dataset / "index" / category).meta_of([ref_id])[0]
    except Exception:
        return {}


def _reason(rejected: str) -> str:
    """The verdict name of a "<candidate id>:<verdict>[:detail]" entry (bank ids start "bank:")."""
    parts = rejected.split(":")
    rest = parts[2:] if parts[0] == "bank" else parts[1:]
    return rest[0] if rest else rejected


def _sample(rows: list[dict]) -> list[dict]:
    """Up to MAX_SAMPLES rows, spread over kinds and categories (cross pairs first, then by pair_id)."""
    by: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["pair_id"]):
        by.setdefault((r["kind"], r["category"]), []).append(r)
    keys = sorted(by, key=lambda k: (KINDS.index(k[0]) if k[0] in KINDS else 9, k[1]))
    out: list[dict] = []
    while len(out) < MAX_SAMPLES and any(by[k] for k in keys):
        for k in keys:
            if by[k] and len(out) < MAX_SAMPLES:
                out.append(by[k].pop(0))
    return out


def _pair_cells(dataset: Path, sample: list[dict], subjects: dict[str, dict]) -> str:
    import cv2
    wanted: dict[str, set[int]] = {}
    for r in sample:
        t = subjects.get(r["target_subject_id"])
        if t and t.get("frame_idx") is not None:
            wanted.setdefault(t["clip_id"], set()).add(int(t["frame_idx"]))
    frames = _frames(dataset, wanted)
    cells = []
    for r in sample:
        t = subjects.get(r["target_subject_id"]) or {}
        rgb = frames.get((t.get("clip_id"), int(t["frame_idx"]))) if t.get("frame_idx") is not None else None
        if rgb is not None:
            img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            if t.get("bbox"):
                x0, y0, x1, y1 = (int(v) for v in t["bbox"])
                cv2.rectangle(img, (x0, y0), (x1, y1), (60, 200, 60), max(2, img.shape[1] // 300))
            h, w = img.shape[:2]
            img = cv2.resize(img, (FRAME_WIDTH, max(1, round(h * FRAME_WIDTH / w))), interpolation=cv2.INTER_AREA)
            b64 = _jpeg_b64(img)
            target = f"<img width='{FRAME_WIDTH}' src='data:image/jpeg;base64,{b64}'>" if b64 else ""
        else:
            target = "<div class='noimg'>no frame</div>"
        refs = []
        for ref_id in r["reference_subject_ids"] or []:
            if ref_id in subjects and subjects[ref_id].get("crop_path"):
                bgr = _image_bgr(dataset / subjects[ref_id]["crop_path"])
            else:
                meta = _bank_meta(dataset, ref_id, r["category"])
                bgr = _image_bgr(Path(meta["path"]), meta.get("box")) if meta.get("path") else None
            b64 = _jpeg_b64(bgr) if bgr is not None else None
            refs.append(f"<img src='data:image/jpeg;base64,{b64}' title='{_esc(ref_id)}'>" if b64
                        else f"<div class='noimg' style='width:{REF_SIDE}px;height:{REF_SIDE // 2}px'>{_esc(ref_id)}</div>")
        sim = "-" if r["similarity"] is None else f"{r['similarity']:.3f}"
        div = "-" if r["diversity"] is None else f"{r['diversity']:.3f}"
        verdicts = "".join(f"<li>{_esc(v)}</li>" for v in r["verdicts"] or [])
        n_rej = len(r["rejected"] or [])
        rej = "".join(f"<li class='why'>{_esc(v)}</li>" for v in (r["rejected"] or [])[:4])
        more = f"<li>{n_rej - 4} more rejected</li>" if n_rej > 4 else ""
        cells.append(
            f"<div class='pair'><div>{target}<br><small>target {_esc(r['target_subject_id'])}</small></div>"
            f"<div class='refs'>{''.join(refs) or '<i>no reference</i>'}</div>"
            f"<div><b>{_esc(r['kind'])}</b> {_esc(r['category'])} &laquo;{_esc(r['phrase'])}&raquo;<br>"
            f"similarity {sim}, diversity {div}<br>source {_esc(r['reference_source'])}, "
            f"cluster <code>{_esc(r['cluster_id'])}</code><ul>{verdicts}</ul>"
            f"{'<small>rejected candidates:</small><ul>' + rej + more + '</ul>' if n_rej else ''}</div></div>")
    return "".join(cells)


def pairs_section(dataset: Path) -> str:
    dataset = Path(dataset)
    path = dataset / "pairs.parquet"
    if not path.exists():
        return ""
    import pyarrow.parquet as pq
    rows = pq.read_table(path).to_pylist()
    run: dict = {}
    if (dataset / "pairs_run.json").exists():
        try:
            run = json.loads((dataset / "pairs_run.json").read_text())
        except ValueError:
            run = {}
    summary = run.get("summary") or {}
    subjects: dict[str, dict] = {}
    if (dataset / "subjects.parquet").exists():
        subjects = {s["subject_id"]: s for s in pq.read_table(
            dataset / "subjects.parquet", columns=["subject_id", "clip_id", "frame_idx", "bbox", "crop_path"]).to_pylist()}
    cats = sorted({r["category"] for r in rows})
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)] + sorted(
        {r["kind"] for r in rows} - set(KINDS))
    count = Counter((r["category"], r["kind"]) for r in rows)
    table = ("<table><tr><th>category</th>" + "".join(f"<th>{_esc(k)}</th>" for k in kinds) + "<th>total</th></tr>" +
             "".join(f"<tr><th>{_esc(c)}</th>" + "".join(f"<td>{count.get((c, k), 0)}</td>" for k in kinds) +
                     f"<td>{sum(count.get((c, k), 0) for k in kinds)}</td></tr>" for c in cats) +
             "<tr><th>all</th>" + "".join(f"<td>{sum(count.get((c, k), 0) for c in cats)}</td>" for k in kinds) +
             f"<td>{len(rows)}</td></tr></table>")
    cl = summary.get("clusters") or {}
    row_clusters = Counter(r["cluster_id"] for r in rows)
    sizes = Counter(row_clusters.values())
    reasons = Counter(_reason(v) for r in rows for v in r["rejected"] or [])
    parts = [CSS, "<h1>Identity pairs</h1>",
             "<table class='kv'>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in [
                 ("target tracks (rows)", len(rows)), ("kept rows", sum(1 for r in rows if r["keep"])),
                 ("subject instances", summary.get("n_instances", "?")),
                 ("bank entries from --bank folders", summary.get("n_bank_entries", 0)),
                 ("banks", ", ".join(f"{c}: {b.get('size')} ({b.get('index')})"
                                     for c, b in (summary.get("banks") or {}).items()) or "none"),
                 ("embedders", ", ".join(f"{c}: {n}" for c, n in (summary.get("embedders") or {}).items()) or "?"),
             ]) + "</table>",
             "<h2>Pairs by kind and category</h2>" + table,
             "<h2>Identity clusters</h2><table class='kv'>" + "".join(
                 f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in [
                     ("clusters (all instances + bank refs)", cl.get("n_clusters", "?")),
                     ("singletons", cl.get("n_singletons", "?")), ("largest", cl.get("largest", "?")),
                     ("instance cluster sizes", ", ".join(f"{k}: {v}" for k, v in sorted(
                         (cl.get("sizes") or {}).items(), key=lambda kv: int(kv[0]))) or "-"),
                     ("identities among pair rows", len(row_clusters)),
                     ("rows per identity", ", ".join(f"{s}: {n}" for s, n in sorted(sizes.items())) or "-")]) +
             "</table>"]
    if reasons:
        parts.append("<h2>Why candidates were rejected</h2><table class='kv'>" +
                     "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in reasons.most_common(12)) + "</table>")
    sample = _sample(rows)
    parts.append(f"<h2>Sample pairs ({len(sample)} of {len(rows)})</h2><p>Left: the target frame, subject boxed; "
                 "middle: the reference(s); right: similarity (identity cosine), diversity (context distance) "
                 "and the verdicts.</p>")
    parts.append(f"<div class='pairs'>{_pair_cells(dataset, sample, subjects)}</div>")
    return "\n".join(parts)
