"""Clip cards and paging for the curation report.

Every clip of clips.parquet, kept or rejected, is shown once, in table order (clip_id), on pages
of `page_size` clips: report.html holds page 1 beside the summary, and report_pages/page-NNNN.html
holds every page (page-0001 included) with first/prev/next/last links. A card plays the clip
(HTML5 <video> on the relative path clips/<clip_id>.mp4) when its file exists; otherwise it shows
the thumbnail, or a placeholder, with why there is no clip file. Media are linked, not embedded:
pages stay small at 100,000 clips, and the report is read from the dataset folder.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from functools import lru_cache

import pyarrow as pa

from ..reasons import REASON_TYPE, Code

PAGES_DIR = "report_pages"
PAGE_COLUMNS = ("clip_id", "video_id", "start_s", "end_s", "duration_s", "path", "keep", "rejects")
REJECTS_TYPE = pa.list_(REASON_TYPE)


def esc(x) -> str:
    return html.escape("" if x is None else str(x))


def page_name(page: int) -> str:
    return f"page-{page:04d}.html"


def n_pages(n_clips: int, page_size: int) -> int:
    return max(1, math.ceil(n_clips / page_size)) if n_clips else 0


def fmt_score(v: float) -> str:
    return f"{v:.4g}"


# why a clip has no file, by the code of its first non-score reason
NO_FILE = {
    Code.TOO_SHORT.value: "scene shorter than the recipe's split.min_s: not scored, no clip file",
    Code.NO_FRAMES.value: "no analysis frame inside the window: not scored, no clip file",
    Code.WRITE_FAILED.value: "passed the filters, but the clip could not be encoded",
}


@dataclass
class CardContext:
    """What every card needs beside its row."""
    names: dict[str, str]                    # video_id -> file name of the source
    clip_files: set[str]                     # names present in DATASET/clips/
    thumb_files: set[str]                    # names present in DATASET/thumbs/
    score_columns: list[str]
    page_of: dict[str, int] = field(default_factory=dict)   # clip_id -> page (for example cards)
    captions: dict[str, dict] = field(default_factory=dict)  # clip_id -> captions.parquet row (caption stage)


def _no_file_reason(row: dict) -> str:
    rejects = row.get("rejects") or []
    for r in rejects:
        if r["code"] in NO_FILE:
            return NO_FILE[r["code"]]
    if not row["keep"]:
        return "rejected by the filters: no clip file is written"
    if row.get("path"):
        return f"{row['path']} is missing from the dataset folder"
    return "kept, but clip files were not written (recipe write.clips: false)"


@lru_cache(maxsize=1 << 16)
def esc_c(x) -> str:
    """esc for the few distinct strings that repeat on every card (sources, codes, reason texts)."""
    return esc(x)


def _pylist(col) -> list:
    """col.to_pylist(), through NumPy (to_pylist builds a scalar per value: several times slower
    at 1e5 rows); nulls are None, floats stay floats."""
    t = col.type
    if pa.types.is_floating(t):
        return [None if math.isnan(x) else x for x in col.to_numpy(zero_copy_only=False).tolist()]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or (
            col.null_count == 0 and (pa.types.is_boolean(t) or pa.types.is_integer(t))):
        return col.to_numpy(zero_copy_only=False).tolist()
    return col.to_pylist()


class ClipRows:
    """clips.parquet read once into Python lists, column by column (much faster than row dicts
    for a whole table); `row(i)` is the dict clip_card takes, `rejects` included."""

    def __init__(self, table: pa.Table, score_columns: list[str]):
        self.n = table.num_rows
        self.score_columns = list(score_columns)
        names = [c for c in PAGE_COLUMNS if c != "rejects" and c in table.column_names] + self.score_columns
        self.cols = {c: _pylist(table.column(c)) for c in names}
        if self.n:
            rej = table.column("rejects").combine_chunks()
            self.offsets = rej.offsets.to_numpy(zero_copy_only=False).tolist()
            values = rej.values
        else:
            self.offsets, values = [0], pa.array([], REASON_TYPE)
        self.codes = _pylist(values.field("code"))
        self.columns = _pylist(values.field("column"))
        self.bounds = _pylist(values.field("bound"))
        self.texts = _pylist(values.field("text"))

    def rejects(self, i: int) -> list[dict]:
        return [{"code": self.codes[j], "column": self.columns[j], "bound": self.bounds[j], "text": self.texts[j]}
                for j in range(self.offsets[i], self.offsets[i + 1])]

    def row(self, i: int) -> dict:
        r = {c: v[i] for c, v in self.cols.items()}
        r["rejects"] = self.rejects(i)
        return r

    def rows(self, start: int, stop: int) -> list[dict]:
        return [self.row(i) for i in range(start, min(stop, self.n))]


def clip_card(row: dict, ctx: CardContext, prefix: str, link_page: bool = False) -> str:
    """One <figure class="clip"> for a clips.parquet row; `prefix` leads to the dataset folder."""
    cid = esc(row["clip_id"])
    keep = bool(row["keep"])
    rejects = row.get("rejects") or []
    failed = {r["column"]: r for r in rejects if r.get("column")}
    thumb = f"{prefix}thumbs/{cid}.jpg" if f"{row['clip_id']}.jpg" in ctx.thumb_files else None
    if f"{row['clip_id']}.mp4" in ctx.clip_files:
        poster = f' poster="{thumb}"' if thumb else ""
        media = (f'<video class="play" src="{prefix}clips/{cid}.mp4"{poster} controls muted playsinline '
                 f'preload="metadata" width="240"></video>')
        if not keep:
            media += '<div class="note">clip file left by an earlier run</div>'
    else:
        why = esc_c(_no_file_reason(row))
        if thumb:
            media = f'<img class="thumb" src="{thumb}" loading="lazy" alt="thumbnail"><div class="note">{why}</div>'
        else:
            media = f'<div class="noimg placeholder"><span>no frame</span><br><small>{why}</small></div>'
    if keep:
        verdict = '<span class="ok">kept</span>'
    else:
        verdict = ('<span class="why">rejected:</span><ul class="reasons">' +
                   "".join(f'<li class="why" data-code="{esc_c(r["code"])}" data-column="{esc_c(r.get("column"))}">'
                           f'{esc_c(r["text"])}</li>' for r in rejects) + "</ul>")
    scores = []
    for col in ctx.score_columns:
        v = row.get(col)
        if v is None:
            continue
        if col in failed:
            scores.append(f'<tr class="fail"><th>{esc_c(col[6:])}</th><td>{fmt_score(v)} '
                          f'({esc_c(failed[col]["text"])})</td></tr>')
        else:
            scores.append(f"<tr><th>{esc_c(col[6:])}</th><td>{fmt_score(v)}</td></tr>")
    scores_html = (f'<table class="scores">{"".join(scores)}</table>' if scores
                   else '<small class="note">not scored</small>')
    source = esc_c(ctx.names.get(row["video_id"], row["video_id"]))
    where = ""
    if link_page and row["clip_id"] in ctx.page_of:
        p = ctx.page_of[row["clip_id"]]
        where = f' <a class="onpage" href="{PAGES_DIR}/{page_name(p)}#c-{cid}">page {p}</a>'
    anchor = "ex-" if link_page else "c-"
    return (f'<figure class="clip {"kept" if keep else "rejected"}" id="{anchor}{cid}" '
            f'data-clip-id="{cid}" data-keep="{int(keep)}">{media}'
            f'<figcaption><b>{source}</b> {row["start_s"]:.2f}-{row["end_s"]:.2f}s '
            f'({row["duration_s"]:.2f} s)<br>{verdict}{caption_block(ctx.captions.get(row["clip_id"]))}{scores_html}'
            f'<small class="id">{cid}</small>{where}</figcaption></figure>')


def caption_block(cap: dict | None) -> str:
    """The caption stage's captions of a clip: who wrote them, short, long, structured, tags, verdicts."""
    if not cap:
        return ""
    if cap.get("error"):
        return f'<div class="caption error">no caption: {esc_c(cap["error"])}</div>'
    who = esc_c(cap.get("captioner")) + (f" ({esc_c(cap['model'])})" if cap.get("model") else "")
    score = f", score {fmt_score(cap['score'])}" if cap.get("score") is not None else ""
    parts = [f'<div class="caption" data-captioner="{esc_c(cap.get("captioner"))}"><small>caption by {who}{score}'
             f'</small>']
    if cap.get("short"):
        parts.append(f'<p class="short">{esc_c(cap["short"])}</p>')
    if cap.get("long") and cap.get("long") != cap.get("short"):
        parts.append(f'<details><summary>long</summary><p class="long">{esc_c(cap["long"])}</p></details>')
    fields = [(k, v) for k, v in (cap.get("structured") or {}).items() if v]
    if fields:
        parts.append('<details><summary>structured</summary><table class="structured">' +
                     "".join(f"<tr><th>{esc_c(k)}</th><td>{esc_c(v)}</td></tr>" for k, v in fields) + "</table></details>")
    tags = [*(cap.get("subject_tags") or []), *(cap.get("object_tags") or [])]
    if tags:
        parts.append(f'<small class="tags">tags: {esc_c(", ".join(tags))}</small>')
    if cap.get("verdicts"):
        parts.append(f'<small class="verdicts">verdicts: {esc_c(", ".join(cap["verdicts"]))}</small>')
    return "".join(parts) + "</div>"


def pager(page: int, pages: int, in_pages_dir: bool) -> str:
    """First/prev/next/last links between pages; page 1 of report.html links into report_pages/."""
    base = "" if in_pages_dir else f"{PAGES_DIR}/"

    def link(p: int, rel: str, label: str) -> str:
        if p < 1 or p > pages or p == page:
            return f'<span class="off">{label}</span>'
        return f'<a rel="{rel}" class="{rel}" href="{base}{page_name(p)}">{label}</a>'

    summary = '<a class="summary" href="../report.html">summary</a> · ' if in_pages_dir else ""
    return (f'<nav class="pager" data-page="{page}" data-pages="{pages}">{summary}'
            f'{link(1, "first", "« first")} · {link(page - 1, "prev", "‹ prev")} · '
            f'<span class="where">page {page} of {pages}</span> · {link(page + 1, "next", "next ›")} · '
            f'{link(pages, "last", "last »")}</nav>')


def showing_line(page: int, pages: int, n_on_page: int, page_size: int, n_total: int) -> str:
    first = (page - 1) * page_size + 1
    return (f'<p class="showing">Showing {n_on_page:,} of {n_total:,} clips (clips {first:,}-{first + n_on_page - 1:,} '
            f'in clip_id order, {page_size:,} a page), page {page} of {pages}.</p>')


def clip_grid(rows: list[dict], ctx: CardContext, prefix: str) -> str:
    return '<div class="grid clips">' + "".join(clip_card(r, ctx, prefix) for r in rows) + "</div>"


def page_document(title: str, css: str, body: str) -> bytes:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{css}</style>"
            f"</head><body>{body}</body></html>").encode("utf-8")
