"""The report in a real headless browser: Debian's chromium driven by Playwright, the dataset
folder served over http://127.0.0.1. Kept clips play (their <video> loads metadata), rejected
clips show their reasons, the reason table matches clips.parquet, every histogram draws its
thresholds and the paging links walk every clip.

Needs /usr/bin/chromium (`apt-get install chromium`) and the playwright package (never
`playwright install`: the browser is the distro's). Skipped without them; under
S2VFORGE_NO_SKIP=1 (CI) the skip is a failure (tests/conftest.py).
"""
from __future__ import annotations

import functools
import math
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from s2vforge.report.html import write_report
from s2vforge.report.plots import bounds_of

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGE = 2            # clips a page: the tiny dataset spans several pages


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("chromium-profile")),
                                                   executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield ctx
        finally:
            ctx.close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def served(curated_dataset, tmp_path_factory):
    """The curated dataset (a copy) with a report of PAGE clips a page, served on 127.0.0.1."""
    import shutil
    ds = tmp_path_factory.mktemp("served") / "ds"
    shutil.copytree(curated_dataset, ds)
    write_report(ds, page_size=PAGE)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(ds)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    clips = pq.read_table(ds / "clips.parquet").to_pylist()
    run = __import__("json").loads((ds / "curate_run.json").read_text())
    try:
        yield {"ds": ds, "url": f"http://127.0.0.1:{httpd.server_address[1]}", "clips": clips,
               "filters": run["recipe"]["filters"]}
    finally:
        httpd.shutdown()
        httpd.server_close()


CARDS_JS = """() => [...document.querySelectorAll('.grid.clips figure.clip')].map(f => {
    const v = f.querySelector('video'), img = f.querySelector('img.thumb');
    return {id: f.dataset.clipId, keep: f.dataset.keep, text: f.innerText,
            video: v ? {src: v.getAttribute('src'), ready: v.readyState, duration: v.duration,
                        error: v.error ? v.error.code : null} : null,
            thumb: img ? img.complete && img.naturalWidth > 0 : null,
            placeholder: !!f.querySelector('.placeholder')};
})"""

VIDEOS_SETTLED = "() => [...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)"


def _cards(page) -> list[dict]:
    page.wait_for_function(VIDEOS_SETTLED, timeout=30000)
    page.wait_for_function("() => [...document.querySelectorAll('img.thumb')].every(i => i.complete)", timeout=30000)
    return page.evaluate(CARDS_JS)


def test_paging_walks_every_clip_and_clips_play_or_say_why(browser, served):
    clips = served["clips"]
    pages = math.ceil(len(clips) / PAGE)
    assert pages >= 2
    page = browser.new_page()
    page.goto(served["url"] + "/report.html")
    seen: list[dict] = []
    where = []
    for k in range(1, pages + 1):
        nav = page.locator("nav.pager").first
        where.append((int(nav.get_attribute("data-page")), int(nav.get_attribute("data-pages"))))
        assert f"page {k} of {pages}" in page.locator("p.showing").inner_text()
        seen += _cards(page)
        if k < pages:
            page.locator("nav.pager a.next").first.click()
            page.wait_for_load_state()
        else:
            assert page.locator("nav.pager a.next").count() == 0
    assert where == [(k, pages) for k in range(1, pages + 1)]
    assert [c["id"] for c in seen] == [c["clip_id"] for c in clips]       # every clip once, in order

    page.locator("nav.pager a.prev").first.click()                       # and back
    page.wait_for_load_state()
    assert page.locator("nav.pager").first.get_attribute("data-page") == str(pages - 1)
    page.locator("nav.pager a.summary").first.click()
    page.wait_for_load_state()
    assert page.url.endswith("/report.html")

    by_id = {c["clip_id"]: c for c in clips}
    kept = [c for c in seen if c["keep"] == "1"]
    assert kept, "the fixture keeps clips"
    for card in kept:
        v = card["video"]
        assert v and v["src"].endswith(f"clips/{card['id']}.mp4"), card
        assert v["error"] is None and v["ready"] >= 1 and v["duration"] > 0, card
        want = by_id[card["id"]]["duration_s"]
        assert abs(v["duration"] - want) < 0.25, (v, want)
    rejected = [c for c in seen if c["keep"] == "0"]
    assert {tuple(by_id[c["id"]]["reject_reasons"]) for c in rejected} >= {("too_short",), ("score_luminance<10",)}
    for card in rejected:
        clip = by_id[card["id"]]
        assert card["video"] is None
        for reason in clip["reject_reasons"]:
            assert reason in card["text"], card
        if clip["reject_reasons"] == ["too_short"]:
            assert card["placeholder"] and "shorter than the recipe" in card["text"]
        else:
            assert card["thumb"] is True, card          # the thumbnail loaded
    page.close()


def test_reason_table_counts_every_reason(browser, served):
    page = browser.new_page()
    page.goto(served["url"] + "/report.html")
    rows = page.evaluate("""() => [...document.querySelectorAll('#reasons tr[data-code]')].map(tr =>
        [tr.dataset.code, tr.dataset.column, Number(tr.dataset.count), tr.innerText])""")
    want = Counter((r["code"], r["column"] or "") for c in served["clips"] for r in c["rejects"])
    assert {(code, col): n for code, col, n, _ in rows} == dict(want)
    for code, col, n, text in rows:                     # the visible cells say the same
        assert str(n) in text and code in text
    # input statuses and the unusable inputs with their errors
    status = dict(page.evaluate("""() => [...document.querySelectorAll('#video-status tr')].map(tr =>
        [tr.dataset.status, Number(tr.querySelector('td').innerText)])"""))
    assert status == {"ok": 2, "error": 1, "duplicate": 1}
    inputs = page.locator("table.inputs").inner_text()
    assert "broken.mp4" in inputs and "not a readable media file" in inputs and "same content as" in inputs
    page.close()


def test_histograms_show_thresholds(browser, served):
    page = browser.new_page()
    page.goto(served["url"] + "/report.html")
    plots = page.evaluate("""() => [...document.querySelectorAll('svg.hist')].map(s => {
        const b = s.getBoundingClientRect();
        return {column: s.dataset.column, width: b.width, height: b.height,
                bars: s.querySelectorAll('rect.bar').length,
                lines: [...s.querySelectorAll('line.threshold')].map(l => [l.dataset.bound, Number(l.dataset.value),
                                                                         l.getBoundingClientRect().height])};
    })""")
    scored = sorted({k for c in served["clips"] for k, v in c.items() if k.startswith("score_") and v is not None})
    assert sorted(p["column"] for p in plots) == scored
    for p in plots:
        assert p["width"] > 100 and p["height"] > 100 and p["bars"] >= 1, p
        want = bounds_of(served["filters"].get(p["column"]))
        assert [(b, v) for b, v, _ in p["lines"]] == [(b, pytest.approx(v)) for b, v in want], p
        assert all(h > 50 for _, _, h in p["lines"]), p        # drawn, full plot height
    assert {"score_luminance", "score_motion"} <= {p["column"] for p in plots if p["lines"]}
    page.close()
