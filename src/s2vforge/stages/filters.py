"""Keep or reject a clip from recipe thresholds; every rejection is a typed reason (reasons.py)."""
from __future__ import annotations

import math

from ..reasons import Code, Reason


def check_range(column: str, value: float | None, rule: dict) -> Reason | None:
    """None when `value` satisfies the rule {min, max, min_inclusive, max_inclusive}, else why not."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Reason(Code.MISSING, column)
    lo, hi = rule.get("min"), rule.get("max")
    lo_inc, hi_inc = rule.get("min_inclusive", True), rule.get("max_inclusive", True)
    if lo is not None and (value < lo if lo_inc else value <= lo):
        return Reason(Code.BELOW_MIN, column, lo, lo_inc)
    if hi is not None and (value > hi if hi_inc else value >= hi):
        return Reason(Code.ABOVE_MAX, column, hi, hi_inc)
    return None


def apply_filters(record: dict, filters: dict, skip_columns: set[str] = frozenset()) -> list[Reason]:
    """The reasons a scored clip fails the recipe's filters (none = keep); `skip_columns` are
    scores whose backend is unavailable in this run (not applied; the run report says so)."""
    reasons = []
    for column, rule in filters.items():
        if column in skip_columns:
            continue
        why = check_range(column, record.get(column), rule)
        if why is not None:
            reasons.append(why)
    return reasons
