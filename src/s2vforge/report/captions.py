"""Report section for the caption stage: who captioned, every verdict counted, and the subjects
a caption names that grounding then never found (per clip), for report/html.py's SECTIONS.
Each clip's captions themselves are shown beside the clip (report/pages.py::caption_block)."""
from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

MAX_LISTED = 200


def _esc(x) -> str:
    return html.escape("" if x is None else str(x))


def named_but_not_found(captions: list[dict], subjects: list[dict]) -> dict[str, list[str]]:
    """clip_id -> the caption's subject/object tags with no kept subject of that phrase."""
    found: dict[str, set[str]] = {}
    for s in subjects:
        if s.get("keep"):
            found.setdefault(s["clip_id"], set()).add(str(s.get("phrase") or "").lower())
    missing = {}
    for c in captions:
        tags = [t for t in [*(c.get("subject_tags") or []), *(c.get("object_tags") or [])]
                if t.lower() not in ("person", "face")]
        lost = [t for t in tags if t.lower() not in found.get(c["clip_id"], set())]
        if lost:
            missing[c["clip_id"]] = lost
    return missing


def captions_section(dataset: Path) -> str:
    path = Path(dataset) / "captions.parquet"
    if not path.exists():
        return ""
    rows = pq.read_table(path).to_pylist()
    by = Counter(r.get("captioner") or "?" for r in rows)
    verdicts = Counter(v.split(":")[0] for r in rows for v in (r.get("verdicts") or []))
    errors = sum(1 for r in rows if r.get("error"))
    parts = ['<h2>Captions</h2>',
             f"<p>{len(rows):,} clips captioned; {errors:,} without a caption. Captioner <code>facts</code> means "
             "the embedded captioner: a description of what the pipeline measured, not a model's caption.</p>",
             '<table class="captioners"><tr><th>captioner</th><th>clips</th></tr>' +
             "".join(f'<tr><td>{_esc(k)}</td><td class="n">{n:,}</td></tr>' for k, n in sorted(by.items())) + "</table>"]
    if verdicts:
        parts.append('<h3>Caption verdicts</h3><table class="caption-verdicts"><tr><th>verdict</th><th>clips</th></tr>' +
                     "".join(f'<tr><td>{_esc(k)}</td><td class="n">{n:,}</td></tr>'
                             for k, n in sorted(verdicts.items())) + "</table>")
    spath = Path(dataset) / "subjects.parquet"
    if spath.exists():
        subjects = pq.read_table(spath, columns=["clip_id", "phrase", "keep"]).to_pylist()
        missing = named_but_not_found(rows, subjects)
        parts.append(f'<h3>Named but not found</h3><p class="named-not-found" data-n="{len(missing)}">'
                     f"{len(missing):,} clips name subjects that grounding did not find"
                     + (":" if missing else ".") + "</p>")
        if missing:
            shown = sorted(missing.items())[:MAX_LISTED]
            parts.append('<table class="missing"><tr><th>clip</th><th>named, not found</th></tr>' +
                         "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(', '.join(v))}</td></tr>" for k, v in shown)
                         + "</table>" + (f"<p>first {MAX_LISTED} of {len(missing):,}</p>"
                                         if len(missing) > MAX_LISTED else ""))
    return "\n".join(parts)
