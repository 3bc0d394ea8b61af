"""The identity bank: exact = brute force, persistence, appends, auto switch to IVF/HNSW, bounds, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from s2vforge.recipes import load_recipe
from s2vforge.stages.pairs.bank import (
    BankConflictError,
    BankCorruptError,
    IdentityBank,
    VERDICT_EXCLUDED,
    VERDICT_KEPT,
    VERDICT_NEAR_DUPLICATE,
    VERDICT_UNRELATED,
    bank_dir,
    ivf_nlist,
    recall_at_k,
)

from .synth import clustered_vectors, fresh_queries

DIM = 32
BANK = load_recipe(None)["pairs"]["bank"]      # the default recipe's bank options (index auto, exact_max 50000...)


def opts(**over) -> dict:
    return {**BANK, **over}


def _ids(n, prefix="s"):
    return [f"{prefix}{i:06d}" for i in range(n)]


def _brute_topk(bank_x, q, k):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = qn @ bank_x.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


@pytest.fixture(scope="module")
def data():
    x, labels, centres = clustered_vectors(600, DIM, mean_cluster=12, seed=3)
    return x, labels, centres


def test_flat_search_equals_bruteforce_numpy(tmp_path, data):
    x, labels, centres = data
    raw = x * np.random.default_rng(0).uniform(0.5, 3.0, (len(x), 1)).astype(np.float32)  # unnormalised input
    bank = IdentityBank.create(bank_dir(tmp_path, "face"), DIM, embedder="test-embed", **opts())
    assert bank.add(_ids(len(x)), raw) == len(x)
    assert bank.index_kind == "flat" and len(bank) == len(x)
    q = fresh_queries(centres, labels, 25, seed=9) * 4.0
    sims, ids = bank.search(q, 10)
    want_sims, want_rows = _brute_topk(x, q, 10)
    np.testing.assert_allclose(sims, want_sims, atol=1e-5)
    got_rows = [[int(i[1:]) for i in row] for row in ids]
    # identical order except where two similarities tie to float precision
    for g, w, ws in zip(got_rows, want_rows, want_sims):
        for a, b, s in zip(g, w, ws):
            assert a == b or abs(float(x[a] @ x[b]) - 1) < 1e-6 or np.isclose(s, ws).sum() > 1


def test_persist_reopen_same_answers_and_layout(tmp_path, data):
    x, labels, centres = data
    path = bank_dir(tmp_path, "object")
    bank = IdentityBank.create(path, DIM, embedder="orb-colour-v1", **opts())
    meta = [{"clip_id": f"c{i % 7}", "video_id": f"v{i % 3}", "group_id": "g", "category": "object",
             "source": "subject"} for i in range(len(x))]
    bank.add(_ids(len(x)), x, meta)
    bank.save()
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == [
        "ids.parquet", "index.faiss", "manifest.json"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["embedder"] == "orb-colour-v1" and manifest["dim"] == DIM
    assert manifest["count"] == len(x) and manifest["index_kind"] == "flat" and manifest["metric"] == "cosine_ip"
    q = fresh_queries(centres, labels, 20, seed=5)
    before = bank.search(q, 8)
    again = IdentityBank.open(path)
    after = again.search(q, 8)
    np.testing.assert_array_equal(before[0], after[0])
    assert before[1] == after[1]
    assert again.meta_of(["s000008", "nope"]) == [meta[8], {}]
    import pyarrow.parquet as pq
    t = pq.read_table(path / "ids.parquet")
    assert t.column("id").to_pylist()[:2] == ["s000000", "s000001"]
    assert t.column("clip_id").to_pylist()[8] == "c1"


def test_append_is_idempotent_and_rejects_nan(tmp_path, data):
    x, *_ = data
    path = tmp_path / "bank"
    bank = IdentityBank.create(path, DIM, embedder="e", **opts())
    assert bank.add(_ids(300), x[:300]) == 300
    bank.save()
    bank = IdentityBank.open(path)
    # re-run over an overlapping range: only the new ids go in
    assert bank.add(_ids(400)[100:], x[100:400]) == 100
    assert bank.last_add == {"added": 100, "skipped_existing": 200, "skipped_invalid": 0}
    assert bank.add(_ids(400), x[:400]) == 0
    bad = x[400:405].copy()
    bad[1, 3] = np.nan
    bad[3] = 0.0
    assert bank.add(_ids(405)[400:], bad) == 3
    assert bank.last_add["skipped_invalid"] == 2 and "s000401" not in bank and "s000402" in bank
    # duplicate ids inside one batch: the first wins
    assert bank.add(["dup", "dup"], x[405:407]) == 1
    bank.save()
    again = IdentityBank.open(path)
    assert len(again) == 404 and again.ids == bank.ids
    np.testing.assert_allclose(again.vectors_of(["dup"])[0], x[405], atol=1e-6)


@pytest.mark.parametrize("kind", ["auto", "hnsw"])
def test_auto_switch_to_approximate_keeps_recall(tmp_path, kind):
    x, labels, centres = clustered_vectors(4000, DIM, mean_cluster=20, seed=11)
    path = tmp_path / kind
    bank = IdentityBank.create(path, DIM, embedder="e", **opts(index=kind, exact_max=1000))
    bank.add(_ids(800), x[:800])
    assert bank.index_kind == "flat"
    bank.add(_ids(4000)[800:], x[800:])  # crosses exact_max: rebuilt from the stored vectors
    expected = "ivf" if kind == "auto" else "hnsw"
    assert bank.index_kind == expected and len(bank) == 4000
    m = bank.manifest
    assert m["search"]["tuned_recall_at_10"] >= 0.95
    if expected == "ivf":
        assert m["search"]["nlist"] == ivf_nlist(4000) and 1 <= m["search"]["nprobe"] <= m["search"]["nlist"]
    bank.save()
    bank = IdentityBank.open(path)
    assert bank.index_kind == expected
    q = fresh_queries(centres, labels, 300, seed=4)
    _, approx = bank.search(q, 10)
    _, exact_rows = _brute_topk(x, q, 10)
    approx_rows = np.array([[int(i[1:]) for i in row] for row in approx])
    assert recall_at_k(approx_rows, exact_rows) >= 0.95
    # append after the switch stays approximate and searchable
    extra, _, _ = clustered_vectors(200, DIM, seed=12)
    assert bank.add(_ids(200, "x"), extra) == 200
    _, got = bank.search(extra[:5], 1)
    assert [g[0] for g in got] == ["x000000", "x000001", "x000002", "x000003", "x000004"]


def test_ivf_retrains_when_bank_quadruples(tmp_path):
    x, *_ = clustered_vectors(6000, DIM, seed=2)
    bank = IdentityBank.create(tmp_path / "b", DIM, embedder="e", **opts(exact_max=1000))
    bank.add(_ids(1200), x[:1200])
    assert bank.manifest["trained_count"] == 1200
    bank.add(_ids(6000)[1200:], x[1200:])
    assert bank.manifest["trained_count"] == 6000 and bank.manifest["search"]["nlist"] == ivf_nlist(6000)
    np.testing.assert_allclose(bank.vectors_of(["s000007"])[0], x[7], atol=1e-6)


def test_query_bounded_verdicts_and_overfetch(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.standard_normal(DIM).astype(np.float32)
    base /= np.linalg.norm(base)
    ortho = rng.standard_normal((60, DIM)).astype(np.float32)
    ortho -= (ortho @ base)[:, None] * base  # orthogonal to base
    ortho /= np.linalg.norm(ortho, axis=1, keepdims=True)

    def at_cos(c, i):
        return c * base + np.sqrt(1 - c * c) * ortho[i]

    # 5 near-duplicates (0.99), 30 same-context candidates (0.8..0.6, of which 20 excluded), 20 unrelated
    cos = [0.99] * 5 + list(np.linspace(0.8, 0.6, 30)) + list(np.linspace(0.3, 0.0, 20))
    vecs = np.stack([at_cos(c, i) for i, c in enumerate(cos)])
    ids = [f"d{i}" for i in range(5)] + [f"m{i:02d}" for i in range(30)] + [f"u{i:02d}" for i in range(20)]
    bank = IdentityBank.create(tmp_path / "b", DIM, embedder="e", **opts())
    bank.add(ids, vecs)
    excluded = {f"m{i:02d}" for i in range(0, 30, 3)} | {f"m{i:02d}" for i in range(1, 30, 3)}  # 20 of 30
    exclude = lambda i: "same_clip" if i in excluded else False  # noqa: E731

    (kept,) = bank.query_bounded(base, 8, lower=0.5, upper=0.95, exclude=exclude)
    assert [v for *_, v in kept] == [VERDICT_KEPT] * 8  # over-fetched past 5 dups + excluded ones
    assert [i for i, *_ in kept] == [f"m{i:02d}" for i in range(2, 30, 3)][:8]
    assert all(0.5 <= s <= 0.95 for _, s, _ in kept)

    (everything,) = bank.query_bounded(base, 12, lower=0.5, upper=0.95, exclude=exclude, return_rejected=True)
    verdicts = [v for *_, v in everything]
    assert verdicts[:5] == [VERDICT_NEAR_DUPLICATE] * 5
    assert verdicts.count(VERDICT_KEPT) == 10  # only 10 candidates pass: the rest are unrelated
    assert verdicts.count(f"{VERDICT_EXCLUDED}:same_clip") == 20
    assert verdicts[-2:] == [VERDICT_UNRELATED] * 2 and everything[-1][1] < 0.5
    sims = [s for _, s, _ in everything]
    assert sims == sorted(sims, reverse=True)

    # a NaN query and a k larger than the bank are handled
    res = bank.query_bounded(np.stack([np.full(DIM, np.nan, np.float32), base]), 100, lower=-1, upper=1)
    assert res[0] == [] and len(res[1]) == len(ids)
    with pytest.raises(ValueError):
        bank.query_bounded(base, 3, lower=0.9, upper=0.5)


def test_embedder_or_dim_mismatch_refused(tmp_path, data):
    x, *_ = data
    path = tmp_path / "face"
    bank = IdentityBank.open_or_create(path, DIM, embedder="dlib-128", **opts())
    bank.add(_ids(10), x[:10])
    bank.save()
    assert len(IdentityBank.open_or_create(path, DIM, embedder="dlib-128", **opts())) == 10
    with pytest.raises(ValueError, match="dlib-128.*arcface.*Delete"):
        IdentityBank.open_or_create(path, DIM, embedder="arcface-r100", **opts())
    with pytest.raises(ValueError, match="dim 32"):
        IdentityBank.open_or_create(path, 64, embedder="dlib-128", **opts())
    with pytest.raises(ValueError, match="dim 32"):
        bank.add(["z"], np.ones((1, 64), np.float32))
    with pytest.raises(FileExistsError):
        IdentityBank.create(path, DIM, embedder="dlib-128", **opts())


def test_corrupt_or_missing_files_say_which_and_how_to_rebuild(tmp_path, data):
    x, *_ = data
    path = tmp_path / "object"
    with pytest.raises(FileNotFoundError, match="no identity bank"):
        IdentityBank.open(path)
    bank = IdentityBank.create(path, DIM, embedder="e", **opts())
    bank.add(_ids(50), x[:50])
    bank.save()
    index_bytes = (path / "index.faiss").read_bytes()
    (path / "index.faiss").write_bytes(b"garbage" + index_bytes[:40])
    with pytest.raises(BankCorruptError, match=r"index\.faiss is corrupt.*Delete .*rebuild"):
        IdentityBank.open(path)
    (path / "index.faiss").write_bytes(index_bytes)
    (path / "ids.parquet").write_bytes(b"not parquet")
    with pytest.raises(BankCorruptError, match=r"ids\.parquet"):
        IdentityBank.open(path)
    (path / "manifest.json").write_text("{broken")
    with pytest.raises(BankCorruptError, match=r"manifest\.json"):
        IdentityBank.open(path)


def test_interrupted_save_detected(tmp_path, data):
    x, *_ = data
    path = tmp_path / "b"
    bank = IdentityBank.create(path, DIM, embedder="e", **opts())
    bank.add(_ids(50), x[:50])
    bank.save()
    old_ids = (path / "ids.parquet").read_bytes()
    bank.add(_ids(60), x[:60])
    bank.save()
    (path / "ids.parquet").write_bytes(old_ids)  # index has 60 rows, ids 50
    with pytest.raises(BankCorruptError, match="disagree"):
        IdentityBank.open(path)


def test_second_writer_refused(tmp_path, data):
    x, *_ = data
    path = tmp_path / "b"
    bank = IdentityBank.create(path, DIM, embedder="e", **opts())
    bank.add(_ids(20), x[:20])
    bank.save()
    a, b = IdentityBank.open(path), IdentityBank.open(path)
    a.add(["a"], x[20:21])
    b.add(["b"], x[21:22])
    a.save()
    with pytest.raises(BankConflictError, match="single-writer"):
        b.save()
    assert "a" in IdentityBank.open(path)


def test_threads_env_is_respected(tmp_path, monkeypatch):
    import faiss

    before = faiss.omp_get_max_threads()
    try:
        monkeypatch.setenv("S2VFORGE_FAISS_THREADS", "1")
        IdentityBank.create(tmp_path / "b", DIM, embedder="e", **opts())
        assert faiss.omp_get_max_threads() == 1
    finally:
        faiss.omp_set_num_threads(before)
