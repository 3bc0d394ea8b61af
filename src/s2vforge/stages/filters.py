"""Keep or reject a clip from recipe thresholds; every rejection names its reasons."""
from __future__ import annotations

import math


def check_range(value: float | None, rule: dict) -> str | None:
    """None when `value` satisfies the rule, else a short reason fragment like '<10' or '>=1.0'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    lo, hi = rule.get("min"), rule.get("max")
    if lo is not None:
        if rule.get("min_inclusive", True) and value < lo:
            return f"<{lo}"
        if not rule.get("min_inclusive", True) and value <= lo:
            return f"<={lo}"
    if hi is not None:
        if rule.get("max_inclusive", True) and value > hi:
            return f">{hi}"
        if not rule.get("max_inclusive", True) and value >= hi:
            return f">={hi}"
    return None


def apply_filters(record: dict, filters: dict, skip_columns: set[str] = frozenset()) -> tuple[bool, list[str]]:
    """(keep, reasons) for a clip record; `skip_columns` are scores whose backend is unavailable
    in this run (their filter is not applied, and the run report says so)."""
    reasons = list(record.get("reject_reasons") or [])
    for column, rule in filters.items():
        if column in skip_columns:
            continue
        why = check_range(record.get(column), rule)
        if why is not None:
            reasons.append(f"{column}{why}" if why != "missing" else f"{column}:missing")
    return not reasons, reasons
