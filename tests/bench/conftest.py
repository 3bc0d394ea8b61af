"""Fixtures for the OpenS2V-Eval tests: the official reference clip, tiny derived clips, a
tiny benchmark folder and a local OpenAI-compatible judge server."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def reference_clip() -> Path:
    return DATA / "singleface_3.mp4"


@pytest.fixture(scope="session")
def official_outputs() -> dict:
    return json.loads((DATA / "official_outputs_singleface_3.json").read_text())


@pytest.fixture(scope="session")
def published_csv() -> Path:
    return DATA / "leaderboard_v1.1_Open-Domain.csv"


def _write_clip(path: Path, frames: list[np.ndarray], fps: int = 15) -> None:
    import av
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


@pytest.fixture(scope="session")
def tiny_clips(tmp_path_factory, reference_clip) -> list[Path]:
    """Three short, small clips cut from the reference video (different start frames), so
    runner tests exercise real decoding and real flow in well under a second each."""
    import av
    import cv2
    with av.open(str(reference_clip)) as c:
        frames = [cv2.resize(f.to_ndarray(format="rgb24"), (208, 120), interpolation=cv2.INTER_AREA)
                  for f in c.decode(video=0)]
    d = tmp_path_factory.mktemp("tiny_clips")
    out = []
    for i, start in enumerate((0, 20, 40)):
        p = d / f"clip{i}.mp4"
        _write_clip(p, frames[start:start + 10])
        out.append(p)
    return out


@pytest.fixture()
def tiny_bench(tmp_path, tiny_clips):
    """A 4-sample eval JSON (ids from the Open-Domain file) and videos for 3 of them."""
    src = json.loads((Path(__file__).parents[2] / "src/s2vforge/bench/opens2v/data/Open-Domain_Eval.json").read_text())
    ids = ["singleface_1", "singleface_2", "singleobj_1", "multiface_1"]
    eval_json = tmp_path / "tiny_eval.json"
    eval_json.write_text(json.dumps({k: src[k] for k in ids}))
    videos = tmp_path / "videos"
    videos.mkdir()
    for sid, clip in zip(ids[:3], tiny_clips):
        (videos / f"{sid}.mp4").write_bytes(clip.read_bytes())
    return {"eval_json": eval_json, "videos": videos, "ids": ids, "with_video": ids[:3], "out": tmp_path / "out",
            "entries": {k: src[k] for k in ids}}


def packaged_photo(name: str) -> Path:
    """A photo shipped with an installed package (skimage data, matplotlib sample data)."""
    import importlib.util
    if name == "grace_hopper.jpg":
        return Path(importlib.util.find_spec("matplotlib").origin).parent / "mpl-data" / "sample_data" / name
    return Path(importlib.util.find_spec("skimage").origin).parent / "data" / name


def make_bench_root(root: Path, eval_json: dict, ids,
                    photos=("grace_hopper.jpg", "astronaut.png", "coffee.png")) -> Path:
    """An OpenS2V-Eval-like folder: every reference image of `ids`, written at its official
    relative path from packaged photos (cycled), in the format its extension says."""
    from PIL import Image
    k = 0
    for sid in ids:
        for rel in eval_json[sid]["img_paths"]:
            dst = root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(packaged_photo(photos[k % len(photos)])) as im:
                im.convert("RGB").save(dst)
            k += 1
    return root


@pytest.fixture()
def tiny_bench_root(tmp_path, tiny_bench) -> Path:
    """Reference images for the tiny bench's samples that have a video."""
    return make_bench_root(tmp_path / "OpenS2V-Eval", tiny_bench["entries"], tiny_bench["with_video"])


@pytest.fixture(scope="session")
def bench_root_factory():
    return make_bench_root


@pytest.fixture()
def no_judge_env(monkeypatch):
    for k in ("S2VFORGE_JUDGE_BASE_URL", "OPENAI_BASE_URL", "S2VFORGE_JUDGE_MODEL"):
        monkeypatch.delenv(k, raising=False)
