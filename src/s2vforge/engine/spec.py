"""Which engine schedules a run, and the resources each stage asks of it.

An engine spec is plain data: the CLI builds one from `--engine/--address/--workers` and the
recipe's `resources:` section; the driver hands it to the engine. Stages never see it.

A stage declares its resources (engine.stage.Resources: `num_cpus`, `num_gpus`, `memory`,
`actors`, `batch_size`, `max_retries`); the recipe's `resources.<stage name>` entry overrides
any of them. `actors`: 0 = stateless Ray tasks; a number (or `auto` = --workers) = an actor pool
of that size, each actor running the stage's setup() once. `num_gpus` may be a fraction (0.25 =
four actors share one GPU). `max_retries`: how often Ray re-runs an item whose worker process
died before the item is recorded as an error row.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .stage import Resources

ENGINES = ("local", "ray")
RESOURCE_KEYS = tuple(f.name for f in dataclasses.fields(Resources))


class EngineError(ValueError):
    pass


@dataclass(frozen=True)
class EngineSpec:
    """kind: local | ray; address: None (start a local Ray of `workers` CPUs), "auto" (join the
    running cluster) or "ray://HOST:PORT"; resources: the recipe's `resources:` section."""
    kind: str = "local"
    address: str | None = None
    workers: int = 1
    resources: dict = field(default_factory=dict)

    def stage_resources(self, stage: str, declared: Resources | None = None) -> dict:
        return stage_resources(self.resources, stage, self.workers, declared)


def resources_from_recipe(recipe: dict | None) -> dict:
    """The recipe's `resources:` section, checked."""
    sec = (recipe or {}).get("resources") or {}
    if not isinstance(sec, dict):
        raise EngineError("recipe `resources:` must be a mapping of stage -> {num_cpus, num_gpus, actors, batch_size}")
    for stage, vals in sec.items():
        if not isinstance(vals, dict):
            raise EngineError(f"recipe resources.{stage} must be a mapping")
        unknown = set(vals) - set(RESOURCE_KEYS)
        if unknown:
            raise EngineError(f"recipe resources.{stage}: unknown keys {sorted(unknown)}; known: {list(RESOURCE_KEYS)}")
    return {k: dict(v) for k, v in sec.items()}


def stage_resources(resources: dict, stage: str, workers: int, declared: Resources | None = None) -> dict:
    """Concrete numbers for one stage: the stage's declaration, the recipe's entry over it;
    `actors: auto` becomes the worker count."""
    res = dataclasses.asdict(declared or Resources())
    res.update({k: v for k, v in ((resources or {}).get(stage) or {}).items() if v is not None or k == "memory"})
    if res["actors"] in ("auto", None):
        res["actors"] = max(1, int(workers))
    res["actors"] = int(res["actors"])
    res["batch_size"] = max(1, int(res["batch_size"]))
    res["max_retries"] = max(0, int(res["max_retries"]))
    if float(res["num_cpus"]) <= 0 and float(res["num_gpus"]) <= 0:
        raise EngineError(f"resources.{stage}: num_cpus or num_gpus must be > 0")
    return res


def require_ray() -> None:
    """EngineError, one line naming the extra and its pip command, when Ray Data cannot be imported
    (checked before any work, so `--engine ray` without the ray extra is a usage error)."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as exc:
        from ..backends.errors import missing_extra_message
        raise EngineError(missing_extra_message("ray", "--engine ray", exc)) from None


def make_spec(kind: str | None, address: str | None = None, workers: int = 1, recipe: dict | None = None) -> EngineSpec:
    kind = (kind or "local").lower()
    if kind not in ENGINES:
        raise EngineError(f"unknown engine {kind!r}: use one of {', '.join(ENGINES)}")
    if kind == "ray":
        require_ray()
    if address and kind != "ray":
        raise EngineError("--address only applies to --engine ray")
    if address and not (address == "auto" or address.startswith("ray://") or ":" in address):
        raise EngineError(f"--address must be auto, ray://HOST:PORT or HOST:PORT, not {address!r}")
    return EngineSpec(kind=kind, address=address, workers=max(1, int(workers)), resources=resources_from_recipe(recipe))
