"""Every input accounted for (issue 12, inputs and manifests): unreadable manifest lines, odd
encodings, blank paths and repeated files each get their own row; the output folder is never
an input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from s2vforge.cli import run_curate
from s2vforge.inputs import expand_inputs
from s2vforge.stages.curate import assign_ids


def _video(corpus) -> str:
    return str(corpus["dir"] / "bikes.mp4")


def test_a_bad_byte_in_a_utf8_csv_costs_only_its_line(small_corpus, tmp_path):
    m = tmp_path / "m.csv"
    v = _video(small_corpus)
    m.write_bytes(b"path,caption\n" + f"{v},caf\u00e9 street\n".encode() + f"{v},bad \xff byte\n".encode("latin-1")
                  + b",blank path\n" + f"{v},third\n".encode())
    items = expand_inputs([str(m)])
    assert len(items) == 4
    assert items[0]["caption"] == "caf\u00e9 street" and not items[0].get("error")
    assert items[1]["error"] == f"{m}:3: not valid utf-8 text (byte 0xff at column {len(v) + 6})"
    assert items[2]["error"] == f"{m}:4: the `path` cell is empty" and items[2]["path"] == f"{m}:4"
    assert items[3]["caption"] == "third"


def test_latin1_and_bom_manifests_are_read(small_corpus, tmp_path):
    v = _video(small_corpus)
    lat = tmp_path / "latin.csv"
    lat.write_bytes(f"path,caption\n{v},une fen\u00eatre ouverte\n".encode("latin-1"))
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + f"path,caption\n{v},na\u00efve\n".encode())
    assert expand_inputs([str(lat)])[0]["caption"] == "une fen\u00eatre ouverte"
    assert expand_inputs([str(bom)])[0]["caption"] == "na\u00efve"      # `path`, not `\ufeffpath`


def test_a_malformed_jsonl_line_is_an_error_row_and_the_rest_run(small_corpus, tmp_path):
    v = _video(small_corpus)
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"path": v}) + "\n{not json\n[1, 2]\n" + json.dumps({"path": v, "caption": "again"}) + "\n")
    items = expand_inputs([str(m)])
    assert [bool(it.get("error")) for it in items] == [False, True, True, False]
    assert items[1]["error"].startswith(f"{m}:2: not valid JSON") and "JSON object" in items[2]["error"]


def test_the_same_file_many_times_gives_one_row_each(small_corpus, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    v = shutil.copyfile(_video(small_corpus), d / "bikes.mp4")
    m = tmp_path / "m.csv"
    m.write_text(f"path\n{v}\n{v}\n")
    items = assign_ids(expand_inputs([str(v), str(d), str(m)]))
    assert len(items) == 4
    ids = [it["video_id"] for it in items]
    assert len(set(ids)) == 4
    assert [bool(it.get("duplicate_of")) for it in items] == [False, True, True, True]
    assert assign_ids(expand_inputs([str(v), str(d), str(m)]))[3]["video_id"] == ids[3]     # stable


def test_curate_gives_every_manifest_line_a_row_and_never_ingests_its_output(small_corpus, fast_recipe, tmp_path):
    v = _video(small_corpus)
    m = tmp_path / "in" / "m.csv"
    m.parent.mkdir()
    m.write_bytes(b"path,caption\n" + f"{v},ok\n".encode() + b"\xff\xfe,\n" + b",\n")
    out = tmp_path / "in" / "ds"         # the output inside an input folder
    assert run_curate([str(m), str(m.parent)], out, str(fast_recipe), 1, False, True) == 1
    rows = pq.read_table(out / "videos.parquet").to_pylist()
    statuses = sorted((r["status"], r["path"].rsplit("/", 1)[-1]) for r in rows)
    assert [s for s, _ in statuses].count("ok") == 1 and [s for s, _ in statuses].count("error") == 2
    assert run_curate([str(m), str(m.parent)], out, str(fast_recipe), 1, False, True) == 1
    again = pq.read_table(out / "videos.parquet").to_pylist()
    assert len(again) == len(rows) and not any("/ds/" in r["path"] for r in again)


def test_an_unreadable_subfolder_is_an_error_row(small_corpus, tmp_path):
    """chmod 000 on a subfolder; root reads anything, so as root the walk runs in a forked child
    that has dropped to the `nobody` user."""
    import os
    import tempfile
    top = Path(tempfile.mkdtemp(prefix="s2vforge-unreadable-"))     # pytest's tmp folders are root-only
    top.chmod(0o755)
    root = top / "in"
    (root / "locked").mkdir(parents=True)
    shutil.copyfile(_video(small_corpus), root / "bikes.mp4")
    shutil.copyfile(_video(small_corpus), root / "locked" / "hidden.mp4")
    root.chmod(0o755)
    (root / "locked").chmod(0)
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:     # the child: drop privileges, walk, report, exit without running pytest's teardown
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            os.write(wr, json.dumps(expand_inputs([str(root)])).encode())
        finally:
            os._exit(0)
    os.close(wr)
    with os.fdopen(rd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    (root / "locked").chmod(0o755)
    shutil.rmtree(top)
    items = json.loads(data)
    assert [it["path"] for it in items] == [str(root / "bikes.mp4"), str(root / "locked")]
    assert items[1]["error"] == "cannot read folder: Permission denied"
