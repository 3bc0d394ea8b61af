"""The export formats: names, checks and the one dispatcher over their writers.

Every export writes the samples folder (samples.parquet + clips/ + subjects/, the layout
S2VDataset reads); each `--format` adds one folder written by its own module from the kept
samples. A format folder is replaced as a whole: the previous one is set aside while the writer
runs and removed only when it succeeds, so a failed or killed export never leaves a half-written
format behind a complete-looking one.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pyarrow as pa

from ...engine.writer import tmp_name

TRAINER_FORMATS = ("videox-fun", "diffsynth", "finetrainers", "opensora", "musubi")
FORMATS = ("samples", "opens2v", "webdataset", "lance", "hf") + TRAINER_FORMATS
FORMAT_DIRS = {"opens2v": "opens2v", "webdataset": "webdataset", "lance": "lance", "hf": "hf",
               **{t: f"trainers/{t}" for t in TRAINER_FORMATS}}


# formats whose writer needs an optional package: format -> (module, extra)
NEEDS_EXTRA = {"lance": ("lance", "export"), "hf": ("datasets", "export")}


def check_formats(formats: list[str] | str | None) -> list[str]:
    """The formats asked for, validated, in FORMATS order ("samples" is always written); a
    format whose package is missing fails here, before any work, naming the extra."""
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    asked = list(formats or [])
    bad = [f for f in asked if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown export format {bad[0]!r}: use one or more of {', '.join(FORMATS)} "
                         "(comma-separated)")
    import importlib.util
    for f in asked:
        if f in NEEDS_EXTRA and importlib.util.find_spec(NEEDS_EXTRA[f][0]) is None:
            from ...backends.errors import missing_extra_message
            raise ValueError(missing_extra_message(NEEDS_EXTRA[f][1], f"--format {f}"))
    return [f for f in FORMATS if f in asked and f != "samples"]


def _writer(name: str) -> Callable[[Path, pa.Table, dict, Path], dict]:
    if name == "opens2v":
        from .opens2v_json import write_opens2v
        return lambda export, samples, cfg, dataset: write_opens2v(export, samples, cfg, dataset)
    if name == "webdataset":
        from .webdataset import write_webdataset
        return lambda export, samples, cfg, dataset: write_webdataset(export, samples, cfg)
    if name == "lance":
        from .lance_table import write_lance
        return lambda export, samples, cfg, dataset: write_lance(export, samples, cfg)
    if name == "hf":
        from .hf_datasets import write_hf
        return lambda export, samples, cfg, dataset: write_hf(export, samples, cfg)
    if name in TRAINER_FORMATS:
        from .trainers import write_trainer
        return lambda export, samples, cfg, dataset: write_trainer(export, samples, cfg, name)
    raise ValueError(f"no writer for format {name!r}")


def write_formats(export_dir: Path, samples: pa.Table, cfg: dict, formats: list[str], dataset: Path) -> dict:
    """Write every format folder; {format: the writer's summary}."""
    out = {}
    for name in formats:
        dest = Path(export_dir) / FORMAT_DIRS[name]
        old = tmp_name(dest) if dest.exists() else None
        if old is not None:
            dest.rename(old)
        try:
            out[name] = _writer(name)(Path(export_dir), samples, cfg, Path(dataset))
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            if old is not None:
                old.rename(dest)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out
