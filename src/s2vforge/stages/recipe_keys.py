"""Reading a stage's settings from its recipe section, with no defaults of its own.

The default recipe (recipes/openhumanvid.yaml) is the only place a default value lives; a stage
is handed its section deep-merged over the default recipe's, so every key is there. A missing
key is a caller's mistake (a hand-built partial dict), reported with the key's recipe path.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping


class MissingRecipeKey(KeyError):
    """A setting the stage needs is not in the config it was given."""

    def __init__(self, path: str, available: Iterable[str] = ()) -> None:
        self.path = path
        self.available = sorted(available)
        super().__init__(path)

    def __str__(self) -> str:
        have = f" (the section given has {self.available})" if self.available else ""
        return (f"recipe key {self.path!r} is missing{have}; pass the recipe's section merged over the default "
                f"recipe (s2vforge.recipes.load_recipe), which sets every key")


def need(cfg: Mapping | None, key: str, where: str):
    """cfg[key]; MissingRecipeKey naming `<where>.<key>` when the key is absent."""
    if cfg is None or key not in cfg:
        raise MissingRecipeKey(f"{where}.{key}", cfg or ())
    return cfg[key]


def take(cfg: Mapping | None, keys: Iterable[str], where: str) -> dict:
    """{key: cfg[key]} for `keys`; MissingRecipeKey for the first absent one."""
    return {k: need(cfg, k, where) for k in keys}
