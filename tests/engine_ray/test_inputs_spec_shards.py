"""fsspec inputs, engine specs and table shards (no Ray needed except where marked)."""
from __future__ import annotations

import shutil

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from s2vforge.engine.shards import write_table_shards
from s2vforge.engine.spec import EngineError, make_spec
from s2vforge.engine.stage import Resources
from s2vforge.inputs import expand_inputs, input_id
from s2vforge.media.fetch import is_remote, local_copy, uri_fingerprint
from s2vforge.schema import content_fingerprint, video_id_for


def test_file_uris_give_the_local_items_and_ids(corpus, tmp_path):
    plain = expand_inputs([str(corpus)])
    via_uri = expand_inputs([corpus.as_uri()])
    assert via_uri == plain and len(plain) == 3
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(f'{{"path": "{(corpus / n).as_uri()}", "group_id": "g"}}\n'
                                for n in ("astro.mp4", "coffee.mp4")))
    items = expand_inputs([str(manifest)])
    assert [it["path"] for it in items] == [str(corpus / "astro.mp4"), str(corpus / "coffee.mp4")]
    assert [input_id(it["path"]) for it in items] == [video_id_for(corpus / "astro.mp4"), video_id_for(corpus / "coffee.mp4")]


@pytest.fixture
def memfs(corpus):
    fs = fsspec.filesystem("memory")
    for name in ("astro.mp4", "coffee.mp4"):
        fs.pipe(f"/bucket/videos/{name}", (corpus / name).read_bytes())
    fs.pipe("/bucket/videos/notes.txt", b"sidecar")
    fs.pipe("/bucket/manifest.csv", b"path,caption\nvideos/astro.mp4,an astronaut\nvideos/gone.mp4,\n")
    yield fs
    fs.rm("/bucket", recursive=True)


def test_memory_uris_keep_content_ids_and_reach_stages_as_local_files(memfs, corpus):
    items = expand_inputs(["memory://bucket/videos"])
    assert [it["path"] for it in items] == ["memory://bucket/videos/astro.mp4", "memory://bucket/videos/coffee.mp4"]
    assert all(is_remote(it["path"]) and not it.get("missing") for it in items)
    # same bytes, same id, wherever they live
    assert input_id(items[0]["path"]) == video_id_for(corpus / "astro.mp4")
    assert uri_fingerprint(items[1]["path"]) == content_fingerprint(corpus / "coffee.mp4")
    man = expand_inputs(["memory://bucket/manifest.csv"])
    assert man[0]["path"] == "memory://bucket/videos/astro.mp4" and man[0]["caption"] == "an astronaut"
    assert man[1].get("missing") is True
    from s2vforge.engine.worker import _with_local_inputs
    seen = {}

    def stage(item):
        seen[item["uri"]] = (item["path"], open(item["path"], "rb").read() == (corpus / item["uri"].rsplit("/", 1)[1]).read_bytes())
        return "ok"

    assert [_with_local_inputs(it, stage) for it in items] == ["ok", "ok"]
    assert all(ok for _, ok in seen.values())
    assert all(not __import__("os").path.exists(p) for p, _ in seen.values())   # temp copies removed


def test_local_copy_passes_local_paths_through(corpus):
    from s2vforge.engine.worker import _with_local_inputs
    p = str(corpus / "astro.mp4")
    with local_copy(p) as a, local_copy((corpus / "astro.mp4").as_uri()) as b:
        assert a == p and b == p
    assert _with_local_inputs({"path": p}, lambda it: it["path"]) == p


def test_engine_spec_resources_merge_and_validate():
    spec = make_spec("ray", "auto", 4, {"resources": {"subjects": {"num_gpus": 0.25, "batch_size": 8}}})
    from s2vforge.stages.subjects.pipeline import SubjectsStage
    sub = spec.stage_resources("subjects", SubjectsStage.resources)    # the stage declares an actor pool
    assert sub["num_gpus"] == 0.25 and sub["batch_size"] == 8 and sub["actors"] == 4 and sub["num_cpus"] == 1
    assert spec.stage_resources("curate")["actors"] == 0 == spec.stage_resources("unknown")["actors"]
    declared = Resources(num_cpus=2, actors="auto", batch_size=16)       # a stage's declaration, recipe silent
    assert spec.stage_resources("pairs", declared) == {"num_cpus": 2, "num_gpus": 0.0, "memory": None, "actors": 4,
                                                       "batch_size": 16, "max_retries": 2}
    with pytest.raises(EngineError, match="unknown keys"):
        make_spec("ray", None, 1, {"resources": {"subjects": {"gpus": 1}}})
    with pytest.raises(EngineError, match="only applies"):
        make_spec("local", "auto", 1, None)
    with pytest.raises(EngineError, match="unknown engine"):
        make_spec("spark", None, 1, None)


def test_shards_hold_the_table_rows_in_order(local_ds, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(local_ds, ds)
    full = pq.read_table(ds / "clips.parquet")
    out = write_table_shards(ds, ("videos", "clips"), 2)
    assert len(out["clips"]) == -(-full.num_rows // 2) and len(out["videos"]) == 2
    back = pa.concat_tables([pq.read_table(p) for p in sorted(out["clips"])])
    assert back.equals(full)
    # a rerun with bigger shards replaces the folder: no stale parts
    out = write_table_shards(ds, ("clips",), 1000)
    assert sorted(p.name for p in (ds / "shards" / "clips").iterdir()) == ["part-00000.parquet"]
    mem = write_table_shards(ds, ("videos",), 1, dest_root="memory://shards-test")
    assert len(mem["videos"]) == 3 and fsspec.filesystem("memory").exists("/shards-test/videos/part-00002.parquet")


def test_ray_missing_is_a_clear_error(monkeypatch):
    import sys
    from s2vforge.engine import ray_engine
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(EngineError, match=r"pip install 's2vforge\[ray\]'"):
        ray_engine.import_ray()
