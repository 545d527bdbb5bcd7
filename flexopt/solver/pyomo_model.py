"""The model's matrices as a Pyomo model: one indexed variable ``x`` (column ``j`` is ``x[j]``), one indexed
constraint ``rows`` (row ``i``), the objective. Pyomo's own solvers and writers then see the very model flexopt
solves; the persistent backend uses it to cross-check the matrix path with a translation it does not share."""

from __future__ import annotations

from typing import Any

import numpy as np

from flexopt.solver.matrix import ModelMatrix


def _bound(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def to_pyomo(matrix: ModelMatrix) -> Any:
    """A ``ConcreteModel`` equal to ``matrix`` (slow on large models: one Pyomo object per column and row)."""
    import pyomo.environ as pyo
    from pyomo.core.expr.numeric_expr import LinearExpression

    n = len(matrix.cost)
    m = pyo.ConcreteModel(name="flexopt")
    lower = [_bound(v) for v in matrix.lower]
    upper = [_bound(v) for v in matrix.upper]
    integer = matrix.integrality.astype(bool)
    m.x = pyo.Var(range(n), bounds=lambda _m, j: (lower[j], upper[j]),
                  domain=lambda _m, j: pyo.Integers if integer[j] else pyo.Reals)
    xs = list(m.x.values())
    csr = matrix.a_csr
    row_lower = [_bound(v) for v in matrix.row_lower]
    row_upper = [_bound(v) for v in matrix.row_upper]

    def row(_m: Any, i: int) -> Any:
        lo, hi = csr.indptr[i], csr.indptr[i + 1]
        expr = LinearExpression(linear_coefs=csr.data[lo:hi].tolist(),
                                linear_vars=[xs[j] for j in csr.indices[lo:hi]])
        if row_lower[i] is None and row_upper[i] is None:
            return pyo.Constraint.Skip
        return (row_lower[i], expr, row_upper[i])

    m.rows = pyo.Constraint(range(matrix.n_rows), rule=row)
    used = np.flatnonzero(matrix.cost)
    m.objective = pyo.Objective(
        expr=LinearExpression(linear_coefs=matrix.cost[used].tolist(), linear_vars=[xs[j] for j in used])
        + matrix.offset, sense=pyo.minimize)
    return m
