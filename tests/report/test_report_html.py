"""The report's counts and paging, checked against the tables on a synthetic 1,000-clip dataset
(report/synthetic.py: real schemas, keep/rejects decided by the real filters)."""
from __future__ import annotations

import math
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from s2vforge.report.html import MAX_INLINE_INPUTS, write_report
from s2vforge.report.plots import bounds_of
from s2vforge.report.synthetic import synthetic_dataset

N = 1000
PAGE = 100


class Elements(HTMLParser):
    """Every start tag as (tag, attrs dict), plus the text inside each <li class=why>."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, **want) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.rstrip("_").replace("_", "-")) == v for k, v in want.items())]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict:
    info = synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "ds", N, seed=3)
    write_report(info["dataset"], page_size=PAGE)
    info["clips"] = pq.read_table(info["dataset"] / "clips.parquet").to_pylist()
    info["videos"] = pq.read_table(info["dataset"] / "videos.parquet").to_pylist()
    return info


def _read(ds: Path, name: str) -> str:
    return (ds / name).read_text(encoding="utf-8")


def test_every_reason_is_counted_once_per_clip(synthetic):
    want = Counter((r["code"], r["column"] or "") for c in synthetic["clips"] for r in c["rejects"])
    assert ("too_short", "") in want and ("below_min", "score_luminance") in want   # the data covers both kinds
    page = Elements(_read(synthetic["dataset"], "report.html"))
    got = {(a["data-code"], a["data-column"]): int(a["data-count"]) for a in page.find("tr") if "data-count" in a}
    assert got == dict(want)


def test_input_statuses_and_errors_are_listed(synthetic):
    ds = synthetic["dataset"]
    text = _read(ds, "report.html")
    page = Elements(text)
    want = Counter(v["status"] for v in synthetic["videos"])
    assert {a["data-status"] for a in page.find("tr") if "data-status" in a} >= set(want)
    for status, n in want.items():
        assert re.search(rf"<tr data-status='{status}'><th>{status}</th><td>{n:,}</td></tr>", text), status
    bad = [v for v in synthetic["videos"] if v["status"] != "ok"]
    assert len(bad) <= MAX_INLINE_INPUTS
    for v in bad:
        assert v["path"] in text
    assert "Invalid data found when processing input" in text and "same content as" in text


def test_pages_hold_every_clip_once_in_order(synthetic):
    ds = synthetic["dataset"]
    pages = math.ceil(N / PAGE)
    files = sorted(p.name for p in (ds / "report_pages").glob("page-*.html"))
    assert files == [f"page-{k:04d}.html" for k in range(1, pages + 1)]
    seen = []
    for k in range(1, pages + 1):
        text = _read(ds, f"report_pages/page-{k:04d}.html")
        page = Elements(text)
        ids = [a["data-clip-id"] for a in page.find("figure")]
        assert len(ids) == PAGE
        seen += ids
        nav = page.find("nav")[0]
        assert (nav["data-page"], nav["data-pages"]) == (str(k), str(pages))
        assert f"page {k} of {pages}" in text
        links = {a["rel"]: a["href"] for a in page.find("a") if "rel" in a}
        assert links.get("prev") == (f"page-{k - 1:04d}.html" if k > 1 else None)
        assert links.get("next") == (f"page-{k + 1:04d}.html" if k < pages else None)
        assert {a["href"] for a in page.find("a", class_="summary")} == {"../report.html"}
    assert seen == [c["clip_id"] for c in synthetic["clips"]]        # every clip, once, in table order

    main = _read(ds, "report.html")
    assert f"Showing {PAGE} of {N:,} clips" in main and f"page 1 of {pages}" in main
    first = Elements(main)
    assert [a["data-clip-id"] for a in first.find("figure") if a["id"].startswith("c-")] == seen[:PAGE]
    assert {a["href"] for a in first.find("a", rel="next")} == {"report_pages/page-0002.html"}


def test_cards_play_show_thumbnails_or_say_why(synthetic):
    ds = synthetic["dataset"]
    text = _read(ds, "report_pages/page-0001.html")
    by_id = {c["clip_id"]: c for c in synthetic["clips"]}
    cards = re.findall(r'<figure class="clip (\w+)" id="c-([^"]+)".*?</figure>', text)
    assert len(cards) == PAGE
    for m in re.finditer(r'<figure class="clip (\w+)" id="c-([^"]+)"(.*?)</figure>', text):
        cls, cid, body = m.groups()
        clip = by_id[cid]
        assert cls == ("kept" if clip["keep"] else "rejected")
        if clip["keep"]:
            assert f'<video class="play" src="../clips/{cid}.mp4" poster="../thumbs/{cid}.jpg"' in body
        else:
            assert "<video" not in body
            for reason in clip["reject_reasons"]:
                assert f">{reason.replace('<', '&lt;').replace('>', '&gt;')}</li>" in body
            if clip["reject_reasons"] == ["too_short"]:
                assert "noimg placeholder" in body and "shorter than the recipe" in body
            else:
                assert f'src="../thumbs/{cid}.jpg"' in body
        for col, v in clip.items():
            if col.startswith("score_") and v is not None:
                assert f"<th>{col[6:]}</th><td>{v:.4g}" in body


def test_histograms_draw_the_recipe_thresholds(synthetic):
    text = _read(synthetic["dataset"], "report.html")
    filters = synthetic["recipe"]["filters"]
    scored = {k for c in synthetic["clips"] for k, v in c.items() if k.startswith("score_") and v is not None}
    assert "score_aesthetic" not in scored          # unavailable in the synthetic run: no values, no plot
    for col in sorted(scored):
        m = re.search(rf'<svg class="hist" data-column="{col}" data-n="(\d+)".*?</svg>', text)
        assert m, col
        assert int(m.group(1)) == sum(1 for c in synthetic["clips"] if c.get(col) is not None)
        lines = re.findall(r'<line class="threshold" data-bound="(\w+)" data-value="([^"]+)"', m.group(0))
        assert [(b, float(v)) for b, v in lines] == [(b, pytest.approx(v, rel=1e-3)) for b, v in bounds_of(filters.get(col))]
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_report_is_byte_stable_and_drops_stale_pages(synthetic, tmp_path):
    ds = synthetic["dataset"]
    before = {p.name: p.read_bytes() for p in [ds / "report.html", *sorted((ds / "report_pages").glob("*.html"))]}
    write_report(ds, page_size=PAGE)
    after = {p.name: p.read_bytes() for p in [ds / "report.html", *sorted((ds / "report_pages").glob("*.html"))]}
    assert after == before
    write_report(ds, page_size=400)               # fewer pages: the old page-0004..0010 go
    assert sorted(p.name for p in (ds / "report_pages").glob("page-*.html")) == \
        ["page-0001.html", "page-0002.html", "page-0003.html"]
    write_report(ds, page_size=PAGE)
    assert {p.name: p.read_bytes() for p in [ds / "report.html", *sorted((ds / "report_pages").glob("*.html"))]} == before


def test_many_unusable_inputs_get_their_own_page(tmp_path):
    info = synthetic_dataset(tmp_path / "ds", 50, n_bad_inputs=MAX_INLINE_INPUTS + 5, files=False)
    write_report(info["dataset"], page_size=20)
    main = _read(info["dataset"], "report.html")
    assert f"Showing {MAX_INLINE_INPUTS:,} of {MAX_INLINE_INPUTS + 5:,}" in main
    full = _read(info["dataset"], "report_pages/inputs.html")
    assert full.count("<tr data-status=") == MAX_INLINE_INPUTS + 5
    # no clip files on disk: kept clips say so instead of pointing a player at nothing
    assert "<video" not in main and "is missing from the dataset folder" in main
