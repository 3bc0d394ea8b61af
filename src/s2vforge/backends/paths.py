"""Where reference weights are looked for. Nothing is ever downloaded.

Order: an explicit path, then $S2VFORGE_MODELS/<name>, then ~/.cache/s2vforge/models/<name>,
then the standard Hugging Face cache ($HF_HUB_CACHE or $HF_HOME/hub or
~/.cache/huggingface/hub) as models--<org>--<name>/snapshots/<rev>/.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import MODELS_ENV, ModelNotFound


def set_models_dir(path: str | os.PathLike | None) -> None:
    """Point every backend (and the workers this process starts) at a models folder: `--models DIR`.

    Sets $S2VFORGE_MODELS to the absolute path, so spawned workers and a local Ray inherit it."""
    if path:
        os.environ[MODELS_ENV] = str(Path(path).expanduser().resolve())


def model_search_dirs(local_name: str, hf_repo: str | None = None) -> list[Path]:
    dirs: list[Path] = []
    env = os.environ.get(MODELS_ENV)
    if env:
        dirs.append(Path(env) / local_name)
    dirs.append(Path.home() / ".cache" / "s2vforge" / "models" / local_name)
    if hf_repo:
        hub = os.environ.get("HF_HUB_CACHE") or (
            os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None
        ) or str(Path.home() / ".cache" / "huggingface" / "hub")
        snap_root = Path(hub) / ("models--" + hf_repo.replace("/", "--")) / "snapshots"
        if snap_root.is_dir():
            dirs.extend(sorted(p for p in snap_root.iterdir() if p.is_dir()))
        else:
            dirs.append(snap_root / "<revision>")
    return dirs


def find_model_dir(local_name: str, hf_repo: str | None = None, explicit: str | os.PathLike | None = None,
                   must_contain: str = "config.json", model_label: str | None = None) -> Path:
    """Return the first directory holding `must_contain`, or raise ModelNotFound with every place tried."""
    tried: list[Path] = []
    if explicit:
        tried.append(Path(explicit))
    tried.extend(model_search_dirs(local_name, hf_repo))
    for d in tried:
        if (d / must_contain).exists():
            return d
    label = model_label or hf_repo or local_name
    how = (f"Put the weights in one of these directories (e.g. `huggingface-cli download {hf_repo}` on a "
           f"machine with network, then copy the cache), or pass the directory explicitly in the recipe."
           if hf_repo else "Put the weights in one of these directories or pass the directory explicitly in the recipe.")
    raise ModelNotFound(label, [str(p) for p in tried], how, local_name=local_name)
