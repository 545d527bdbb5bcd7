"""A model as matrices: the stated model's sparse arrays, HiGHS models from them, the independent blocks of a
constraint matrix.

Shared by the single-model and decomposed solves (one block per congestion point) and the Lagrangian step (one
block per device).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import highspy
import numpy as np

from flexopt.solver.highs import SolveError


@dataclass(eq=False)
class ModelMatrix:
    """A MILP as arrays: minimise ``cost x + offset`` s.t. ``row_lower <= A x <= row_upper``,
    ``lower <= x <= upper``, integer where ``integrality`` is non-zero.

    ``coupling`` marks the rows that join devices (the site balance; the Lagrangian step prices them)."""

    a_csc: Any
    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    integrality: np.ndarray
    offset: float = 0.0
    coupling: np.ndarray | None = None
    col_names: list[str] | None = None  # the families' names (``block.family[i]``), kept for a model file
    row_names: list[str] | None = None

    @cached_property
    def a_csr(self) -> Any:
        """The matrix by rows, for cutting out blocks (computed once)."""
        return self.a_csc.tocsr()

    @cached_property
    def _renumbering(self) -> np.ndarray:
        """Scratch space of one int per column for :meth:`part` (its contents are whatever the last part left)."""
        return np.zeros(self.a_csc.shape[1], dtype=np.int64)

    @property
    def n_rows(self) -> int:
        return int(self.a_csc.shape[0])

    def part(self, cols: np.ndarray, rows: np.ndarray, closed: bool = False) -> ModelMatrix:
        """The sub-model of these columns and rows in its own numbering (no offset). ``closed``: the rows have no
        entry outside ``cols`` (a connected component, or several), so their entries are renumbered instead of
        cut out by a column index the size of the whole model (quadratic over many blocks)."""
        if closed:
            from scipy.sparse import csr_matrix

            own = self._renumbering
            own[cols] = np.arange(cols.size)
            sub = self.a_csr[rows]
            local = own[sub.indices]
            if local.size and not np.array_equal(cols[np.clip(local, 0, max(cols.size - 1, 0))], sub.indices):
                raise ValueError("part(closed=True): the rows have entries outside the columns")
            a = csr_matrix((sub.data, local, sub.indptr), shape=(rows.size, cols.size)).tocsc()
        else:
            a = self.a_csr[rows][:, cols].tocsc()
        return ModelMatrix(a_csc=a, cost=self.cost[cols], lower=self.lower[cols],
                           upper=self.upper[cols], row_lower=self.row_lower[rows], row_upper=self.row_upper[rows],
                           integrality=self.integrality[cols],
                           coupling=None if self.coupling is None else self.coupling[rows])

    def load_into(self, h: highspy.Highs, integers: bool = True) -> None:
        """Pass the whole model to ``h`` (as its LP relaxation with ``integers=False``)."""
        pass_model(h, self.a_csc, self.cost, self.lower, self.upper, self.row_lower, self.row_upper,
                   self.integrality if integers else None, self.offset)

    def to_highs(self) -> highspy.HighsLp:
        """The whole model as one HiGHS model."""
        return highs_lp(self.a_csc, self.cost, self.lower, self.upper, self.row_lower, self.row_upper,
                        self.integrality, self.offset)

    def write(self, path: str) -> None:
        """The whole model as an LP or MPS file (by the extension), with its names where it kept them."""
        lp = self.to_highs()
        if self.col_names is not None and self.row_names is not None:
            # LP files allow no brackets in names (HiGHS then drops every name): soc[3] is written soc(3)
            plain = str.maketrans("[]", "()")
            lp.col_names_ = [n.translate(plain) for n in self.col_names]
            lp.row_names_ = [n.translate(plain) for n in self.row_names]
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.passModel(lp)
        if h.writeModel(str(path)) == highspy.HighsStatus.kError:  # a warning (e.g. empty rows) still writes
            raise OSError(f"HiGHS could not write the model to {path}")

    def integer_counts(self) -> tuple[int, int]:
        """(binaries, other integers)."""
        return integer_counts(self.integrality, self.lower, self.upper)



def integer_counts(integrality: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[int, int]:
    """(binaries, other integers): an integer column within [0, 1] is a binary."""
    is_int = integrality.astype(bool)
    binaries = int(np.sum(is_int & (lower >= 0) & (upper <= 1)))
    return binaries, int(is_int.sum()) - binaries


def pass_model(h: highspy.Highs, a_csc: Any, cost: np.ndarray, lower: np.ndarray, upper: np.ndarray,
               row_lower: np.ndarray, row_upper: np.ndarray, integrality: np.ndarray | None = None,
               offset: float = 0.0) -> None:
    """Give ``h`` the model ``row_lower <= A x <= row_upper``, ``lower <= x <= upper``, minimise ``cost x +
    offset``, integer where ``integrality`` is non-zero, straight from the arrays (a :class:`highspy.HighsLp` built
    field by field copies its matrix on every access: 4x slower on a block of 40 devices)."""
    m, n = a_csc.shape
    kinds = (np.zeros(n, dtype=np.int32) if integrality is None
             else (np.asarray(integrality) != 0).astype(np.int32))  # 1: HighsVarType.kInteger
    status = h.passModel(n, m, int(a_csc.nnz), 1, 1, float(offset),  # column-wise matrix, minimise
                         np.ascontiguousarray(cost, dtype=float), np.ascontiguousarray(lower, dtype=float),
                         np.ascontiguousarray(upper, dtype=float), np.ascontiguousarray(row_lower, dtype=float),
                         np.ascontiguousarray(row_upper, dtype=float), a_csc.indptr.astype(np.int32),
                         a_csc.indices.astype(np.int32), np.ascontiguousarray(a_csc.data, dtype=float), kinds)
    if status == highspy.HighsStatus.kError:
        raise SolveError("HiGHS refused the model (a coefficient, cost or bound it cannot take); rerun with "
                         "--write-model FILE.lp to see it")


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
