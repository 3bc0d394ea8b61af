"""Inline SVG histograms for the report: no JavaScript, no plotting library, no network.

`svg_histogram(column, values, kept, rule)` draws one score's distribution as stacked bars
(kept clips at the bottom, rejected above) with the recipe's bounds (`rule` = the recipe's
`filters[column]`: {min, max, min_inclusive, max_inclusive}) as dashed vertical lines. The
markup is a pure function of its inputs (fixed bin count, fixed number formatting), so the
report is byte-stable across runs.
"""
from __future__ import annotations

import html

import numpy as np

WIDTH, HEIGHT = 340, 190
LEFT, RIGHT, TOP, BOTTOM = 40, 12, 22, 36
BINS = 30
KEPT_COLOUR, REJECTED_COLOUR, RULE_COLOUR = "#4a78b5", "#d9a0a0", "#c0392b"


def _num(x: float) -> str:
    """A short, stable rendering of an axis or bound value."""
    return f"{x:.4g}"


def _xy(x: float) -> str:
    return f"{x:.1f}"


def bounds_of(rule: dict | None) -> list[tuple[str, float]]:
    """[("min", v), ("max", v)] for the finite bounds a filter rule sets."""
    out = []
    for key in ("min", "max"):
        v = (rule or {}).get(key)
        if v is not None and np.isfinite(float(v)):
            out.append((key, float(v)))
    return out


def svg_histogram(column: str, values: np.ndarray, kept: np.ndarray, rule: dict | None,
                  *, applied: bool = True, bins: int = BINS) -> str:
    """One histogram as an <svg class="hist"> element. `values`: the column's finite values;
    `kept`: a bool array beside them; `applied`: False when the filter was skipped this run."""
    values = np.asarray(values, dtype=np.float64)
    kept = np.asarray(kept, dtype=bool)
    lines = bounds_of(rule)
    lo = float(values.min()) if values.size else 0.0
    hi = float(values.max()) if values.size else 1.0
    for _, v in lines:       # the thresholds are always inside the plotted range
        lo, hi = min(lo, v), max(hi, v)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.02
    lo, hi = lo - pad, hi + pad
    edges = np.linspace(lo, hi, bins + 1)
    all_counts, _ = np.histogram(values, bins=edges)
    kept_counts, _ = np.histogram(values[kept], bins=edges)
    peak = max(int(all_counts.max()) if all_counts.size else 0, 1)
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bw = pw / bins

    def x_of(v: float) -> float:
        return LEFT + (v - lo) / (hi - lo) * pw

    def h_of(n: int) -> float:
        return n / peak * ph

    parts = [f'<svg class="hist" data-column="{html.escape(column)}" data-n="{values.size}" '
             f'xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="histogram of {html.escape(column)}">',
             f'<text x="{LEFT}" y="14" font-size="12" font-weight="bold">{html.escape(column)}</text>',
             f'<text x="{WIDTH - RIGHT}" y="14" font-size="10" text-anchor="end">n={values.size}</text>']
    base = TOP + ph
    for i in range(bins):
        x = LEFT + i * bw
        nk, na = int(kept_counts[i]), int(all_counts[i])
        if na == 0:
            continue
        hk, ha = h_of(nk), h_of(na)
        tip = f"{_num(edges[i])} to {_num(edges[i + 1])}: {na} clips, {nk} kept"
        if nk:
            parts.append(f'<rect class="bar kept" x="{_xy(x)}" y="{_xy(base - hk)}" width="{_xy(bw - 1)}" '
                         f'height="{_xy(hk)}" fill="{KEPT_COLOUR}"><title>{tip}</title></rect>')
        if na > nk:
            parts.append(f'<rect class="bar rejected" x="{_xy(x)}" y="{_xy(base - ha)}" width="{_xy(bw - 1)}" '
                         f'height="{_xy(ha - hk)}" fill="{REJECTED_COLOUR}"><title>{tip}</title></rect>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{_xy(base)}" x2="{WIDTH - RIGHT}" y2="{_xy(base)}" '
                 f'stroke="#555" stroke-width="1"/>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{_xy(base)}" stroke="#555" stroke-width="1"/>')
    parts.append(f'<text x="{LEFT - 4}" y="{TOP + 8}" font-size="9" text-anchor="end">{peak}</text>')
    parts.append(f'<text x="{LEFT - 4}" y="{_xy(base)}" font-size="9" text-anchor="end">0</text>')
    parts.append(f'<text x="{LEFT}" y="{_xy(base + 12)}" font-size="9">{_num(lo)}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{_xy(base + 12)}" font-size="9" text-anchor="end">{_num(hi)}</text>')
    for k, (key, v) in enumerate(lines):
        x = x_of(v)
        inclusive = (rule or {}).get(f"{key}_inclusive", True)
        op = (">=" if inclusive else ">") if key == "min" else ("<=" if inclusive else "<")
        label = f"keep {op} {_num(v)}" + ("" if applied else " (not applied)")
        anchor = "start" if x < LEFT + pw / 2 else "end"
        tx = x + 3 if anchor == "start" else x - 3
        parts.append(f'<line class="threshold" data-bound="{key}" data-value="{_num(v)}" x1="{_xy(x)}" y1="{TOP}" '
                     f'x2="{_xy(x)}" y2="{_xy(base)}" stroke="{RULE_COLOUR}" stroke-width="1.5" '
                     f'stroke-dasharray="4 3"><title>{html.escape(label)}</title></line>')
        parts.append(f'<text x="{_xy(tx)}" y="{_xy(base + 23 + 10 * k)}" font-size="9" fill="{RULE_COLOUR}" '
                     f'text-anchor="{anchor}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
