"""Reading a stage's settings from its recipe section, with no defaults of its own.

The default recipe (recipes/openhumanvid.yaml) is the only place a default value lives; a stage
is handed its section deep-merged over the default recipe's, so every key is there. A missing
key is a caller's mistake (a hand-built partial dict), reported with the key's recipe path.
A key the default recipe does not have is a recipe's mistake (a typo), found by `unknown_keys`
with the closest valid key.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple


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


# ----------------------------------------------------------------------------- unknown keys

class UnknownKey(NamedTuple):
    """A key a recipe sets that no stage reads: its dotted path and the closest valid key."""
    path: tuple[str, ...]
    suggestion: str | None = None

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    def describe(self) -> str:
        hint = f" (did you mean {self.suggestion}?)" if self.suggestion else ""
        return f"unknown key {self.dotted}{hint}"


def unknown_keys(given: Mapping, schema: Mapping, path: tuple[str, ...] = (),
                 suggest_from: Mapping | None = None) -> list[UnknownKey]:
    """Every key of `given` (nested) that `schema` does not have, in file order.

    `schema` is the full key set as nested mappings (the default recipe, with its free-form
    tables expanded): a mapping value is descended into when `given` holds a mapping there too;
    any other value (a scalar, a list, None) is a leaf whose contents are not checked. The
    suggestion is a near-spelling among the key's siblings, else the same key (or a near spelling
    of a longer one) elsewhere in `suggest_from` (default: `schema`)."""
    out: list[UnknownKey] = []
    _walk(given, schema, path, list(_paths(schema if suggest_from is None else suggest_from, ())), out)
    return out


def _walk(given: Mapping, schema: Mapping, path: tuple[str, ...], everywhere: list, out: list) -> None:
    for key, value in given.items():
        name = str(key)
        if name not in schema:
            out.append(UnknownKey(path + (name,), _suggest(name, path, schema, everywhere)))
            continue
        sub = schema[name]
        if isinstance(sub, Mapping) and isinstance(value, Mapping):
            _walk(value, sub, path + (name,), everywhere, out)


def _suggest(name: str, path: tuple[str, ...], siblings: Mapping, everywhere: list) -> str | None:
    import difflib
    keys = [str(k) for k in siblings]
    near = difflib.get_close_matches(name, keys, n=1, cutoff=0.6)
    if not near and len(name) >= 3:          # a part of one key: gpu -> num_gpus
        near = [k for k in keys if name in k] if sum(name in k for k in keys) == 1 else []
    if near:
        return ".".join(path + (near[0],))
    same = sorted((p for p in everywhere if p[-1] == name), key=len)
    if same:                                 # the right key in the wrong section: min_s -> split.min_s
        return ".".join(same[0])
    if len(name) >= 5:
        leaves = {p[-1]: p for p in sorted(everywhere, key=len, reverse=True)}   # the shortest path per name
        near = difflib.get_close_matches(name, list(leaves), n=1, cutoff=0.85)
        if near:
            return ".".join(leaves[near[0]])
    return None


def _paths(schema: Mapping, path: tuple[str, ...]):
    for key, sub in schema.items():
        yield path + (str(key),)
        if isinstance(sub, Mapping):
            yield from _paths(sub, path + (str(key),))
