"""The book's one rule for calling a comparison: ahead, level or behind.

Two values of a metric (mAP, ROC AUC, Precision@95) closer than :data:`TIE` are
*level*; every chapter's tables, counts and sentences use this rule, so a
difference is never a gain in one chapter and a tie in another.
"""
from __future__ import annotations

import numpy as np

#: differences of at most this size (in the metric's own units, 0..1) count as level
TIE = 0.002


def ahead(diff):
    """``diff > TIE`` (elementwise for arrays and pandas objects)."""
    return diff > TIE


def behind(diff):
    """``diff < -TIE`` (elementwise)."""
    return diff < -TIE


def level(diff):
    """``|diff| <= TIE`` (elementwise)."""
    return np.abs(diff) <= TIE


def call(diff: float) -> str:
    """``"ahead"``, ``"level"`` or ``"behind"`` for one difference (a NaN is refused).

    Raises
    ------
    ValueError
        If ``diff`` is NaN.
    """
    diff = float(diff)
    if diff != diff:
        raise ValueError("diff is NaN: a comparison needs two measured values")
    return "ahead" if ahead(diff) else "behind" if behind(diff) else "level"
