"""Solve a Pyomo model with HiGHS in memory and read values back as numpy arrays.

Two in-memory paths (no LP files), selected by ``SolveOptions.backend``:

- ``matrix`` (default): Pyomo's own ``LinearStandardFormCompiler`` turns the model into sparse
  matrices, which go to ``highspy`` in one ``passModel`` call. Measured 3-4x faster than the
  persistent interface's per-constraint translation (docs/benchmarks.md).
- ``persistent``: ``pyomo.contrib.solver`` 'highs' (Pyomo's persistent highspy interface).

A solver that fails or stops without a feasible solution raises :class:`SolveError`; never a fallback.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
from pyomo.common.tee import capture_output

from flexopt.solver.lagrangian import Block, lagrangian
from flexopt.solver.matrix import highs_lp, integer_blocks
from flexopt.solver.options import SolveOptions

log = logging.getLogger(__name__)

_TERMINATION = {
    "kOptimal": "optimal",
    "kTimeLimit": "time_limit",
    "kInfeasible": "infeasible",
    "kUnbounded": "unbounded",
    "kUnboundedOrInfeasible": "infeasible_or_unbounded",
    "kIterationLimit": "iteration_limit",
    "kSolutionLimit": "solution_limit",
    "kInterrupt": "interrupted",
    "kHighsInterrupt": "interrupted",
    "kMemoryLimit": "memory_limit",
    "kObjectiveBound": "objective_limit",
    "kObjectiveTarget": "objective_limit",
    "kModelEmpty": "optimal",
}

_HINTS = {
    "time_limit": "raise SolveOptions.time_limit_s or loosen mip_gap",
    "iteration_limit": "raise the time limit or loosen mip_gap",
    "memory_limit": "shorten the horizon or group identical devices with `count`",
    "infeasible": "limits and comfort are soft, so a hard bound conflicts: check initial states "
                  "(SoC, temperatures) against their bounds",
    "unbounded": "a price makes unlimited trade profitable: check export prices above import prices "
                 "at sites without limits",
    "infeasible_or_unbounded": "check initial states against bounds and export prices above import prices",
}


# block states whose schedule is accepted as it is (within the gap budget)
_FINAL = ("optimal", "rounded", "lagrangian", "neighbourhood")


def relative_gap(objective: float, bound: float) -> float:
    """(objective - bound) / |objective|, never negative: a bound a rounding error above the objective (-2e-16)
    means the schedule is optimal, not better than optimal."""
    if not np.isfinite(objective):
        return float("inf")
    return max(0.0, (objective - bound) / max(abs(objective), 1e-9))


class SolveError(RuntimeError):
    """The solver returned no usable schedule; the message says the status and what to try."""


@dataclass
class SolveOutcome:
    status: str
    termination: str
    objective: float
    bound: float
    mip_gap: float
    variables: int
    constraints: int
    binaries: int
    integers: int
    translate_s: float
    solve_s: float
    backend: str
    method: str = "highs"  # "lp_round": the LP relaxation rounded and re-solved was within the gap
    components: dict | None = None  # decomposed solve: number of independent blocks, their states, slowest
    _x: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    _col: dict[int, int] = field(repr=False, default_factory=dict)

    def values(self, component: Any) -> np.ndarray:
        """Solved values of an indexed Var, in index order (unused variables read their lower bound or 0)."""
        data = list(component.values())
        idx = np.fromiter((self._col.get(id(v), -1) for v in data), dtype=np.int64, count=len(data))
        out = np.where(idx >= 0, self._x[np.maximum(idx, 0)], 0.0) if self._x.size else np.zeros(len(data))
        for k in np.flatnonzero(idx < 0):
            lb, ub = data[k].lb, data[k].ub
            out[k] = min(max(0.0, lb if lb is not None else 0.0), ub if ub is not None else np.inf)
        return out


def _new_highs() -> highspy.Highs:
    with capture_output(capture_fd=True):
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
    return h


def _set_options(h: highspy.Highs, options: SolveOptions) -> None:
    if options.verbose:
        h.setOptionValue("output_flag", True)
        h.setOptionValue("log_to_console", True)
    h.setOptionValue("mip_rel_gap", float(options.mip_gap))
    if options.time_limit_s is not None:
        h.setOptionValue("time_limit", float(options.time_limit_s))
    if options.threads is not None:
        h.setOptionValue("threads", int(options.threads))
    for key, value in options.highs_options.items():
        h.setOptionValue(key, value)


def _run(h: highspy.Highs, verbose: bool = False, capture: bool = True) -> float:
    t0 = time.perf_counter()
    if verbose or not capture:  # no capture in worker threads: redirecting file descriptors is process-wide
        h.run()
        return time.perf_counter() - t0
    with capture_output(capture_fd=True):
        h.run()
    return time.perf_counter() - t0


def _outcome(h: highspy.Highs, col: dict[int, int], translate_s: float, solve_s: float, backend: str,
             integrality: np.ndarray, lower: np.ndarray, upper: np.ndarray, n_rows: int,
             override: tuple[str, float, float] | None = None) -> SolveOutcome:
    status = h.getModelStatus()
    name = status.name if hasattr(status, "name") else str(status).split(".")[-1]
    info = h.getInfo()
    if override is not None:
        # the rounded schedule (an LP with the integers fixed) is within the gap of the relaxation's bound
        name, objective, bound = override
        x = np.asarray(h.getSolution().col_value, dtype=float)
        is_int = integrality.astype(bool)
        binaries = int(np.sum(is_int & (lower >= 0) & (upper <= 1)))
        return SolveOutcome(status=name, termination="optimal", objective=objective, bound=bound,
                            mip_gap=relative_gap(objective, bound), variables=len(lower),
                            constraints=n_rows, binaries=binaries, integers=int(is_int.sum()) - binaries,
                            translate_s=translate_s, solve_s=solve_s, backend=backend, _x=x, _col=col,
                            method="lp_round")
    termination = _TERMINATION.get(name, "error")
    feasible = info.primal_solution_status == 2 or name == "kModelEmpty"
    is_int = integrality.astype(bool)
    binaries = int(np.sum(is_int & (lower >= 0) & (upper <= 1)))
    if not feasible:
        hint = _HINTS.get(termination, "rerun with threads=1 and report the model status")
        raise SolveError(f"HiGHS returned no feasible schedule (model status {name}, termination {termination}); "
                         f"{hint}")
    x = np.asarray(h.getSolution().col_value, dtype=float)
    objective = float(info.objective_function_value)
    if is_int.any():
        bound = float(info.mip_dual_bound)
        gap = relative_gap(objective, bound)
    else:
        bound, gap = objective, 0.0
    return SolveOutcome(status=name, termination=termination, objective=objective, bound=bound, mip_gap=gap,
                        variables=len(lower), constraints=n_rows, binaries=binaries,
                        integers=int(is_int.sum()) - binaries, translate_s=translate_s, solve_s=solve_s,
                        backend=backend, _x=x, _col=col)


# Given a reader of the LP relaxation's values, the rounded values of integer Var components.
Rounder = Callable[[Callable[[Any], np.ndarray]], list[tuple[Any, np.ndarray]]]


def solve_model(model: Any, options: SolveOptions, rounder: Rounder | None = None,
                coupling: tuple[Any, ...] = ()) -> SolveOutcome:
    """``coupling``: constraint components that join devices (site balance); the Lagrangian step prices them."""
    if options.backend == "persistent":
        return _solve_persistent(model, options)
    if options.backend != "matrix":
        raise ValueError(f"unknown backend {options.backend!r}; use 'matrix' or 'persistent'")
    return _solve_matrix(model, options, rounder, coupling)


def _reader(x: np.ndarray, col: dict[int, int]) -> Callable[[Any], np.ndarray]:
    return SolveOutcome("", "", 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0, 0.0, "", _x=x, _col=col).values


def _solve_matrix(model: Any, options: SolveOptions, rounder: Rounder | None = None,
                  coupling: tuple[Any, ...] = ()) -> SolveOutcome:
    from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

    t0 = time.perf_counter()
    info = LinearStandardFormCompiler().write(model, mixed_form=True, set_sense=None)
    cols = info.columns
    n, m = len(cols), info.A.shape[0]
    inf = highspy.kHighsInf
    lower = np.array([inf * -1 if v.lb is None else v.lb for v in cols], dtype=float)
    upper = np.array([inf if v.ub is None else v.ub for v in cols], dtype=float)
    integrality = np.array([1 if v.is_integer() else 0 for v in cols], dtype=np.int32)
    kind = np.fromiter((r.bound_type for r in info.rows), dtype=np.int8, count=m)
    rhs = np.asarray(info.rhs, dtype=float)
    a = info.A.tocsc()
    cost = info.c.toarray().ravel() if info.c.shape[0] else np.zeros(n)
    offset = float(info.c_offset[0]) if len(info.c_offset) else 0.0
    row_lower, row_upper = np.where(kind == 1, -inf, rhs), np.where(kind == -1, inf, rhs)
    col = {id(v): j for j, v in enumerate(cols)}
    if integrality.any() and options.decompose:
        full = {"A_csc": a, "A_csr": a.tocsr(), "cost": cost, "lower": lower, "upper": upper,
                "row_lower": row_lower, "row_upper": row_upper, "offset": offset,
                "coupling": _row_mask(info.rows, coupling)}
        groups = _split(full, integrality, options)
        return _solve_groups(groups, full, integrality, options, col, rounder, time.perf_counter() - t0, m)
    h = _new_highs()
    h.passModel(highs_lp(a, cost, lower, upper, row_lower, row_upper, integrality, offset))
    _set_options(h, options)
    translate_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    if integrality.any() and options.mip_start:
        done = _round_and_fix(h, integrality, lower, upper, float(options.mip_gap), options, col, rounder)
        if done is not None:
            return _outcome(h, col, translate_s, time.perf_counter() - t1, "matrix", integrality, lower, upper, m,
                            override=done)
    _run(h, options.verbose)
    return _outcome(h, col, translate_s, time.perf_counter() - t1, "matrix", integrality, lower, upper, m)


def _row_mask(rows: list, components: tuple[Any, ...]) -> np.ndarray:
    """True for the rows that belong to one of ``components`` (indexed constraints)."""
    ids = {id(c) for c in components}
    if not ids:
        return np.zeros(len(rows), dtype=bool)
    return np.fromiter((id(r.constraint.parent_component()) in ids for r in rows), dtype=bool, count=len(rows))


def _round_and_fix(h: highspy.Highs, integrality: np.ndarray, lower: np.ndarray, upper: np.ndarray, gap: float,
                   options: SolveOptions, col: dict[int, int],
                   rounder: Rounder | None) -> tuple[str, float, float] | None:
    """Relax-and-round start: solve the LP relaxation (its optimum bounds the MIP), round the integers, fix them
    and re-solve the LP. Within the gap, that schedule is the answer; otherwise it seeds the MIP as incumbent.

    Returns (status, objective, bound) when the rounded schedule is accepted, else None (the MIP then runs).
    """
    verbose = options.verbose
    idx = np.flatnonzero(integrality).astype(np.int32)
    cont = np.full(idx.size, highspy.HighsVarType.kContinuous)
    ints = np.full(idx.size, highspy.HighsVarType.kInteger)
    h.changeColsIntegrality(idx.size, idx, cont)
    _run(h, verbose)
    relaxed_ok = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    h.changeColsIntegrality(idx.size, idx, ints)
    if not relaxed_ok:
        return None
    bound = float(h.getInfo().objective_function_value)
    x = np.asarray(h.getSolution().col_value, dtype=float)
    target = _rounded(x, col, rounder)
    fixed = np.clip(target[idx], lower[idx], upper[idx])
    h.changeColsBounds(idx.size, idx, fixed, fixed)
    _run(h, verbose)
    feasible = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    value = float(h.getInfo().objective_function_value) if feasible else np.inf
    h.changeColsBounds(idx.size, idx, lower[idx], upper[idx])
    if not feasible:
        return None
    if value - bound <= gap * max(abs(value), 1e-9):
        return "kOptimal", value, bound
    x_fix = np.asarray(h.getSolution().col_value, dtype=float)
    # h still holds the fixed LP's solution; load it as the MIP's first incumbent
    h.setSolution(x_fix.size, np.arange(x_fix.size, dtype=np.int32), x_fix)
    return None


def _solve_persistent(model: Any, options: SolveOptions) -> SolveOutcome:
    from pyomo.common.timing import HierarchicalTimer
    from pyomo.contrib.solver.common.factory import SolverFactory

    opt = SolverFactory("highs")
    timer = HierarchicalTimer()
    kwargs: dict[str, Any] = {"load_solutions": False, "raise_exception_on_nonoptimal_result": False,
                              "rel_gap": float(options.mip_gap), "timer": timer}
    if options.time_limit_s is not None:
        kwargs["time_limit"] = float(options.time_limit_s)
    if options.threads is not None:
        kwargs["threads"] = int(options.threads)
    with capture_output(capture_fd=True):
        opt.solve(model, **kwargs)
    h = opt._solver_model  # the highspy.Highs instance Pyomo built (values are read from it in bulk)
    lp = h.getLp()
    integrality = np.asarray(lp.integrality_, dtype=np.int32) if len(lp.integrality_) else np.zeros(lp.num_col_)
    lower, upper = np.asarray(lp.col_lower_), np.asarray(lp.col_upper_)
    translate_s = timer.timers["set_instance"].total_time if "set_instance" in timer.timers else 0.0
    solve_s = timer.timers["optimize"].total_time if "optimize" in timer.timers else 0.0
    col = dict(opt._pyomo_var_to_solver_var_map)
    return _outcome(h, col, translate_s, solve_s, "persistent", integrality, lower, upper, lp.num_row_)


# --- decomposition: independent blocks of the constraint matrix solved as separate HiGHS models -----------------

@dataclass(eq=False)
class _Group:
    cols: np.ndarray  # column indices in the full model
    rows: np.ndarray
    h: highspy.Highs
    int_idx: np.ndarray  # local indices of the integer columns
    bound: float = 0.0  # LP relaxation optimum, later the MIP's dual bound
    objective: float = np.inf
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    state: str = "lp"  # lp | rounded | optimal | time_limit | ...
    lp_x: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the relaxation's solution
    duals: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the relaxation's row duals
    seconds: float = 0.0


def _sub_highs(lp_full: dict, cols: np.ndarray, rows: np.ndarray, options: SolveOptions) -> highspy.Highs:
    h = _new_highs()
    # continuous: the relaxation is solved first, integrality is set afterwards
    h.passModel(highs_lp(lp_full["A_csr"][rows][:, cols].tocsc(), lp_full["cost"][cols], lp_full["lower"][cols],
                         lp_full["upper"][cols], lp_full["row_lower"][rows], lp_full["row_upper"][rows]))
    _set_options(h, options)
    return h


def _split(lp_full: dict, integrality: np.ndarray, options: SolveOptions) -> list[_Group]:
    """One group per connected component holding integers, plus one LP group for all purely continuous ones
    (a single group too: it still gets the Lagrangian and neighbourhood steps)."""
    return [_Group(cols=cols, rows=rows, h=_sub_highs(lp_full, cols, rows, options),
                   int_idx=np.flatnonzero(integrality[cols]).astype(np.int32))
            for _has_int, cols, rows in integer_blocks(lp_full["A_csc"], integrality)]


def _status_name(h: highspy.Highs) -> str:
    status = h.getModelStatus()
    return status.name if hasattr(status, "name") else str(status).split(".")[-1]


def _workers(options: SolveOptions, jobs: int) -> int:
    """Blocks solved at once: one per core (at most 2 unless ``threads`` says otherwise), never more than jobs."""
    if options.verbose:
        return 1  # one log at a time
    want = options.threads or min(os.cpu_count() or 1, 2)
    return max(1, min(int(want), jobs))


def _each(groups: list[_Group], work: Callable[[_Group, int], None], workers: int) -> None:
    """Run ``work(group, position)`` on every group, ``workers`` at a time (HiGHS releases the GIL while solving)."""
    if workers <= 1 or len(groups) <= 1:
        for k, g in enumerate(groups):
            work(g, k)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for f in [pool.submit(work, g, k) for k, g in enumerate(groups)]:
            f.result()


def _solve_groups(groups: list[_Group], lp_full: dict, integrality: np.ndarray, options: SolveOptions,
                  col: dict[int, int], rounder: Rounder | None, translate_s: float, n_rows: int) -> SolveOutcome:
    """Relax-and-round per block, accept the blocks whose rounding fits the gap budget, solve the rest as MIPs
    (incumbent = the rounded schedule) with absolute gaps that add up to the requested relative gap."""
    t_start = time.perf_counter()
    verbose = options.verbose
    gap = float(options.mip_gap)
    deadline = None if options.time_limit_s is None else t_start + float(options.time_limit_s)
    n = len(integrality)
    x = np.zeros(n)
    lower, upper, cost = lp_full["lower"], lp_full["upper"], lp_full["cost"]
    kint = highspy.HighsVarType.kInteger
    # largest first, so a big block does not start last
    groups = sorted(groups, key=lambda g: -g.cols.size)
    workers = _workers(options, len(groups))
    capture = workers == 1

    def limit(g: _Group) -> None:
        if deadline is not None:
            g.h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 1e-9))

    # 1. LP relaxations (the continuous group is final after this)
    def relax(g: _Group, _k: int) -> None:
        limit(g)
        g.seconds += _run(g.h, verbose, capture)
        g.state = _status_name(g.h)
        if g.state in ("kOptimal", "kModelEmpty"):
            g.x = g.lp_x = np.asarray(g.h.getSolution().col_value, dtype=float)
            g.duals = np.asarray(g.h.getSolution().row_dual, dtype=float)
            g.bound = g.objective = float(np.dot(cost[g.cols], g.x))

    _each(groups, relax, workers)
    for g in groups:
        if g.state not in ("kOptimal", "kModelEmpty"):
            hint = _HINTS.get(_TERMINATION.get(g.state, "error"), "rerun with threads=1 and report the model status")
            raise SolveError(f"HiGHS returned no feasible schedule (model status {g.state} in the relaxation of an "
                             f"independent part of the model); {hint}")
        x[g.cols] = g.x
        g.state = "optimal" if g.int_idx.size == 0 else "lp"
    # 2. round every integer consistently (formulations know their own), fix, re-solve each block's LP
    target = _rounded(x, col, rounder)
    mip = [g for g in groups if g.int_idx.size]
    start = options.mip_start

    def try_fixed(g: _Group, values: np.ndarray, state: str) -> None:
        """Fix the block's integers at ``values`` (full numbering), re-solve its LP, keep it when better."""
        gi = g.cols[g.int_idx]
        fixed = np.clip(np.round(values[gi]), lower[gi], upper[gi])
        g.h.changeColsBounds(g.int_idx.size, g.int_idx, fixed, fixed)
        limit(g)
        g.seconds += _run(g.h, verbose, capture)
        if _status_name(g.h) == "kOptimal":
            sol = np.asarray(g.h.getSolution().col_value, dtype=float)
            obj = float(np.dot(cost[g.cols], sol))
            if obj < g.objective:
                g.x, g.objective, g.state = sol, obj, state
        g.h.changeColsBounds(g.int_idx.size, g.int_idx, lower[gi], upper[gi])

    def fix(g: _Group, _k: int) -> None:
        g.h.changeColsIntegrality(g.int_idx.size, g.int_idx, np.full(g.int_idx.size, kint))
        g.objective = np.inf
        if start:
            try_fixed(g, target, "rounded")

    _each(mip, fix, workers)
    for g in mip:
        log.debug("block %d: %d cols %d ints, relaxation %.4f, rounded %.4f (%.3f s)", id(g) % 997, g.cols.size,
                  g.int_idx.size, g.bound, g.objective, g.seconds)
    # 3. gap budget: sum(objective - bound) <= gap * |total objective|, whichever the total ends up being
    base = sum(g.bound for g in groups if g.int_idx.size == 0) + lp_full["offset"]
    lo = base + sum(g.bound for g in mip)

    def budget_now() -> float:
        hi = base + sum(g.objective for g in mip)
        return gap * min(abs(lo), abs(hi)) if np.isfinite(hi) and (lo >= 0) == (hi >= 0) else 0.0

    def fits() -> bool:  # accepting every block as it is: the exact test on the merged objective
        hi = base + sum(g.objective for g in mip)
        return bool(np.isfinite(hi)) and hi - lo <= gap * max(abs(hi), 1e-9)

    budget = budget_now()
    # 4. Lagrangian: devices alone at the relaxation's site prices give a stronger bound and another schedule
    coupling = lp_full.get("coupling")
    if start and coupling is not None and coupling.any() and not fits():
        def price(g: _Group, _k: int) -> None:
            if g.objective - g.bound <= gap * 1e-3 * max(abs(g.objective), 1e-9):
                return
            blk = Block(a_csr=lp_full["A_csr"][g.rows][:, g.cols], cost=cost[g.cols], lower=lower[g.cols],
                        upper=upper[g.cols], row_lower=lp_full["row_lower"][g.rows],
                        row_upper=lp_full["row_upper"][g.rows], integrality=integrality[g.cols],
                        coupling=coupling[g.rows])
            res = lagrangian(blk, g.duals, deadline)
            if res is None:
                return
            g.seconds += res.seconds
            before = g.objective, g.bound
            g.bound = max(g.bound, res.bound)
            values = np.zeros(n)
            values[g.cols] = res.x
            try_fixed(g, values, "lagrangian")
            log.debug("block %d: lagrangian bound %.4f -> %.4f, schedule %.4f -> %.4f (%d devices, %.3f s)",
                      id(g) % 997, before[1], res.bound, before[0], g.objective, res.subproblems, res.seconds)

        _each(mip, price, workers)
        lo = base + sum(g.bound for g in mip)
        budget = budget_now()
    # 5. where the rounding is not within the budget: a small MIP over the integers the relaxation left
    #    fractional, the others fixed at its values (relaxation-induced neighbourhood); usually closes the gap
    total = sum(g.objective - g.bound for g in mip)
    if start and not fits():
        far = [g for g in mip if g.objective - g.bound > 1e-9 * max(1.0, abs(g.bound))]
        rins_s = max(2.0, 2.0 * (time.perf_counter() - t_start))

        def neighbourhood(g: _Group, _k: int) -> None:
            v = g.lp_x[g.int_idx]
            keep = g.int_idx[np.abs(v - np.round(v)) < 1e-6]
            gi = g.cols[keep]
            fixed = np.clip(np.round(g.lp_x[keep]), lower[gi], upper[gi])
            g.h.changeColsBounds(keep.size, keep, fixed, fixed)
            share = budget * (g.objective - g.bound) / total if np.isfinite(total) and total > 0 else 0.0
            g.h.setOptionValue("mip_rel_gap", gap if share <= 0 else 0.0)
            g.h.setOptionValue("mip_abs_gap", max(share, 1e-6))
            g.h.setOptionValue("time_limit", rins_s if deadline is None
                               else max(min(rins_s, deadline - time.perf_counter()), 1e-9))
            if g.state in ("rounded", "lagrangian"):
                g.h.setSolution(g.x.size, np.arange(g.x.size, dtype=np.int32), g.x)
            g.seconds += _run(g.h, verbose, capture)
            if g.h.getInfo().primal_solution_status == 2:
                sol = np.asarray(g.h.getSolution().col_value, dtype=float)
                obj = float(np.dot(cost[g.cols], sol))
                if obj < g.objective:
                    g.x, g.objective, g.state = sol, obj, "neighbourhood"
            g.h.changeColsBounds(keep.size, keep, lower[gi], upper[gi])
            g.h.setOptionValue("mip_rel_gap", gap)
            g.h.setOptionValue("mip_abs_gap", 1e-6)

        _each(sorted(far, key=lambda g: g.bound - g.objective), neighbourhood, workers)
        for g in far:
            log.debug("block %d: neighbourhood %.4f (bound %.4f, %.3f s)", id(g) % 997, g.objective, g.bound,
                      g.seconds)
        budget = budget_now()
    log.debug("merged: bound %.4f, budget %.4f, objective %.4f", lo, budget, base + sum(g.objective for g in mip))
    todo = sorted(mip, key=lambda g: g.objective - g.bound)
    if fits():  # everything fits: the rounded schedule is the answer
        accepted, spent = len(todo), sum(g.objective - g.bound for g in todo)
    else:  # accept the closest blocks with half the budget, share the rest among the MIPs by their rounding gap
        accepted, spent = 0, 0.0
        while accepted < len(todo) and spent + todo[accepted].objective - todo[accepted].bound <= 0.5 * budget:
            spent += todo[accepted].objective - todo[accepted].bound
            accepted += 1
    rest = todo[accepted:]
    weights = np.array([g.objective - g.bound if np.isfinite(g.objective) else max(abs(g.bound), 1.0)
                        for g in rest])
    shares = max(budget - spent, 0.0) * weights / weights.sum() if rest and weights.sum() > 0 else weights * 0
    # 6. MIPs, hardest first (the others fit beside them)
    order = sorted(range(len(rest)), key=lambda k: -weights[k])

    # every block's (objective, bound) as known now; a running MIP stops once the merged gap fits the budget
    live = {id(g): (g.objective, g.bound) for g in mip}

    def branch(g: _Group, k: int) -> None:
        share = shares[order[k]]
        if budget > 0:
            def enough(event: Any) -> None:
                d = event.data_out
                live[id(g)] = (min(g.objective, d.mip_primal_bound), max(g.bound, d.mip_dual_bound))
                if sum(o - b for o, b in live.values()) <= budget:
                    event.data_in.user_interrupt = True

            g.h.cbMipInterrupt.subscribe(enough)
        if budget > 0:
            g.h.setOptionValue("mip_rel_gap", 0.0)
            g.h.setOptionValue("mip_abs_gap", float(share))
        # the time limit is for the whole run: every block may use what is left of it (blocks run side by side)
        g.h.setOptionValue("time_limit", np.inf if deadline is None else max(deadline - time.perf_counter(), 1e-9))
        if g.state in ("rounded", "lagrangian", "neighbourhood"):
            g.h.setSolution(g.x.size, np.arange(g.x.size, dtype=np.int32), g.x)
        g.seconds += _run(g.h, verbose, capture)
        name = _status_name(g.h)
        info = g.h.getInfo()
        if info.primal_solution_status == 2:
            sol = np.asarray(g.h.getSolution().col_value, dtype=float)
            obj = float(np.dot(cost[g.cols], sol))
            if obj <= g.objective:
                g.x, g.objective = sol, obj
            g.bound = max(g.bound, float(info.mip_dual_bound))
        live[id(g)] = (g.objective, g.bound)
        if name == "kInterrupt":  # stopped by the merged gap test above
            name = "kOptimal"
        g.state = _TERMINATION.get(name, "error") if np.isfinite(g.objective) else "no_solution:" + name
        log.debug("block %d: MIP %s objective %.4f bound %.4f share %.4f (%.3f s)", id(g) % 997, name, g.objective,
                  g.bound, share, g.seconds)

    _each([rest[k] for k in order], branch, workers)
    for g in rest:
        if g.state.startswith("no_solution:"):
            name = g.state.split(":", 1)[1]
            termination = _TERMINATION.get(name, "error")
            hint = _HINTS.get(termination, "rerun with threads=1 and report the model status")
            raise SolveError(f"HiGHS returned no feasible schedule (model status {name}, termination {termination}, "
                             f"in an independent part of the model); {hint}")
    for g in groups:
        x[g.cols] = g.x
    objective = base + sum(g.objective for g in mip)
    bound = base + sum(g.bound for g in mip)
    states = [g.state for g in mip]
    all_ok = all(s in _FINAL for s in states)
    is_int = integrality.astype(bool)
    binaries = int(np.sum(is_int & (lower >= 0) & (upper <= 1)))
    counts: dict[str, int] = {}
    for s in states:
        counts[s] = counts.get(s, 0) + 1
    slow = max(groups, key=lambda g: g.seconds)
    components = {"count": len(groups), "with_integers": len(mip), "states": counts, "workers": workers,
                  "slowest_s": round(slow.seconds, 4), "slowest_variables": int(slow.cols.size)}
    termination = "optimal" if all_ok else next(s for s in states if s not in _FINAL)
    method = "decomposed" if rest else next((s for s in ("neighbourhood", "lagrangian") if s in states), "lp_round")
    status = "kOptimal" if all_ok else next(_k for _k, v in _TERMINATION.items() if v == termination)
    return SolveOutcome(status=status, termination=termination, objective=objective, bound=bound,
                        mip_gap=relative_gap(objective, bound), variables=n, constraints=n_rows,
                        binaries=binaries, integers=int(is_int.sum()) - binaries, translate_s=translate_s,
                        solve_s=time.perf_counter() - t_start, backend="matrix",
                        method=method, _x=x, _col=col, components=components)


def _rounded(x: np.ndarray, col: dict, rounder) -> np.ndarray:
    """Integer values for a relaxed solution: formulations round their own integers consistently (e.g. cumulative
    energy), every other column goes to the nearest integer."""
    target = np.round(x)
    if rounder is not None:
        for component, vals in rounder(_reader(x, col)):
            for v, val in zip(component.values(), vals, strict=True):
                j = col.get(id(v))
                if j is not None:
                    target[j] = val
    return target
