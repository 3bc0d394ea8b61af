"""Why a clip was rejected, as data: one typed `Reason` per failed check.

clips.parquet carries each clip's reasons twice: `rejects` (list of struct: code, column,
bound, text) for programs, and `reject_reasons` (their texts, e.g. "score_luminance<10") for
people and DuckDB one-liners. Counting and reporting read `rejects`; nothing parses the texts.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa


class Code(str, Enum):
    TOO_SHORT = "too_short"          # the scene is shorter than split.min_s
    NO_FRAMES = "no_frames"          # the window holds no analysis frame
    WRITE_FAILED = "write_failed"    # the kept clip could not be encoded
    BELOW_MIN = "below_min"          # a score under its filter's min
    ABOVE_MAX = "above_max"          # a score over its filter's max
    MISSING = "missing"              # a score that could not be computed for this clip


@dataclass(frozen=True)
class Reason:
    code: Code
    column: str | None = None        # the score column, for score checks
    bound: float | None = None       # the threshold crossed
    inclusive: bool = True           # whether the bound itself was allowed

    @property
    def text(self) -> str:
        if self.code is Code.BELOW_MIN:
            return f"{self.column}{'<' if self.inclusive else '<='}{self.bound}"
        if self.code is Code.ABOVE_MAX:
            return f"{self.column}{'>' if self.inclusive else '>='}{self.bound}"
        if self.code is Code.MISSING:
            return f"{self.column}:missing"
        return self.code.value

    @property
    def group(self) -> str:
        """What reports count by: the score column, or the code for non-score reasons."""
        return self.column or self.code.value

    def record(self) -> dict:
        return {"code": self.code.value, "column": self.column,
                "bound": None if self.bound is None else float(self.bound), "text": self.text}


REASON_TYPE = pa.struct([("code", pa.string()), ("column", pa.string()), ("bound", pa.float64()),
                         ("text", pa.string())])


def as_columns(reasons: list[Reason]) -> dict:
    """The two clips.parquet columns for a list of reasons."""
    return {"rejects": [r.record() for r in reasons], "reject_reasons": [r.text for r in reasons]}


def verdict_code(text: str) -> str:
    """The code of a subject verdict text ("area_frac<0.04" -> "area_frac", "clip_unreadable: ..."
    -> "clip_unreadable"): subjects' `checks` and `caption_verdicts` are `<code>[<op><bound>][:detail]`."""
    return text.split(":")[0].split("<")[0].split(">")[0]


def group_of(record: dict) -> str:
    """Reason.group of a `rejects` struct read back from the table."""
    return record.get("column") or record["code"]
