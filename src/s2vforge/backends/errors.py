"""Errors that tell the user what is missing and how to provide it."""
from __future__ import annotations

MODELS_ENV = "S2VFORGE_MODELS"

# the optional extras of pyproject.toml and the top-level modules each one installs
EXTRAS = {
    "reference": ("torch", "transformers", "safetensors"),
    "faces": ("dlib", "face_recognition_models"),
    "ray": ("ray",),
}


class BackendUnavailable(RuntimeError):
    """A backend cannot run here (missing weights, package or endpoint).

    The message names the model, every place that was searched and what to do, so the
    pipeline can record it as the reason a column is null instead of crashing.
    """

    def __init__(self, model: str, looked_in: list[str] | tuple[str, ...] = (), how_to: str = ""):
        self.model = model
        self.looked_in = [str(p) for p in looked_in]
        self.how_to = how_to
        where = "; ".join(self.looked_in) if self.looked_in else "(nowhere configured)"
        msg = f"{model} is not available. Looked in: {where}."
        if how_to:
            msg += f" {how_to}"
        super().__init__(msg)

    @classmethod
    def from_message(cls, message: str) -> "BackendUnavailable":
        """Rebuild an error from its message (for failures cached per process)."""
        err = cls.__new__(cls)
        RuntimeError.__init__(err, message)
        err.model, err.looked_in, err.how_to = "", [], ""
        return err

    @staticmethod
    def missing_extra(extra: str, what: str, exc: BaseException | None = None) -> "MissingExtra":
        """The one-line error for an optional extra that is not installed (see `missing_extra`)."""
        return missing_extra(extra, what, exc)


class ModelNotFound(BackendUnavailable):
    """Reference weights are not on disk.

    Besides the model and every directory searched, the message always says the two ways to
    point s2vforge at a models folder: $S2VFORGE_MODELS and the commands' `--models DIR`."""

    def __init__(self, model: str, looked_in: list[str] | tuple[str, ...] = (), how_to: str = "", *,
                 local_name: str | None = None):
        names = [local_name] if local_name else _local_names(looked_in)
        hint = models_dir_hint(names)
        super().__init__(model, looked_in, f"{how_to} {hint}".strip() if MODELS_ENV not in how_to else how_to)


def _local_names(looked_in) -> list[str]:
    """The <name> of every DIR/<name> searched under the s2vforge models cache or $S2VFORGE_MODELS."""
    import os
    from pathlib import Path
    roots = {Path.home() / ".cache" / "s2vforge" / "models"}
    if os.environ.get(MODELS_ENV):
        roots.add(Path(os.environ[MODELS_ENV]))
    names: list[str] = []
    for p in map(Path, looked_in):
        if p.parent in roots and p.name not in names:
            names.append(p.name)
    return names


def models_dir_hint(names: list[str] | tuple[str, ...] = ()) -> str:
    """How to point every command at a models folder (said by every ModelNotFound)."""
    import os
    sub = " or ".join(f"DIR/{n}/" for n in names) if names else "DIR/<model name>/"
    unset = "" if os.environ.get(MODELS_ENV) else f"; ${MODELS_ENV} is not set now"
    return (f"To use a models folder DIR, put the weights in {sub} and set ${MODELS_ENV}=DIR or pass "
            f"`--models DIR` to the command{unset}.")


def install_command(extra: str) -> str:
    return f"pip install 's2vforge[{extra}]'"


def missing_extra_message(extra: str, what: str, exc: BaseException | None = None) -> str:
    """`<what> needs the <extra> extra: pip install 's2vforge[<extra>]'`, one line.

    `exc` (the ImportError) adds a short reason only when it is not simply one of the extra's
    own packages being absent (e.g. an installed transformers too old for a class): the nested
    exception's text is never repeated."""
    msg = f"{what} needs the {extra} extra: {install_command(extra)}"
    why = _import_reason(extra, exc)
    return f"{msg} ({why})" if why else msg


def _import_reason(extra: str, exc: BaseException | None) -> str:
    if exc is None:
        return ""
    if isinstance(exc, MissingExtra):
        return exc.reason
    if isinstance(exc, BackendUnavailable):      # a wrapped backend error: no nested text, only its model
        return f"{exc.model} is unavailable" if exc.model else ""
    name = getattr(exc, "name", None) or ""
    own = EXTRAS.get(extra, ())
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, ModuleNotFoundError) and name.split(".")[0] in own:
        return ""                                   # the extra's package is not installed: the command says it all
    if isinstance(exc, ModuleNotFoundError) and name:
        return f"no module named {name!r}"
    # e.g. "cannot import name 'Sam2Model' from 'transformers' (/site-packages/...)": drop the path
    return text.split(" (/")[0].split(" (\\")[0][:200]


class MissingExtra(BackendUnavailable):
    """An optional extra (`pip install 's2vforge[<extra>]'`) is not installed; the message is one line."""

    def __init__(self, extra: str, what: str, exc: BaseException | None = None):
        self.extra = extra
        self.what = what
        self.reason = _import_reason(extra, exc)
        self.model, self.looked_in = what, []
        self.how_to = install_command(extra)
        RuntimeError.__init__(self, missing_extra_message(extra, what, exc))


def missing_extra(extra: str, what: str, exc: BaseException | None = None) -> MissingExtra:
    """The error to raise when `what` needs an optional extra that is not installed:
    `raise missing_extra("reference", "aesthetic reference backend", exc) from exc`."""
    return MissingExtra(extra, what, exc)
