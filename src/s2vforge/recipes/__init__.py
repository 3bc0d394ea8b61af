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
    """A built-in recipe by name or a YAML file by path, deep-merged over the default recipe.

    RecipeError (one line per problem) for a file that is not YAML (`FILE:LINE:COL: ...`) and for
    keys the default recipe does not have (`FILE:LINE:COL: unknown key a.b (did you mean a.c?)`,
    every one of them)."""
    base = _read_builtin(DEFAULT)
    marks: dict = {}
    where = "recipe"
    if name_or_path and name_or_path != DEFAULT:
        if name_or_path in builtin_names():
            data = _read_builtin(name_or_path)
            where = f"recipe {name_or_path}"
        else:
            p = Path(name_or_path)
            if not p.is_file():
                raise RecipeError(f"unknown recipe {name_or_path!r}: not a built-in ({', '.join(builtin_names())}) "
                                  f"and no such file")
            data, marks = _read_file(p)
            where = str(p)
            if not isinstance(data, dict):
                raise RecipeError(f"{p}:1:1: a recipe must be a mapping of sections (split:, filters:, ...), "
                                  f"not {type(data).__name__}")
        check_keys(data, where, marks)
        base = _merge(base, data)
    if overrides:
        check_keys(overrides, "recipe overrides")
        base = _merge(base, overrides)
    missing = [k for k in _REQUIRED if k not in base]
    if missing:
        raise RecipeError(f"recipe is missing sections: {missing}")
    _check_types(base, _read_builtin(DEFAULT), lambda *path: _at(where, marks, path))
    return base


# ----------------------------------------------------------------------------- reading a file

def _read_file(p: Path) -> tuple[object, dict]:
    """(the document, {key path: (line, column)} of every mapping key, 1-based); RecipeError
    `FILE:LINE:COL: not valid YAML: <problem>` when it does not parse."""
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise RecipeError(f"{p}: cannot read the recipe: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise RecipeError(f"{p}:{line}:{col}: not valid YAML: not UTF-8 text (byte 0x{raw[e.start]:02x})") from None
    loader = None
    try:
        loader = yaml.SafeLoader(text)          # checks for unprintable characters (ReaderError)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as e:
        raise RecipeError(_yaml_problem(p, e)) from None
    except yaml.reader.ReaderError as e:        # a control character: position is an index into the text
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise RecipeError(f"{p}:{line}:{col}: not valid YAML: character {char}: {e.reason}") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"{p}: not valid YAML: {' '.join(str(e).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()
    marks: dict = {}
    if node is not None:
        _key_marks(node, (), marks)
    return (data if data is not None else {}), marks


def _yaml_problem(p: Path, e: yaml.MarkedYAMLError) -> str:
    """`FILE:LINE:COL: not valid YAML: <problem> (<context> at LINE:COL)`, from the problem's mark."""
    mark = e.problem_mark or e.context_mark
    at = f"{mark.line + 1}:{mark.column + 1}" if mark is not None else "1:1"
    problem = " ".join(str(e.problem or e.context or "cannot parse").split())
    msg = f"{p}:{at}: not valid YAML: {problem}"
    if e.problem and e.context:
        cm = e.context_mark
        ctx = " ".join(str(e.context).split())
        msg += f" ({ctx} at {cm.line + 1}:{cm.column + 1})" if cm is not None and cm is not mark else f" ({ctx})"
    if "'\\t'" in problem:
        msg += "; indent with spaces, not tabs"
    return msg


def _key_marks(node, path: tuple, out: dict) -> None:
    """Where each key of the composed (and merge-flattened) document sits, keyed by its path of
    constructed keys; a repeated key keeps its last position, as its value does."""
    if not isinstance(node, yaml.MappingNode):
        return
    ctor = yaml.SafeLoader("")
    for knode, vnode in node.value:
        try:
            key = ctor.construct_object(knode, deep=True) if isinstance(knode, yaml.ScalarNode) else knode.value
        except yaml.YAMLError:
            key = knode.value
        sub = path + (str(key),)
        out[sub] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
        _key_marks(vnode, sub, out)


def _at(where: str, marks: dict, path) -> str:
    """`FILE:LINE:COL` of a key path when known, else `FILE`."""
    m = marks.get(tuple(str(k) for k in path))
    return f"{where}:{m[0]}:{m[1]}" if m else where


# ----------------------------------------------------------------------------- unknown keys

# clip row columns other than the scores that a `filters:` entry may bound
FILTERABLE_CLIP_COLUMNS = ("duration_s", "start_s", "end_s", "start_frame", "end_frame", "scene_index")
FILTER_RULE_KEYS = ("min", "max", "min_inclusive", "max_inclusive")


def key_schema() -> dict:
    """The full key set of a recipe: the default recipe (which sets every key), with its tables
    whose keys are not fixed by it expanded: `filters` (any score column of any scorer, or a clip
    column, each {min, max, min_inclusive, max_inclusive}) and `resources.<stage>` (every engine
    resource, also those the default leaves to the stage, e.g. memory). Values the default sets
    to null or a list are leaves: their contents are free."""
    from ..engine.spec import RESOURCE_KEYS
    from ..stages.scores import SCORERS
    schema = _read_builtin(DEFAULT)
    columns = set(schema.get("filters") or {}) | set(FILTERABLE_CLIP_COLUMNS) | {"score_ocr_area", "score_ocr_area_in_crop"}
    for scorer in SCORERS.values():
        columns.update(scorer.columns)
    schema["filters"] = {c: dict.fromkeys(FILTER_RULE_KEYS) for c in sorted(columns)}
    schema["resources"] = {stage: dict.fromkeys(RESOURCE_KEYS) for stage in (schema.get("resources") or {})}
    return schema


def check_keys(data: dict, where: str = "recipe", marks: dict | None = None) -> None:
    """RecipeError listing every key of `data` the default recipe does not have, one line each:
    `WHERE:LINE:COL: unknown key filters.score_aesthtic (did you mean filters.score_aesthetic?)`."""
    from ..stages.recipe_keys import unknown_keys
    found = unknown_keys(data, key_schema(), suggest_from=_read_builtin(DEFAULT))
    if found:
        lines = [f"{_at(where, marks or {}, u.path)}: {u.describe()}" for u in found]
        err = RecipeError("\n".join(lines))
        err.unknown = found
        raise err


def _check_types(recipe: dict, default: dict, at=lambda *path: "recipe") -> None:
    """A section the default recipe holds as a mapping (or list) must be one in every recipe.
    `at(*key_path)` is where a key sits (`FILE:LINE:COL`), for the message."""
    for key, ref in default.items():
        val = recipe.get(key)
        if isinstance(ref, dict) and not isinstance(val, dict):
            raise RecipeError(f"{at(key)}: recipe `{key}:` must be a mapping, not {type(val).__name__} {val!r}")
        if isinstance(ref, list) and not isinstance(val, list):
            raise RecipeError(f"{at(key)}: recipe `{key}:` must be a list (e.g. [{', '.join(map(str, ref[:2]))}]), "
                              f"not {type(val).__name__} {val!r}")
    for column, rule in (recipe.get("filters") or {}).items():
        if not isinstance(rule, dict):
            raise RecipeError(f"{at('filters', column)}: recipe filters.{column} must be a mapping like "
                              f"{{min: 10, max: 210}}, not {rule!r}")


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
