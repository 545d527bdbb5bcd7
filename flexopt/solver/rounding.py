"""Integer values for a relaxed solution: the rounding target of relax-and-round.

Formulations know how to round their own integers consistently (cumulative element-intervals, the fewest chargers
that carry the relaxed power, ...); every other integer column goes to the nearest integer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from flexopt.solver.matrix import column_values

# Given a reader of the LP relaxation's values (per Pyomo Var), the rounded values of integer Var components.
Rounder = Callable[[Callable[[Any], np.ndarray]], list[tuple[Any, np.ndarray]]]

# A relaxed solution (all columns) -> the integer values to fix (all columns; only the integer ones are used).
RoundTarget = Callable[[np.ndarray], np.ndarray]


def rounded(x: np.ndarray, col: dict[int, int], rounder: Rounder | None) -> np.ndarray:
    """``x`` rounded to the nearest integer, then overwritten where the formulations' ``rounder`` says."""
    target = np.round(x)
    if rounder is not None:
        for component, vals in rounder(lambda c: column_values(c, x, col)):
            for v, val in zip(component.values(), vals, strict=True):
                j = col.get(id(v))
                if j is not None:
                    target[j] = val
    return target


def round_target(col: dict[int, int], rounder: Rounder | None) -> RoundTarget:
    """The rounding as a function of the relaxed solution alone, for the decomposed solve."""
    return lambda x: rounded(x, col, rounder)
