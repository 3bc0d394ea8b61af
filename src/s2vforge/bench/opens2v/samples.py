"""The benchmark's prompt files: which ids exist, their prompts and reference images.

Copies of the three official `*-Domain_Eval.json` files ship in `data/` (OpenS2V-Eval,
CC-BY-4.0, Yuan et al. 2025); `--eval-json` points at another copy.
"""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from .metrics.base import Sample
from .scoring import canonical_domain

EVAL_JSON_NAMES = {"open": "Open-Domain_Eval.json", "human": "Human-Domain_Eval.json",
                   "single": "Single-Domain_Eval.json"}
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi")


class SamplesError(ValueError):
    """The prompt file is missing or malformed."""


def bundled_eval_json(domain: str) -> Path:
    """Path of the packaged copy of a domain's Eval JSON."""
    name = EVAL_JSON_NAMES[canonical_domain(domain)]
    p = Path(str(resources.files(__package__).joinpath("data", name)))
    if not p.is_file():
        raise SamplesError(f"the packaged {name} is missing from {p.parent}; reinstall s2vforge or pass --eval-json")
    return p


def _flag(v: object) -> bool | None:
    # The files mix True, "wrong" and "Wrong" (False = real reference images, True = synthetic).
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "right", "yes", "1"):
            return True
        if s in ("false", "wrong", "no", "0"):
            return False
    return None


def read_eval_json(path: str | os.PathLike) -> dict[str, dict]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SamplesError(f"eval JSON not found: {p}") from None
    except ValueError as e:
        raise SamplesError(f"eval JSON {p} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not data:
        raise SamplesError(f"eval JSON {p} must be a non-empty object keyed by sample id")
    for k, v in data.items():
        if not isinstance(v, dict) or "prompt" not in v:
            raise SamplesError(f"eval JSON {p}: entry {k!r} has no prompt")
    return data


def find_video(videos_dir: str | os.PathLike, sample_id: str) -> Path | None:
    """`<videos_dir>/<id>.mp4` (the official layout), else another common container."""
    d = Path(videos_dir)
    for ext in VIDEO_EXTENSIONS:
        p = d / f"{sample_id}{ext}"
        if p.is_file():
            return p
    return None


def load_samples(domain: str, bench_root: str | os.PathLike | None = None,
                 videos_dir: str | os.PathLike | None = None,
                 eval_json: str | os.PathLike | None = None) -> list[Sample]:
    """Samples in file order, reference paths resolved against `bench_root`, videos attached."""
    path = Path(eval_json) if eval_json else bundled_eval_json(domain)
    data = read_eval_json(path)
    root = Path(bench_root) if bench_root else None
    out: list[Sample] = []
    for sid, entry in data.items():
        refs = [Path(r) if root is None else root / r for r in entry.get("img_paths", [])]
        out.append(Sample(
            id=sid,
            prompt=str(entry["prompt"]),
            ref_paths=refs,
            class_label=[str(c) for c in entry.get("class_label", [])],
            synthesis_flag=_flag(entry.get("synthesis_flag")),
            video_path=find_video(videos_dir, sid) if videos_dir else None,
        ))
    return out
