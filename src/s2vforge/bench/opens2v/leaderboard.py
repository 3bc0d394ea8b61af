"""Leaderboard tables in the published OpenS2V-Eval column order, and a checker for them.

`verify()` recomputes every TotalScore of a published CSV from its seven components. The
official upload code is known to put MotionAmplitude where MotionSmoothness belongs; a row
whose total only adds up with those two columns exchanged is reported as swapped, and
`read_leaderboard(..., reading="fixed")` gives the corrected values next to the faithful
(as printed) reading.
"""
from __future__ import annotations

import csv
import html
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from . import scoring

INFO_COLUMNS = ["Model", "Venue", "Evaluated by"]
_COLUMNS = {
    "v1.1": ["TotalScore↑", "Aesthetics↑", "MotionSmoothness↑", "MotionAmplitude↑", "FaceSim↑", "GmeScore↑",
             "NexusScore↑", "NaturalScore↑"],
    "v1.0": ["TotalScore↑", "Aesthetics↑", "Motion↑", "FaceSim↑", "GmeScore↑", "NexusScore↑", "NaturalScore↑"],
}
COLUMN_METRIC = {
    "Aesthetics↑": "aesthetic", "MotionSmoothness↑": "motion_smoothness", "MotionAmplitude↑": "motion_amplitude",
    "Motion↑": "motion", "FaceSim↑": "facesim", "GmeScore↑": "gme", "NexusScore↑": "nexus",
    "NaturalScore↑": "natural",
}
# verify(): components are printed to 0.01 points, so a faithful total is off by < 0.01.
DEFAULT_TOLERANCE = 0.015   # percentage points


class LeaderboardError(ValueError):
    pass


def columns(version: str = "v1.1", domain: str = "open") -> list[str]:
    """Published column order (Human domain has no NexusScore)."""
    ver, dom = scoring.canonical_version(version), scoring.canonical_domain(domain)
    cols = [c for c in _COLUMNS[ver] if not (dom == "human" and c == "NexusScore↑")]
    return INFO_COLUMNS + cols


def _norm_header(h: str) -> str:
    return h.replace("↑", "").replace(" ", "").strip().lower()


def parse_percent(cell: str | None) -> float | None:
    """'52.51%' -> 52.51; '' / '-' -> None."""
    if cell is None:
        return None
    s = str(cell).strip().rstrip("%").strip()
    if s in ("", "-", "–", "—", "nan", "None"):
        return None
    return float(s)


# ----------------------------------------------------------------------------- reading a CSV

def read_published(csv_path: str | os.PathLike, version: str = "v1.1", domain: str = "open") -> list[dict]:
    """Rows of a leaderboard CSV as {"model", "venue", "evaluated_by", "total", "metrics": {...}} in percent."""
    want = columns(version, domain)
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise LeaderboardError(f"{csv_path} is empty") from None
        index = {_norm_header(h): i for i, h in enumerate(header)}
        missing = [c for c in want if _norm_header(c) not in index]
        if missing:
            raise LeaderboardError(f"{csv_path}: columns {missing} not found for {version} {domain} "
                                   f"(header: {header})")
        rows = []
        for line_no, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            get = {c: cells[index[_norm_header(c)]] if index[_norm_header(c)] < len(cells) else "" for c in want}
            try:
                metrics = {COLUMN_METRIC[c]: parse_percent(get[c]) for c in want[4:]}
                total = parse_percent(get["TotalScore↑"])
            except ValueError as e:
                raise LeaderboardError(f"{csv_path}:{line_no}: not a percentage ({e})") from None
            rows.append({"model": get["Model"], "venue": get["Venue"], "evaluated_by": get["Evaluated by"],
                         "total": total, "metrics": metrics, "line": line_no})
    return rows


def _model_label(cell: str) -> str:
    """'[Name](url)' -> 'Name'."""
    s = cell.strip()
    if s.startswith("[") and "](" in s:
        return s[1:s.index("](")]
    return s


def _recompute(metrics: Mapping[str, float | None], domain: str, version: str) -> float | None:
    w = scoring.weights(domain, version)
    if any(metrics.get(k) is None for k in w):
        return None
    return sum(w[k] * float(metrics[k]) for k in w)


def check(csv_path: str | os.PathLike, version: str = "v1.1", domain: str = "open",
          tol: float = DEFAULT_TOLERANCE) -> list[dict]:
    """One report per row: the published total, the total recomputed as printed ("faithful")
    and with MotionAmplitude/MotionSmoothness exchanged ("swapped"), and a diagnosis."""
    ver = scoring.canonical_version(version)
    out = []
    for row in read_published(csv_path, ver, domain):
        m = row["metrics"]
        faithful = _recompute(m, domain, ver)
        swapped = None
        if ver == "v1.1":
            sm = dict(m)
            sm["motion_smoothness"], sm["motion_amplitude"] = m["motion_amplitude"], m["motion_smoothness"]
            swapped = _recompute(sm, domain, ver)
        pub = row["total"]
        d_f = None if faithful is None or pub is None else faithful - pub
        d_s = None if swapped is None or pub is None else swapped - pub
        if pub is None or faithful is None:
            diagnosis = "incomplete row"
        elif abs(d_f) <= tol:
            diagnosis = "ok"
        elif d_s is not None and abs(d_s) <= tol:
            diagnosis = "amplitude/smoothness columns swapped"
        else:
            diagnosis = "total does not match its components"
        out.append({
            "model": _model_label(row["model"]), "line": row["line"], "published_total": pub,
            "faithful_total": None if faithful is None else round(faithful, 4),
            "swapped_total": None if swapped is None else round(swapped, 4),
            "diff_faithful": None if d_f is None else round(d_f, 4),
            "diff_swapped": None if d_s is None else round(d_s, 4),
            "diagnosis": diagnosis, "ok": diagnosis == "ok", "metrics": m,
        })
    return out


def verify(csv_path: str | os.PathLike, version: str = "v1.1", domain: str = "open",
           tol: float = DEFAULT_TOLERANCE) -> list[dict]:
    """Rows whose published TotalScore disagrees (beyond `tol` points) with its components as printed.

    An empty list means the table is internally consistent. Each returned row carries the
    diagnosis, e.g. "amplitude/smoothness columns swapped" when the swapped reading adds up.
    """
    return [r for r in check(csv_path, version, domain, tol) if not r["ok"]]


def read_leaderboard(csv_path: str | os.PathLike, version: str = "v1.1", domain: str = "open",
                     reading: str = "faithful", tol: float = DEFAULT_TOLERANCE) -> list[dict]:
    """Rows with metrics in [0, 1]. reading="faithful": as printed; "fixed": rows diagnosed as
    swapped get MotionAmplitude and MotionSmoothness put back where they belong."""
    if reading not in ("faithful", "fixed"):
        raise LeaderboardError("reading must be 'faithful' or 'fixed'")
    out = []
    for r in check(csv_path, version, domain, tol):
        m = {k: (None if v is None else v / 100.0) for k, v in r["metrics"].items()}
        fixed = reading == "fixed" and r["diagnosis"] == "amplitude/smoothness columns swapped"
        if fixed:
            m["motion_smoothness"], m["motion_amplitude"] = m["motion_amplitude"], m["motion_smoothness"]
        out.append({"model": r["model"], "total": None if r["published_total"] is None else r["published_total"] / 100,
                    "metrics": m, "fixed": fixed, "diagnosis": r["diagnosis"]})
    return out


# ----------------------------------------------------------------------------- building a table

def load_results(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """results.json files (or folders holding one) written by runner.evaluate()."""
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            path = path / "results.json"
        try:
            res = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LeaderboardError(f"results file not found: {path}") from None
        except ValueError as e:
            raise LeaderboardError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(res, dict) or "metrics" not in res:
            raise LeaderboardError(f"{path} is not an s2vforge OpenS2V-Eval results.json")
        res.setdefault("model", path.parent.name)
        res["_path"] = str(path)
        out.append(res)
    return out


def _caveats(r: Mapping) -> list[str]:
    """Why a results.json is not a leaderboard-comparable row, besides missing metrics."""
    out = []
    si = list(r.get("stand_ins_in_total") or [])
    if si:
        backends = r.get("backends") or {}
        out.append("stand-ins counted: " + ", ".join(backends.get(m, {}).get("instance_name", m) for m in si))
    n, found = r.get("n_samples"), r.get("n_videos_found")
    if isinstance(n, int) and isinstance(found, int) and found < n:
        out.append(f"scored on {found} of {n} sample videos")
    return out


def build_rows(results: Sequence[Mapping]) -> tuple[list[dict], str, str]:
    """Ranked rows: complete totals first (highest first), then those with caveats (stand-ins
    counted, videos missing), then partial ones; the last two are not comparable."""
    if not results:
        raise LeaderboardError("no results given")
    versions = {scoring.canonical_version(r.get("version", "v1.1")) for r in results}
    domains = {scoring.canonical_domain(r.get("domain", "open")) for r in results}
    if len(versions) > 1 or len(domains) > 1:
        raise LeaderboardError(f"cannot rank results of different versions/domains together: "
                               f"{sorted(versions)} x {sorted(domains)}")
    ver, dom = versions.pop(), domains.pop()
    rows = []
    for r in results:
        metrics = scoring.metrics_for_version(r.get("metrics", {}), ver)
        part = scoring.partial_total({k: metrics.get(k) for k in scoring.weights(dom, ver)}, dom, ver)
        rows.append({"model": str(r.get("model", "?")), "venue": str(r.get("venue", "")),
                     "evaluated_by": str(r.get("evaluated_by", "s2vforge")),
                     "total": part["total"], "partial": part["partial"],
                     "available_weight": part["available_weight"], "metrics": metrics, "caveats": _caveats(r)})
    rows.sort(key=lambda x: (x["partial"], bool(x["caveats"]), -x["total"]))
    for i, row in enumerate(rows, start=1):
        row["rank"] = i
    return rows, ver, dom


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x * 100:.2f}%"


def table_cells(rows: Sequence[Mapping], version: str, domain: str) -> tuple[list[str], list[list[str]]]:
    cols = columns(version, domain)
    body = []
    for r in rows:
        cells = [r["model"], r["venue"], r["evaluated_by"], _pct(r["total"])]
        cells += [_pct(r["metrics"].get(COLUMN_METRIC[c])) for c in cols[4:]]
        body.append(cells)
    return cols, body


def render_csv(rows: Sequence[Mapping], version: str, domain: str) -> str:
    cols, body = table_cells(rows, version, domain)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols + ["Partial", "AvailableWeight", "Caveats"])
    for r, cells in zip(rows, body):
        w.writerow(cells + [str(r["partial"]).lower(), f"{r['available_weight']:g}", "; ".join(r.get("caveats", []))])
    return buf.getvalue()


_PARTIAL_NOTE = ("partial: some weighted metrics are missing; the total is the weighted sum of the available ones "
                 "(not re-weighted) and is not comparable with complete rows.")
_CAVEAT_NOTE = "not comparable with the published leaderboard:"


def render_markdown(rows: Sequence[Mapping], version: str, domain: str) -> str:
    cols, body = table_cells(rows, version, domain)
    lines = ["| # | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    footnotes = []
    for r, cells in zip(rows, body):
        cells = [c if c else "–" for c in cells]
        if r["partial"]:
            cells[3] = f"{cells[3]} †"
        if r.get("caveats"):
            footnotes.append(f"{r['model']} – {'; '.join(r['caveats'])}")
            cells[3] = f"{cells[3]} ‡{len(footnotes)}"
        lines.append(f"| {r['rank']} | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if any(r["partial"] for r in rows):
        lines += ["", "† " + _PARTIAL_NOTE]
    if footnotes:
        lines += ["", f"‡ {_CAVEAT_NOTE}"] + [f"{i}. {f}" for i, f in enumerate(footnotes, start=1)]
    return f"OpenS2V-Eval {version}, {domain} domain\n\n" + "\n".join(lines) + "\n"


def render_html(rows: Sequence[Mapping], version: str, domain: str) -> str:
    cols, body = table_cells(rows, version, domain)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["#"] + cols)
    trs = []
    for r, cells in zip(rows, body):
        tds = [f"<td>{r['rank']}</td>"]
        for i, c in enumerate(cells):
            text = html.escape(c) if c else "&ndash;"
            if i == 3 and r["partial"]:
                text += f' <span title="partial: available weight {r["available_weight"]:g}">&dagger;</span>'
            if i == 3 and r.get("caveats"):
                text += f' <span title="{html.escape("; ".join(r["caveats"]))}">&Dagger;</span>'
            tds.append(f"<td>{text}</td>")
        cls = " ".join(c for c, on in (("partial", r["partial"]), ("caveat", bool(r.get("caveats")))) if on)
        trs.append("<tr" + (f' class="{cls}"' if cls else "") + ">" + "".join(tds) + "</tr>")
    note = f"<p>&dagger; {html.escape(_PARTIAL_NOTE)}</p>" if any(r["partial"] for r in rows) else ""
    cav = [f"<li>{html.escape(r['model'])} &ndash; {html.escape('; '.join(r['caveats']))}</li>" for r in rows
           if r.get("caveats")]
    if cav:
        note += f"<p>&Dagger; {html.escape(_CAVEAT_NOTE)}</p><ul>{''.join(cav)}</ul>"
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>OpenS2V-Eval leaderboard</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "td:nth-child(-n+4),th:nth-child(-n+4){text-align:left}tr.partial,tr.caveat{color:#777}</style></head><body>"
            f"<h1>OpenS2V-Eval {html.escape(version)}, {html.escape(domain)} domain</h1>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>{note}</body></html>\n")


RENDERERS = {".csv": render_csv, ".md": render_markdown, ".markdown": render_markdown,
             ".html": render_html, ".htm": render_html}


def write_leaderboard(results: Sequence[Mapping], out_path: str | os.PathLike) -> Path:
    """Rank results and write them as .md, .csv or .html (chosen by the extension)."""
    out = Path(out_path)
    render = RENDERERS.get(out.suffix.lower())
    if render is None:
        raise LeaderboardError(f"unknown table format {out.suffix!r}; use .md, .csv or .html")
    rows, ver, dom = build_rows(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(rows, ver, dom), encoding="utf-8")
    return out
