"""The HTML report of a dataset directory (tables read back from Parquet).

DATASET/report.html holds the summary (counts, input statuses, every reject reason counted,
score histograms with the recipe's thresholds, unusable inputs with their errors, a few example
clips per reason), the first page of clips and the later stages' sections (`SECTIONS`).
DATASET/report_pages/page-NNNN.html hold every clip, `page_size` a page, linked first/prev/next/
last (report/pages.py). Clips and thumbnails are linked by their relative paths (clips/, thumbs/),
so the report is opened from the dataset folder (or served from it); the histograms are inline
SVG (report/plots.py). Nothing in the pages depends on the time or the machine: the same tables
give the same bytes.

Thresholds are the recipe's: curate records the recipe it ran with in DATASET/curate_run.json
(`recipe.filters`, the engine's run record); without that file the bounds recorded in the
clips' `rejects` are drawn instead, and the page says so.
"""
from __future__ import annotations

import html
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..engine.writer import atomic_write
from ..reasons import Code
from . import pages as P
from .plots import svg_histogram

PAGE_SIZE = 200            # clips a page
EXAMPLES_PER_REASON = 3    # example cards a reason on the summary page
MAX_INLINE_INPUTS = 200    # unusable inputs listed on the summary page (all of them in report_pages/inputs.html)


def _esc(x) -> str:
    return html.escape("" if x is None else str(x))


def _put(path: Path, data: bytes) -> None:
    """Atomic write without fsync: the report is derived and rewritten on every run."""
    def put(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    atomic_write(path, put)


def _listing(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _run_record(dataset: Path) -> dict:
    try:
        return json.loads((dataset / "curate_run.json").read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class ReasonRow:
    code: str
    column: str | None
    bound: float | None
    text: str
    clips: int
    first: list[int]          # row indices of the first clips with this reason (examples)

    @property
    def group(self) -> str:
        return self.column or self.code


def reason_counts(rows: P.ClipRows, examples: int = EXAMPLES_PER_REASON) -> list[ReasonRow]:
    """Every reason in clips.parquet's `rejects`, keyed by (code, column), with how many clips
    carry it; most frequent first, ties by code and column."""
    out: dict[tuple, ReasonRow] = {}
    for i in range(rows.n):
        seen = set()
        for j in range(rows.offsets[i], rows.offsets[i + 1]):
            key = (rows.codes[j], rows.columns[j])
            if key in seen:              # the same reason twice on one clip counts once
                continue
            seen.add(key)
            r = out.get(key)
            if r is None:
                out[key] = r = ReasonRow(key[0], key[1], rows.bounds[j], rows.texts[j], 0, [])
            r.clips += 1
            if len(r.first) < examples:
                r.first.append(i)
    return sorted(out.values(), key=lambda r: (-r.clips, r.code, r.column or ""))


def _kv(rows) -> str:
    return "<table class='kv'>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows) + "</table>"


def _reasons_table(reasons: list[ReasonRow], n_clips: int) -> str:
    never = {Code.TOO_SHORT.value, Code.NO_FRAMES.value}
    rows = []
    for r in reasons:
        bound = "" if r.bound is None else P.fmt_score(r.bound)
        scored = "no (never scored)" if r.code in never else "yes"
        rows.append(f'<tr data-code="{_esc(r.code)}" data-column="{_esc(r.column)}" data-count="{r.clips}">'
                    f'<td><code>{_esc(r.text)}</code></td><td>{_esc(r.code)}</td><td>{_esc(r.column or "")}</td>'
                    f'<td>{_esc(bound)}</td><td>{scored}</td><td class="n">{r.clips:,}</td>'
                    f'<td class="n">{100.0 * r.clips / max(n_clips, 1):.1f}%</td></tr>')
    return ("<h2 id='reasons-h'>Reject reasons</h2><p>Every reason in clips.parquet's <code>rejects</code>, "
            "counted in clips (a clip can fail several filters), including clips whose file was never written "
            "(too short, no frames, encode failures). No rejected clip has a clip file.</p>"
            "<table id='reasons' class='reasons'><tr><th>reason</th><th>code</th><th>column</th><th>bound</th>"
            "<th>scored</th><th>clips</th><th>share of clips</th></tr>" + "".join(rows) + "</table>")


def _filters(run: dict, reasons: list[ReasonRow]) -> tuple[dict, str]:
    """The thresholds to draw and where they come from."""
    recipe = run.get("recipe") or {}
    if isinstance(recipe.get("filters"), dict):
        return recipe["filters"], f"the recipe <b>{_esc(recipe.get('name'))}</b> as recorded in curate_run.json"
    found: dict[str, dict] = {}
    for r in reasons:
        if r.column and r.bound is not None:
            found.setdefault(r.column, {})["min" if r.code == Code.BELOW_MIN.value else "max"] = r.bound
    return found, "the bounds recorded in the clips' rejects (no curate_run.json: bounds no clip crossed are unknown)"


def _skipped_columns(unavailable: dict) -> set[str]:
    if not unavailable:
        return set()
    try:
        from ..stages.scores import SCORERS
    except Exception:          # the report never fails for want of the registry
        return set()
    return {c for name in unavailable if name in SCORERS for c in SCORERS[name].columns}


def _histograms(clips: pa.Table, score_cols: list[str], filters: dict, skipped: set[str], source: str) -> str:
    keep = clips.column("keep").to_numpy(zero_copy_only=False).astype(bool)
    svgs, empty = [], []
    for col in score_cols:
        arr = clips.column(col).to_numpy(zero_copy_only=False).astype(np.float64)
        ok = np.isfinite(arr)
        if not ok.any():
            empty.append(col)
            continue
        svgs.append(svg_histogram(col, arr[ok], keep[ok], filters.get(col), applied=col not in skipped))
    if not svgs and not empty:
        return ""
    unfiltered = [c for c in score_cols if c not in filters and c not in empty]
    notes = []
    if empty:
        notes.append("No values (scorer off, unavailable, or only unscored clips): " + ", ".join(
            f"<code>{_esc(c)}</code>" for c in empty) + ".")
    if unfiltered:
        notes.append("No recipe filter (no line): " + ", ".join(f"<code>{_esc(c)}</code>" for c in unfiltered) + ".")
    return ("<h2 id='histograms-h'>Score distributions</h2>"
            f"<p>Every scored clip; blue: kept, pink: rejected. Dashed red lines: thresholds from {source}.</p>"
            + "".join(f"<p class='note'>{n}</p>" for n in notes) +
            f"<div id='histograms' class='grid'>{''.join(svgs)}</div>")


def _inputs_table(bad: list[dict]) -> str:
    return ("<table class='inputs'><tr><th>path</th><th>status</th><th>error</th></tr>" +
            "".join(f"<tr data-status='{_esc(v['status'])}'><td><code>{_esc(v['path'])}</code></td>"
                    f"<td>{_esc(v['status'])}</td><td>{_esc(v['error'])}</td></tr>" for v in bad) + "</table>")


def _write_pages(dataset: Path, clips: P.ClipRows, ctx: P.CardContext, page_size: int) -> tuple[int, list[dict]]:
    """Write report_pages/page-NNNN.html for every page; returns (pages, the rows of page 1)."""
    n = clips.n
    pages = P.n_pages(n, page_size)
    out_dir = dataset / P.PAGES_DIR
    first_rows: list[dict] = []
    for page in range(1, pages + 1):
        rows = clips.rows((page - 1) * page_size, page * page_size)
        if page == 1:
            first_rows = rows
        nav = P.pager(page, pages, in_pages_dir=True)
        body = (f"<h1>Clips, page {page} of {pages}</h1>"
                + P.showing_line(page, pages, len(rows), page_size, n) + nav
                + P.clip_grid(rows, ctx, "../") + nav)
        _put(out_dir / P.page_name(page), P.page_document(f"s2vforge clips, page {page} of {pages}", CSS, body))
    # pages of an earlier, longer report would be stale
    for name in sorted(_listing(out_dir)):
        if name.startswith("page-") and name.endswith(".html"):
            try:
                number = int(name[5:-5])
            except ValueError:
                continue
            if number > pages:
                (out_dir / name).unlink(missing_ok=True)
    return pages, first_rows


def curation_report(dataset: Path, page_size: int = PAGE_SIZE) -> str:
    """The curation part of report.html; writes report_pages/ on the way."""
    dataset = Path(dataset)
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    videos = pq.read_table(dataset / "videos.parquet", columns=["video_id", "path", "status", "error"]).to_pylist()
    table = pq.read_table(dataset / "clips.parquet")
    score_cols = sorted(c for c in table.column_names if c.startswith("score_"))
    clips = table.select([c for c in P.PAGE_COLUMNS if c in table.column_names] + score_cols)
    run = _run_record(dataset)
    recipe = run.get("recipe") or {}
    unavailable = (run.get("summary") or {}).get("unavailable") or {}
    n = clips.num_rows
    keep = clips.column("keep")
    n_kept = int(pc.sum(pc.cast(keep, pa.int64())).as_py() or 0) if n else 0
    kept_s = pc.sum(pc.filter(clips.column("duration_s"), keep)).as_py() if n_kept else 0.0
    status = Counter(v["status"] for v in videos)
    rows = P.ClipRows(clips, score_cols)
    reasons = reason_counts(rows)
    filters, source = _filters(run, reasons)

    names = {v["video_id"]: v["path"].rsplit("/", 1)[-1] for v in videos if v["path"]}
    ids = rows.cols["clip_id"]
    captions = {}
    if (dataset / "captions.parquet").exists():      # the caption stage's, shown beside each clip
        captions = {r["clip_id"]: r for r in pq.read_table(dataset / "captions.parquet").to_pylist()}
    ctx = P.CardContext(names=names, clip_files=_listing(dataset / "clips"), thumb_files=_listing(dataset / "thumbs"),
                        score_columns=score_cols, captions=captions)
    pages, first_rows = _write_pages(dataset, rows, ctx, page_size)

    parts = [f"<h1>s2vforge curation report</h1><p>Dataset <code>{_esc(dataset.resolve())}</code>, recipe "
             f"<b>{_esc(recipe.get('name'))}</b>.</p>",
             _kv([("input files", len(videos)), ("clips (incl. too short)", f"{n:,}"), ("kept clips", f"{n_kept:,}"),
                  ("rejected clips", f"{n - n_kept:,}"), ("kept duration (s)", f"{kept_s or 0.0:.1f}")]),
             "<h2>Inputs by status</h2><table id='video-status' class='kv'>" +
             "".join(f"<tr data-status='{_esc(k)}'><th>{_esc(k)}</th><td>{v:,}</td></tr>"
                     for k, v in sorted(status.items(), key=lambda kv: (kv[0] != "ok", kv[0]))) + "</table>"]
    if unavailable:
        parts.append("<h2>Scores not computed</h2><p>These scorers could not run, so their columns are null and "
                     "their filters were not applied:</p><ul>" +
                     "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in sorted(unavailable.items())) + "</ul>")
    parts.append(_reasons_table(reasons, n) if reasons else "<h2>Reject reasons</h2><p>No clip was rejected.</p>")
    parts.append(_histograms(clips, score_cols, filters, _skipped_columns(unavailable), source))
    bad = [v for v in videos if v["status"] != "ok"]
    if bad:
        more = ""
        if len(bad) > MAX_INLINE_INPUTS:
            body = "<h1>Inputs that could not be used</h1><p><a href='../report.html'>summary</a></p>" + _inputs_table(bad)
            _put(dataset / P.PAGES_DIR / "inputs.html", P.page_document("s2vforge unusable inputs", CSS, body))
            more = (f"<p>Showing {MAX_INLINE_INPUTS:,} of {len(bad):,}; all are in "
                    f"<a href='{P.PAGES_DIR}/inputs.html'>{P.PAGES_DIR}/inputs.html</a>.</p>")
        parts.append("<h2>Inputs that could not be used</h2><p>Error and duplicate rows of videos.parquet.</p>"
                     + _inputs_table(bad[:MAX_INLINE_INPUTS]) + more)
    if reasons:
        idx = sorted({i for r in reasons for i in r.first})
        ctx.page_of = {ids[i]: i // page_size + 1 for i in idx}
        cells = []
        for r in reasons:
            cards = "".join(P.clip_card(rows.row(i), ctx, "", link_page=True) for i in r.first)
            cells.append(f"<h3><code>{_esc(r.text)}</code> ({r.clips:,} clips)</h3><div class='grid'>{cards}</div>")
        parts.append(f"<h2 id='examples-h'>Examples per reason</h2><p>The first {EXAMPLES_PER_REASON} clips "
                     f"(in clip_id order) of every reason; each links to its page.</p><div id='examples'>"
                     + "".join(cells) + "</div>")
    if n:
        nav = P.pager(1, pages, in_pages_dir=False)
        parts.append("<h2 id='clips-h'>Clips</h2>" + P.showing_line(1, pages, len(first_rows), page_size, n)
                     + f"<p>Every clip, kept and rejected, {page_size:,} a page: all pages are in "
                       f"<code>{P.PAGES_DIR}/</code>.</p>" + nav + P.clip_grid(first_rows, ctx, "") + nav)
    return "\n".join(p for p in parts if p)


def curation_section(dataset: Path) -> str:
    return curation_report(dataset)


def _subjects_section(dataset: Path) -> str:
    from .subjects import subjects_section   # imported lazily: the subjects page is optional
    return subjects_section(dataset)


def _pairs_section(dataset: Path) -> str:
    from .pairs import pairs_section      # imported lazily: the pairs page is optional
    return pairs_section(dataset)


def _captions_section(dataset: Path) -> str:
    from .captions import captions_section
    return captions_section(dataset)


def _samples_section(dataset: Path) -> str:
    from .samples import samples_section
    return samples_section(dataset)


# later stages' sections, after the curation part: section(dataset) -> HTML fragment
SECTIONS = [_captions_section, _subjects_section, _pairs_section]

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}
td.n{text-align:right}.kv th{background:#f5f5f5}.grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;width:240px;font-size:11px}figure img,figure video{width:240px;border:1px solid #ccc;display:block}
figure.rejected{background:#fff6f6}figure.kept{background:#f5fbf5}
.scores{margin:2px 0}.scores td,.scores th{font-size:11px;padding:1px 4px}.scores tr.fail td{color:#a33;font-weight:bold}
ul.reasons{margin:2px 0;padding-left:16px}.why{color:#a33}.ok{color:#2a7a2a;font-weight:bold}.id{color:#888;display:block}
.note{color:#666;font-size:11px}.hist{border:1px solid #eee;background:#fff}
.noimg{width:240px;height:135px;background:#eee;display:flex;flex-direction:column;justify-content:center;text-align:center;color:#666}
.pager{margin:.6em 0;font-size:14px}.pager .off{color:#aaa}
.caption{margin:3px 0;padding:2px 4px;background:#f7f7fb;border-left:3px solid #99c}.caption p{margin:2px 0}
.caption .tags,.caption .verdicts{display:block;color:#555}.caption.error{color:#a33}"""


def write_report(dataset: str | Path, page_size: int = PAGE_SIZE) -> Path:
    """Write DATASET/report.html (and DATASET/report_pages/); returns the report's path."""
    dataset = Path(dataset)
    body = ""
    if (dataset / "clips.parquet").exists():
        body = "\n".join([curation_report(dataset, page_size)] + [section(dataset) for section in SECTIONS])
    elif (dataset / "samples.parquet").exists():     # an export folder
        body = _samples_section(dataset)
    page = P.page_document("s2vforge report", CSS, body)
    out = dataset / "report.html"
    _put(out, page)
    return out
