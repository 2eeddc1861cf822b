"""The checks by name, in the order they run and appear in the report."""

from __future__ import annotations

from winnow.audit.balance import BalanceCheck
from winnow.audit.base import Check
from winnow.audit.duplicates import DuplicatesCheck
from winnow.audit.labels import LabelIssuesCheck
from winnow.audit.outliers import OutlierCheck
from winnow.audit.quality import QualityCheck
from winnow.audit.shift import ShiftCheck
from winnow.audit.unreadable import UnreadableCheck

CHECKS: dict[str, type[Check]] = {
    "unreadable": UnreadableCheck,
    "balance": BalanceCheck,
    "duplicates": DuplicatesCheck,
    "labels": LabelIssuesCheck,
    "outliers": OutlierCheck,
    "quality": QualityCheck,
    "shift": ShiftCheck,
}


def make_checks(names: list[str] | None = None) -> list[Check]:
    """Fresh instances of the checks `names` (default: all, in registry order).

    Raises:
        ValueError: An unknown name, listing the valid ones.
    """
    names = list(CHECKS) if names is None else names
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        raise ValueError(f"--checks: unknown check(s) {unknown}; valid: {', '.join(CHECKS)}")
    return [CHECKS[name]() for name in names]
