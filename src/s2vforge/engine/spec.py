"""Which engine schedules a run, and the resources each stage asks of it.

An engine spec is plain data: the CLI builds one from `--engine/--address/--workers` and the
recipe's `resources:` section; `engine.pool.run_pool` reads it. Stages never see it.

Recipe section (every key optional; defaults below):

    resources:
      curate:      {num_cpus: 1}                          # CPU stage: Ray tasks
      subjects:    {num_cpus: 1, num_gpus: 0, actors: auto, batch_size: 1}
      pairs_embed: {num_cpus: 1, num_gpus: 0, actors: auto, batch_size: 16}

`actors`: 0 = run the stage as stateless Ray tasks; a number (or `auto` = --workers) = an actor
pool of that size, each actor loading the stage's models once (model stages). `num_gpus` may be
a fraction (0.25 = four actors share one GPU). `max_retries`: how often Ray re-runs an item whose
worker process died before the item is recorded as an error row.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

ENGINES = ("local", "ray")

# Defaults are sized for CPU-only embedded backends: one CPU per item, model stages as long-lived
# actors so detectors/embedders load once per worker (as the local pool's _WORKER caches do).
DEFAULT_RESOURCES: dict[str, dict] = {
    "default": {"num_cpus": 1, "num_gpus": 0, "actors": 0, "batch_size": 1, "max_retries": 2},
    "curate": {"num_cpus": 1, "num_gpus": 0, "actors": 0, "batch_size": 1, "max_retries": 2},
    "subjects": {"num_cpus": 1, "num_gpus": 0, "actors": "auto", "batch_size": 1, "max_retries": 2},
    "pairs_embed": {"num_cpus": 1, "num_gpus": 0, "actors": "auto", "batch_size": 16, "max_retries": 2},
}



class EngineError(ValueError):
    pass


@dataclass(frozen=True)
class EngineSpec:
    """kind: local | ray; address: None (start a local Ray of `workers` CPUs), "auto" (join the
    running cluster) or "ray://HOST:PORT"; resources: the recipe's section merged over defaults."""
    kind: str = "local"
    address: str | None = None
    workers: int = 1
    resources: dict = field(default_factory=dict)

    def stage_resources(self, stage: str) -> dict:
        return stage_resources(self.resources, stage, self.workers)


def resources_from_recipe(recipe: dict | None) -> dict:
    """The recipe's `resources:` section merged stage by stage over DEFAULT_RESOURCES."""
    out = copy.deepcopy(DEFAULT_RESOURCES)
    sec = (recipe or {}).get("resources") or {}
    if not isinstance(sec, dict):
        raise EngineError("recipe `resources:` must be a mapping of stage -> {num_cpus, num_gpus, actors, batch_size}")
    for stage, vals in sec.items():
        if not isinstance(vals, dict):
            raise EngineError(f"recipe resources.{stage} must be a mapping")
        unknown = set(vals) - {"num_cpus", "num_gpus", "actors", "batch_size", "max_retries", "memory"}
        if unknown:
            raise EngineError(f"recipe resources.{stage}: unknown keys {sorted(unknown)}")
        out[stage] = {**out.get(stage, out["default"]), **vals}
    return out


def stage_resources(resources: dict, stage: str, workers: int) -> dict:
    """Concrete numbers for one stage: `actors: auto` becomes the worker count."""
    res = dict((resources or DEFAULT_RESOURCES).get(stage) or DEFAULT_RESOURCES.get(stage)
               or DEFAULT_RESOURCES["default"])
    for k, v in DEFAULT_RESOURCES["default"].items():
        res.setdefault(k, v)
    if res["actors"] in ("auto", None):
        res["actors"] = max(1, int(workers))
    res["actors"] = int(res["actors"])
    res["batch_size"] = max(1, int(res["batch_size"]))
    res["max_retries"] = max(0, int(res["max_retries"]))
    if float(res["num_cpus"]) <= 0 and float(res["num_gpus"]) <= 0:
        raise EngineError(f"resources.{stage}: num_cpus or num_gpus must be > 0")
    return res


def make_spec(kind: str | None, address: str | None = None, workers: int = 1, recipe: dict | None = None) -> EngineSpec:
    kind = (kind or "local").lower()
    if kind not in ENGINES:
        raise EngineError(f"unknown engine {kind!r}: use one of {', '.join(ENGINES)}")
    if address and kind != "ray":
        raise EngineError("--address only applies to --engine ray")
    if address and not (address == "auto" or address.startswith("ray://") or ":" in address):
        raise EngineError(f"--address must be auto, ray://HOST:PORT or HOST:PORT, not {address!r}")
    return EngineSpec(kind=kind, address=address, workers=max(1, int(workers)), resources=resources_from_recipe(recipe))
