"""Lagrangian bound and schedule for one block: price the coupling rows, solve each device alone.

Devices meet only in the site balance rows. With those rows priced at the LP relaxation's duals ``y``, the block
falls apart into one small MIP per device with integers (plus one LP for everything continuous), and

    L(y) = sum_r y_r * rhs_r + sum_k min_{x_k in X_k} (c - A_c' y)_k x_k  <=  MIP optimum

for any ``y`` of the right signs (weak duality). Each ``min`` is over the device's *integer* set, so L(y) is at
least the LP bound and usually far above it: a water heater's element granularity, an EV's minimum current, a heat
pump's minimum power are all inside the device's own problem. The device schedules are also a candidate answer:
their integers fixed, the block's LP re-solved.

Sub-MIPs are solved to a tight gap and their *dual* bounds are summed, so the bound stays valid when one stops
early.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np

SUB_REL_GAP = 1e-4
SUB_TIME_LIMIT_S = 10.0


@dataclass
class Block:
    """One block of the model, in local numbering (CSR matrix, bounds, cost, integrality, coupling row mask)."""

    a_csr: Any
    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    integrality: np.ndarray
    coupling: np.ndarray  # bool per row: priced instead of kept


@dataclass
class LagrangianResult:
    bound: float  # valid lower bound on the block's objective (c x, no offset)
    x: np.ndarray  # the devices' own schedules (integers are what matters), local numbering
    subproblems: int
    seconds: float


def _highs(a_csc: Any, cost: np.ndarray, lower: np.ndarray, upper: np.ndarray, row_lower: np.ndarray,
           row_upper: np.ndarray, integrality: np.ndarray | None, time_limit_s: float) -> highspy.Highs:
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = a_csc.shape[1], a_csc.shape[0]
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lower, upper
    lp.row_lower_, lp.row_upper_ = row_lower, row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a_csc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a_csc.indices.astype(np.int32)
    lp.a_matrix_.value_ = a_csc.data.astype(float)
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = a_csc.shape[1], a_csc.shape[0]
    if integrality is not None and integrality.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if k else highspy.HighsVarType.kContinuous
                           for k in integrality]
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    h.setOptionValue("mip_rel_gap", SUB_REL_GAP)
    h.setOptionValue("mip_abs_gap", 1e-7)
    h.setOptionValue("time_limit", max(time_limit_s, 1e-3))
    return h


def _components(a_csc: Any, n: int, m: int) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    coo = a_csc.tocoo()
    graph = coo_matrix((np.ones(coo.nnz, dtype=np.int8), (coo.col, n + coo.row)), shape=(n + m, n + m))
    return connected_components(graph, directed=False)[1]


def lagrangian(block: Block, row_dual: np.ndarray, deadline: float | None = None) -> LagrangianResult | None:
    """L(y) at the relaxation's duals of the coupling rows, and the devices' schedules at those prices.
    None when a part has no finite optimum at these prices (the bound is then not usable)."""
    t0 = time.perf_counter()
    n = len(block.cost)
    coupled = np.flatnonzero(block.coupling)
    y = np.asarray(row_dual, dtype=float)[coupled]
    lo, hi = block.row_lower[coupled], block.row_upper[coupled]
    # the side a multiplier prices: lower side for y > 0, upper for y < 0 (a sign without a finite side -> 0)
    side = np.where(y > 0, lo, np.where(y < 0, hi, 0.0))
    y = np.where(np.isfinite(side), y, 0.0)
    side = np.where(np.isfinite(side), side, 0.0)
    a_c = block.a_csr[coupled]
    priced = block.cost - a_c.T @ y
    bound = float(y @ side)

    keep = np.flatnonzero(~block.coupling)
    a_k = block.a_csr[keep].tocsc()
    lab = _components(a_k, n, keep.size)
    col_lab, row_lab = lab[:n], lab[n:]
    is_int = block.integrality.astype(bool)
    has_int = np.zeros(lab.max() + 1 if lab.size else 0, dtype=bool)
    rows_per = np.bincount(row_lab, minlength=has_int.size)
    # integer columns in no row are box minima: the LP part takes them (its optimum sits on a bound)
    has_int[col_lab[is_int & (rows_per[col_lab] > 0)]] = True
    key = np.where(has_int[col_lab], col_lab, -1)
    rkey = np.where(has_int[row_lab], row_lab, -1)
    x = np.zeros(n)
    a_k_csr = a_k.tocsr()
    col_order, row_order = np.argsort(key, kind="stable"), np.argsort(rkey, kind="stable")
    keys = np.unique(key)
    c_lo, c_hi = np.searchsorted(key[col_order], keys, "left"), np.searchsorted(key[col_order], keys, "right")
    r_lo, r_hi = np.searchsorted(rkey[row_order], keys, "left"), np.searchsorted(rkey[row_order], keys, "right")
    subs = 0
    for g, k in enumerate(keys):
        cols = col_order[c_lo[g]:c_hi[g]]
        rows = row_order[r_lo[g]:r_hi[g]]
        left = SUB_TIME_LIMIT_S if deadline is None else min(SUB_TIME_LIMIT_S, deadline - time.perf_counter())
        if left <= 0:
            return None
        sub = a_k_csr[rows][:, cols].tocsc()
        ints = block.integrality[cols] if k >= 0 else None
        h = _highs(sub, priced[cols], block.lower[cols], block.upper[cols], block.row_lower[keep[rows]],
                   block.row_upper[keep[rows]], ints, left if k >= 0 else np.inf)
        h.run()
        info = h.getInfo()
        if info.primal_solution_status != 2:
            return None
        if k >= 0:
            subs += 1
            bound += float(info.mip_dual_bound)
        else:
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
            bound += float(info.objective_function_value)
        x[cols] = np.asarray(h.getSolution().col_value, dtype=float)
    return LagrangianResult(bound=bound, x=x, subproblems=subs, seconds=time.perf_counter() - t0)
