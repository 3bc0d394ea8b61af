"""A self-contained HTML report of a dataset directory (tables read back from Parquet).

Images are embedded (base64), so the file can be mailed or opened from any machine.
Later stages add their own sections through `SECTIONS`.
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from ..engine.writer import write_bytes
from ..reasons import Code, group_of

MAX_THUMBS = 48


def _esc(x) -> str:
    return html.escape("" if x is None else str(x))


def _b64_file(path: Path) -> str | None:
    try:
        return base64.b64encode(path.read_bytes()).decode()
    except OSError:
        return None


def _histograms(clips: list[dict], filters: dict) -> list[tuple[str, str]]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    cols = sorted({k for c in clips for k in c if k.startswith("score_")})
    for col in cols:
        vals = [c[col] for c in clips if c.get(col) is not None]
        if not vals:
            continue
        fig, ax = plt.subplots(figsize=(3.4, 2.2), dpi=100)
        ax.hist(vals, bins=min(30, max(5, len(vals) // 2)), color="#4a78b5")
        rule = filters.get(col) or {}
        for key in ("min", "max"):
            if rule.get(key) is not None:
                ax.axvline(rule[key], color="#c0392b", linestyle="--", linewidth=1)
        ax.set_title(col, fontsize=9)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        out.append((col, base64.b64encode(buf.getvalue()).decode()))
    return out


def _thumb_grid(dataset: Path, clips: list[dict], title: str, names: dict[str, str]) -> str:
    cells = []
    for c in clips[:MAX_THUMBS]:
        b64 = _b64_file(dataset / "thumbs" / f"{c['clip_id']}.jpg")
        img = f'<img src="data:image/jpeg;base64,{b64}">' if b64 else '<div class="noimg">no frame</div>'
        reasons = ", ".join(c.get("reject_reasons") or [])
        verdict = f'<span class="why">{_esc(reasons)}</span>' if reasons else '<span class="ok">kept</span>'
        source = names.get(c["video_id"], c["video_id"])
        scores = " ".join(f"{k[6:]}={c[k]:.3g}" for k in sorted(c) if k.startswith("score_") and c[k] is not None)
        cells.append(f'<figure>{img}<figcaption><b>{_esc(source)}</b> {c["start_s"]:.2f}-{c["end_s"]:.2f}s'
                     f'<br>{verdict}<br><small>{_esc(scores)}</small><br><small class="id">{_esc(c["clip_id"])}</small>'
                     f'</figcaption></figure>')
    more = f"<p>{len(clips) - MAX_THUMBS} more not shown.</p>" if len(clips) > MAX_THUMBS else ""
    return f"<h2>{_esc(title)} ({len(clips)})</h2><div class='grid'>{''.join(cells)}</div>{more}"


def curation_section(dataset: Path) -> str:
    videos = pq.read_table(dataset / "videos.parquet").to_pylist()
    clips = pq.read_table(dataset / "clips.parquet").to_pylist()
    run = json.loads((dataset / "curate_run.json").read_text()) if (dataset / "curate_run.json").exists() else {}
    recipe = run.get("recipe", {})
    unavailable = (run.get("summary") or {}).get("unavailable") or {}
    status = Counter(v["status"] for v in videos)
    kept = [c for c in clips if c["keep"]]
    rejected = [c for c in clips if not c["keep"]]
    reasons = Counter(group_of(r) for c in rejected for r in c["rejects"] or [])
    parts = [f"<h1>s2vforge curation report</h1><p>Dataset <code>{_esc(dataset)}</code>, recipe "
             f"<b>{_esc(recipe.get('name'))}</b>.</p>",
             "<table class='kv'>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in [
                 ("input files", len(videos)), ("ok", status.get("ok", 0)), ("errors", status.get("error", 0)),
                 ("duplicates", status.get("duplicate", 0)), ("clips (incl. too short)", len(clips)),
                 ("kept clips", len(kept)), ("rejected clips", len(rejected)),
                 ("kept duration (s)", f"{sum(c['duration_s'] for c in kept):.1f}")]) + "</table>"]
    if unavailable:
        parts.append("<h2>Scores not computed</h2><p>These scorers could not run, so their columns are null and "
                     "their filters were not applied:</p><ul>" +
                     "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in sorted(unavailable.items())) + "</ul>")
    if reasons:
        parts.append("<h2>Rejection reasons</h2><table class='kv'>" +
                     "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in reasons.most_common()) + "</table>")
    hists = _histograms(clips, recipe.get("filters") or {})
    if hists:
        parts.append("<h2>Score distributions</h2><p>Dashed lines: recipe thresholds.</p><div class='grid'>" +
                     "".join(f'<img class="hist" alt="{_esc(c)}" src="data:image/png;base64,{b}">' for c, b in hists) +
                     "</div>")
    bad = [v for v in videos if v["status"] != "ok"]
    if bad:
        parts.append("<h2>Inputs that could not be used</h2><table><tr><th>path</th><th>status</th><th>error</th></tr>" +
                     "".join(f"<tr><td><code>{_esc(v['path'])}</code></td><td>{_esc(v['status'])}</td>"
                             f"<td>{_esc(v['error'])}</td></tr>" for v in bad) + "</table>")
    names = {v["video_id"]: v["path"].rsplit("/", 1)[-1] for v in videos}
    parts.append(_thumb_grid(dataset, kept, "Kept clips", names))
    parts.append(_thumb_grid(dataset, [c for c in rejected if not any(r["code"] == Code.TOO_SHORT.value
                                                                      for r in c["rejects"] or [])],
                             "Rejected clips (scored)", names))
    return "\n".join(parts)


def _subjects_section(dataset: Path) -> str:
    from .subjects import subjects_section   # imported lazily: the subjects page is optional
    return subjects_section(dataset)


def _pairs_section(dataset: Path) -> str:
    from .pairs import pairs_section      # imported lazily: the pairs page is optional
    return pairs_section(dataset)


SECTIONS = [curation_section, _subjects_section, _pairs_section]

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}
.kv th{background:#f5f5f5}.grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;width:240px;font-size:11px}figure img{width:240px;border:1px solid #ccc}
.why{color:#a33}.ok{color:#2a7a2a;font-weight:bold}.id{color:#888}.hist{border:1px solid #eee}.noimg{width:240px;height:135px;background:#eee}"""


def write_report(dataset: str | Path) -> Path:
    dataset = Path(dataset)
    body = "\n".join(section(dataset) for section in SECTIONS if (dataset / "clips.parquet").exists())
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>s2vforge report</title><style>{CSS}</style>" \
           f"</head><body>{body}</body></html>"
    out = dataset / "report.html"
    write_bytes(out, page.encode("utf-8"))
    return out
