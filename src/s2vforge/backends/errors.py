"""Errors that tell the user what is missing and how to provide it."""
from __future__ import annotations


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


class ModelNotFound(BackendUnavailable):
    """Reference weights are not on disk."""
