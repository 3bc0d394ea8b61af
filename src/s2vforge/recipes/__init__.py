"""Built-in recipes and recipe loading (a recipe is plain YAML; see openhumanvid.yaml)."""
from __future__ import annotations

import copy
import functools
from importlib import resources
from pathlib import Path

import yaml

DEFAULT = "openhumanvid"

_REQUIRED = ("split", "analysis", "crop", "scorers", "filters", "write", "ingest")


class RecipeError(ValueError):
    pass


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str | None = None, overrides: dict | None = None) -> dict:
    """A built-in recipe by name or a YAML file by path, deep-merged over the default recipe."""
    base = _read_builtin(DEFAULT)
    if name_or_path and name_or_path != DEFAULT:
        if name_or_path in builtin_names():
            data = _read_builtin(name_or_path)
        else:
            p = Path(name_or_path)
            if not p.is_file():
                raise RecipeError(f"unknown recipe {name_or_path!r}: not a built-in ({', '.join(builtin_names())}) "
                                  f"and no such file")
            try:
                data = yaml.safe_load(p.read_text()) or {}
            except yaml.YAMLError as e:
                raise RecipeError(f"recipe file {p} is not valid YAML: {e}") from None
            if not isinstance(data, dict):
                raise RecipeError(f"recipe file {p} must hold a mapping")
        base = _merge(base, data)
    if overrides:
        base = _merge(base, overrides)
    missing = [k for k in _REQUIRED if k not in base]
    if missing:
        raise RecipeError(f"recipe is missing sections: {missing}")
    _check_types(base, _read_builtin(DEFAULT))
    return base


def _check_types(recipe: dict, default: dict) -> None:
    """A section the default recipe holds as a mapping (or list) must be one in every recipe."""
    for key, ref in default.items():
        val = recipe.get(key)
        if isinstance(ref, dict) and not isinstance(val, dict):
            raise RecipeError(f"recipe `{key}:` must be a mapping, not {type(val).__name__} {val!r}")
        if isinstance(ref, list) and not isinstance(val, list):
            raise RecipeError(f"recipe `{key}:` must be a list (e.g. [{', '.join(map(str, ref[:2]))}]), "
                              f"not {type(val).__name__} {val!r}")
    for column, rule in (recipe.get("filters") or {}).items():
        if not isinstance(rule, dict):
            raise RecipeError(f"recipe filters.{column} must be a mapping like {{min: 10, max: 210}}, not {rule!r}")


def section(recipe: dict | None, name: str) -> dict:
    """recipe[name] deep-merged over the default recipe's `name` section: what a stage runs with
    whatever it was given (the YAML is the only source of defaults)."""
    base = _read_builtin(DEFAULT).get(name)
    given = (recipe or {}).get(name)
    if isinstance(base, dict):
        return _merge(base, given) if isinstance(given, dict) else copy.deepcopy(base)
    return copy.deepcopy(base if given is None else given)


@functools.lru_cache(maxsize=8)
def _builtin_text(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.yaml").read_text()


def _read_builtin(name: str) -> dict:
    return yaml.safe_load(_builtin_text(name))


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        if k == "filters" and isinstance(v, dict):
            out[k] = copy.deepcopy(v)          # a recipe's filters replace the default set as a whole
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
