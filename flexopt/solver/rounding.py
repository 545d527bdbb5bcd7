"""Integer values for a relaxed solution: the rounding target of relax-and-round.

Formulations know how to round their own integers consistently (cumulative element-intervals, the fewest chargers
that carry the relaxed power, ...); every other integer column goes to the nearest integer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from flexopt.solver.highs import solved_values

# Given a reader of the LP relaxation's values (per variable family), the rounded values of integer families.
Rounder = Callable[[Callable[[Any], np.ndarray]], list[tuple[Any, np.ndarray]]]

# A relaxed solution (all columns) -> the integer values to fix (all columns; only the integer ones are used).
RoundTarget = Callable[[np.ndarray], np.ndarray]


def rounded(x: np.ndarray, rounder: Rounder | None) -> np.ndarray:
    """``x`` rounded to the nearest integer, then overwritten where the formulations' ``rounder`` says."""
    target = np.round(x)
    if rounder is not None:
        for family, vals in rounder(lambda f: solved_values(f, x)):
            vals = np.asarray(vals, dtype=float)
            if vals.size != len(family.cols):
                raise ValueError(f"rounding of {family.name}: {vals.size} values for {len(family.cols)} columns")
            target[family.cols] = vals
    return target


def round_target(rounder: Rounder | None) -> RoundTarget:
    """The rounding as a function of the relaxed solution alone, for the decomposed solve."""
    return lambda x: rounded(x, rounder)
