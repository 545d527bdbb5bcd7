"""A model as matrices: HiGHS models from sparse arrays, and the independent blocks of a constraint matrix.

Shared by the decomposed solve (one block per congestion point) and the Lagrangian step (one block per device).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import highspy
import numpy as np


def highs_lp(a_csc: Any, cost: np.ndarray, lower: np.ndarray, upper: np.ndarray, row_lower: np.ndarray,
             row_upper: np.ndarray, integrality: np.ndarray | None = None, offset: float = 0.0) -> highspy.HighsLp:
    """``row_lower <= A x <= row_upper``, ``lower <= x <= upper``, minimise ``cost x + offset``; integer where
    ``integrality`` is non-zero (None or all zero: an LP)."""
    m, n = a_csc.shape
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_, lp.offset_ = cost, offset
    lp.col_lower_, lp.col_upper_ = lower, upper
    lp.row_lower_, lp.row_upper_ = row_lower, row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a_csc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a_csc.indices.astype(np.int32)
    lp.a_matrix_.value_ = a_csc.data.astype(float)
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, m
    if integrality is not None and integrality.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if k else highspy.HighsVarType.kContinuous
                           for k in integrality]
    return lp


def components(a_csc: Any) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components of the column/row graph: (count, label per column, label per row)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m, n = a_csc.shape
    coo = a_csc.tocoo()
    graph = coo_matrix((np.ones(coo.nnz, dtype=np.int8), (coo.col, n + coo.row)), shape=(n + m, n + m))
    count, labels = connected_components(graph, directed=False)
    return count, labels[:n], labels[n:]


def integer_blocks(a_csc: Any, integrality: np.ndarray,
                   row_free_integers_to_lp: bool = False) -> Iterator[tuple[bool, np.ndarray, np.ndarray]]:
    """``(has_integers, cols, rows)``: one group of every purely continuous component together (an LP; first, where
    there is one), then one per connected component holding integers; columns and rows in ascending order within each.

    ``row_free_integers_to_lp``: an integer column in no row does not make its component integer (the LP takes
    it; its optimum sits on a bound)."""
    count, col_lab, row_lab = components(a_csc)
    is_int = integrality.astype(bool)
    if row_free_integers_to_lp:
        is_int &= np.diff(a_csc.indptr) > 0
    has_int = np.zeros(count, dtype=bool)
    has_int[col_lab[is_int]] = True
    col_key = np.where(has_int[col_lab], col_lab, -1)
    row_key = np.where(has_int[row_lab], row_lab, -1)
    col_order, row_order = np.argsort(col_key, kind="stable"), np.argsort(row_key, kind="stable")
    keys = np.unique(col_key)
    c_lo, c_hi = np.searchsorted(col_key[col_order], keys, "left"), np.searchsorted(col_key[col_order], keys, "right")
    r_lo, r_hi = np.searchsorted(row_key[row_order], keys, "left"), np.searchsorted(row_key[row_order], keys, "right")
    for g, key in enumerate(keys):
        yield bool(key >= 0), col_order[c_lo[g]:c_hi[g]], row_order[r_lo[g]:r_hi[g]]
