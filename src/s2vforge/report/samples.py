"""Report section for an export: what became a training sample, what was dropped and why,
the splits, the reference kinds, duplicates, the contact sheet of a loaded batch, and a few
samples shown as their references beside the caption.

`samples_section(root)` returns an HTML fragment (empty when root has no samples.parquet): the
export folder's report.html shows it; images are linked by relative path (they live beside it).
"""
from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pyarrow.parquet as pq

MAX_CARDS = 48
CONTACT_SHEET = "contact_sheet.png"

CSS = ("<style>.samples .card{display:inline-flex;gap:6px;border:1px solid #eee;padding:6px;margin:4px;"
       "font-size:11px;max-width:560px;vertical-align:top}.samples .card img{max-height:96px;border:1px solid #ddd;"
       "background:#fff}.samples .refs{display:flex;gap:4px;flex-wrap:wrap}.samples .cap{max-width:300px}</style>")


def _esc(x) -> str:
    return html.escape("" if x is None else str(x))


def _table(title: str, counts: dict) -> str:
    rows = "".join(f"<tr><td>{_esc(k)}</td><td class='n'>{v}</td></tr>" for k, v in counts.items())
    return f"<h3>{_esc(title)}</h3><table class='kv'>{rows or '<tr><td>none</td></tr>'}</table>"


def samples_section(root: Path) -> str:
    root = Path(root)
    path = root / "samples.parquet"
    if not path.exists():
        return ""
    rows = pq.read_table(path).to_pylist()
    kept = [r for r in rows if r["keep"]]
    drops = Counter(d.split(":")[0] for r in rows for d in r["drop_reasons"] or [])
    parts = [CSS, "<section class='samples'><h2 id='samples-h'>Training samples</h2>",
             f"<p>{len(kept)} of {len(rows)} samples kept (samples.parquet; the rule is in export.json).</p>"]
    parts.append(_table("Splits (kept samples)", dict(sorted(Counter(r["split"] for r in kept).items()))))
    parts.append(_table("Dropped, by reason", dict(sorted(drops.items()))))
    parts.append(_table("References by kind", dict(sorted(Counter(
        ref["kind"] for r in kept for ref in r["references"] or []).items()))))
    if (root / CONTACT_SHEET).exists():
        parts.append(f"<h3>A loaded batch</h3><p>Frames and references of samples loaded through "
                     f"<code>s2vforge.data.S2VDataset</code>.</p><img src='{CONTACT_SHEET}' style='max-width:100%'>")
    cards = []
    for r in kept[:MAX_CARDS]:
        refs = "".join(
            f"<figure style='width:auto'><img src='{quote(ref.get('rgb_path') or ref['rgba_path'])}' "
            f"alt='{_esc(ref['phrase'])}'><figcaption>{_esc(ref['category'])} · {_esc(ref['kind'])}"
            + (f" · sim {ref['similarity']:.3f}" if ref.get("similarity") is not None else "")
            + "</figcaption></figure>" for ref in r["references"] or [])
        cards.append(f"<div class='card'><div class='refs'>{refs}</div><div class='cap'><b>{_esc(r['sample_id'])}</b>"
                     f" ({_esc(r['split'])})<br>{_esc(r['caption'])}<br><a href='{quote(r['clip_path'])}'>clip</a> · "
                     f"{r['n_frames']} frames at {r['fps']:g} fps{' · ' + _esc(r['recut']) if r['recut'] else ''}"
                     f"</div></div>")
    parts.append("<h3>Samples</h3>" + "".join(cards))
    dups = [r for r in rows if r.get("duplicate_of")]
    if dups:
        parts.append("<h3>Near-duplicates</h3><table><tr><th>sample</th><th>duplicate of</th><th>similarity</th></tr>"
                     + "".join(f"<tr><td>{_esc(r['sample_id'])}</td><td>{_esc(r['duplicate_of'])}</td>"
                               f"<td class='n'>{(r['duplicate_similarity'] or 0):.3f}</td></tr>" for r in dups[:200])
                     + "</table>")
    parts.append("</section>")
    return "\n".join(parts)
