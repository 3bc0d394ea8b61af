"""A small curated dataset whose clips show known things: a person (astronaut), a cat (chelsea),
a cup of coffee and a motorcycle, one clip each, built once per session from packaged photos."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from s2vforge.cli import run_curate
from s2vforge.corpus.synth import load_photo, moving_shot, write_video

FPS = 25.0
SIZE = (960, 540)          # Phantom-Data keeps boxes of at least 128 px a side
SHOWS = {"astronaut": "person", "chelsea": "cat", "coffee": "cup", "motorcycle_left": "motorcycle"}


@pytest.fixture(scope="session")
def captioned_corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("caption_corpus")
    for photo in SHOWS:
        write_video(d / f"{photo}.mp4", moving_shot(load_photo(photo), 2.6, FPS, SIZE, "pan"), FPS, preset="ultrafast")
    return d


@pytest.fixture(scope="session")
def curated(captioned_corpus, fast_recipe, tmp_path_factory) -> Path:
    """The corpus curated with the fast recipe: one kept clip per photo."""
    ds = tmp_path_factory.mktemp("caption_ds") / "ds"
    assert run_curate([str(captioned_corpus)], ds, str(fast_recipe), 1, False, quiet=True) == 0
    return ds


def rows_by_video(ds: Path, table: str) -> dict[str, list[dict]]:
    """A table's rows grouped by the name of the photo their video shows (the file stem)."""
    videos = {v["video_id"]: v["path"].rsplit("/", 1)[-1][:-4] for v in pq.read_table(ds / "videos.parquet").to_pylist()}
    out: dict[str, list[dict]] = {}
    for r in pq.read_table(ds / f"{table}.parquet").to_pylist():
        out.setdefault(videos[r["video_id"]], []).append(r)
    return out
