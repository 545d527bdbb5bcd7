"""Lagrangian bound and schedule for one block of the model: price the coupling rows, solve each device alone.

The block is a :class:`~flexopt.solver.matrix.ModelMatrix` in its own numbering whose ``coupling`` marks the site
balance rows. Devices meet only in those rows. With those rows priced at the LP relaxation's duals ``y``, the block
falls apart into one small MIP per device with integers (plus one LP for everything continuous), and

    L(y) = sum_r y_r * rhs_r + sum_k min_{x_k in X_k} (c - A_c' y)_k x_k  <=  MIP optimum

for any ``y`` of the right signs (weak duality). Each ``min`` is over the device's *integer* set, so L(y) is at
least the LP bound and usually far above it: a water heater's element granularity, an EV's minimum current, a heat
pump's minimum power are all inside the device's own problem. The device schedules are also a candidate answer:
their integers fixed, the block's LP re-solved.

Each device's problem is solved as an LP first: most devices' own problems have integral relaxations (a water
heater's cumulative counts with their rounding rows, a heat pump or battery whose prices leave no fraction), and
an LP optimum with integral integers is the device's MIP optimum, at a fraction of a MIP's cost. Only devices
left fractional run as MIPs, solved to a tight gap; their *dual* bounds are summed, so the bound stays valid when
one stops early.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np

from flexopt.solver.matrix import ModelMatrix, integer_blocks, pass_model

SUB_REL_GAP = 1e-4
SUB_TIME_LIMIT_S = 10.0
# an LP solution whose integer columns are this close to integers is taken as the device's MIP optimum
INTEGRAL_TOL = 1e-6


@dataclass
class LagrangianResult:
    bound: float  # valid lower bound on the block's objective (c x, no offset)
    x: np.ndarray  # the devices' own schedules (integers are what matters), local numbering
    subproblems: int  # devices with integers
    seconds: float
    mips: int = 0  # of those, the ones whose LP was fractional (solved as MIPs)


def _highs(time_limit_s: float) -> highspy.Highs:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", SUB_REL_GAP)
    h.setOptionValue("mip_abs_gap", 1e-7)
    h.setOptionValue("time_limit", max(time_limit_s, 1e-3))
    return h


def lagrangian(model: ModelMatrix, row_dual: np.ndarray, deadline: float | None = None) -> LagrangianResult | None:
    """L(y) at the relaxation's duals of the coupling rows, and the devices' schedules at those prices.
    None when a part has no finite optimum at these prices (the bound is then not usable)."""
    t0 = time.perf_counter()
    n = len(model.cost)
    coupling = np.zeros(model.n_rows, dtype=bool) if model.coupling is None else model.coupling
    coupled = np.flatnonzero(coupling)
    y = np.asarray(row_dual, dtype=float)[coupled]
    lo, hi = model.row_lower[coupled], model.row_upper[coupled]
    # the side a multiplier prices: lower side for y > 0, upper for y < 0 (a sign without a finite side -> 0)
    side = np.where(y > 0, lo, np.where(y < 0, hi, 0.0))
    y = np.where(np.isfinite(side), y, 0.0)
    side = np.where(np.isfinite(side), side, 0.0)
    a_c = model.a_csr[coupled]
    priced = model.cost - a_c.T @ y
    bound = float(y @ side)

    keep = np.flatnonzero(~coupling)
    a_k = model.a_csr[keep].tocsc()
    a_k_csr = a_k.tocsr()
    x = np.zeros(n)
    subs = mips = 0
    # integer columns in no row are box minima: the LP part takes them (its optimum sits on a bound)
    for has_int, cols, rows in integer_blocks(a_k, model.integrality, row_free_integers_to_lp=True):
        left = SUB_TIME_LIMIT_S if deadline is None else min(SUB_TIME_LIMIT_S, deadline - time.perf_counter())
        if left <= 0:
            return None
        h = _highs(left if has_int else np.inf)
        # the LP first (see the module docstring); its integers are marked only when it leaves them fractional
        pass_model(h, a_k_csr[rows][:, cols].tocsc(), priced[cols], model.lower[cols], model.upper[cols],
                   model.row_lower[keep[rows]], model.row_upper[keep[rows]])
        ints = np.flatnonzero(model.integrality[cols]).astype(np.int32) if has_int else np.zeros(0, np.int32)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        sol = np.asarray(h.getSolution().col_value, dtype=float)
        if ints.size:
            subs += 1
            if np.abs(sol[ints] - np.round(sol[ints])).max() > INTEGRAL_TOL:
                mips += 1
                h.changeColsIntegrality(ints.size, ints, np.full(ints.size, highspy.HighsVarType.kInteger))
                h.run()
                info = h.getInfo()
                if info.primal_solution_status != 2:
                    return None
                bound += float(info.mip_dual_bound)
                x[cols] = np.asarray(h.getSolution().col_value, dtype=float)
                continue
        bound += float(h.getInfo().objective_function_value)
        x[cols] = sol
    return LagrangianResult(bound=bound, x=x, subproblems=subs, seconds=time.perf_counter() - t0, mips=mips)
