"""Solve a Pyomo model with HiGHS in memory and read values back as numpy arrays.

Two in-memory paths (no LP files), selected by ``SolveOptions.backend``:

- ``matrix`` (default): Pyomo's own ``LinearStandardFormCompiler`` turns the model into sparse
  matrices, which go to ``highspy`` in one ``passModel`` call. Measured 3-4x faster than the
  persistent interface's per-constraint translation (docs/benchmarks.md).
- ``persistent``: ``pyomo.contrib.solver`` 'highs' (Pyomo's persistent highspy interface).

A solver that fails or stops without a feasible solution raises :class:`SolveError`; never a fallback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
from pyomo.common.tee import capture_output

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


def _set_options(h: highspy.Highs, options: Any) -> None:
    if getattr(options, "verbose", False):
        h.setOptionValue("output_flag", True)
        h.setOptionValue("log_to_console", True)
    h.setOptionValue("mip_rel_gap", float(options.mip_gap))
    if options.time_limit_s is not None:
        h.setOptionValue("time_limit", float(options.time_limit_s))
    if options.threads is not None:
        h.setOptionValue("threads", int(options.threads))
    for key, value in (getattr(options, "highs_options", None) or {}).items():
        h.setOptionValue(key, value)


def _run(h: highspy.Highs, verbose: bool = False) -> float:
    t0 = time.perf_counter()
    if verbose:
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
                            mip_gap=(objective - bound) / max(abs(objective), 1e-9), variables=len(lower),
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
        bound, gap = float(info.mip_dual_bound), float(info.mip_gap)
    else:
        bound, gap = objective, 0.0
    return SolveOutcome(status=name, termination=termination, objective=objective, bound=bound, mip_gap=gap,
                        variables=len(lower), constraints=n_rows, binaries=binaries,
                        integers=int(is_int.sum()) - binaries, translate_s=translate_s, solve_s=solve_s,
                        backend=backend, _x=x, _col=col)


# Given a reader of the LP relaxation's values, the rounded values of integer Var components.
Rounder = Callable[[Callable[[Any], np.ndarray]], list[tuple[Any, np.ndarray]]]


def solve_model(model: Any, options: Any, rounder: Rounder | None = None) -> SolveOutcome:
    if options.backend == "persistent":
        return _solve_persistent(model, options)
    if options.backend != "matrix":
        raise ValueError(f"unknown backend {options.backend!r}; use 'matrix' or 'persistent'")
    return _solve_matrix(model, options, rounder)


def _reader(x: np.ndarray, col: dict[int, int]) -> Callable[[Any], np.ndarray]:
    return SolveOutcome("", "", 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0, 0.0, "", _x=x, _col=col).values


def _solve_matrix(model: Any, options: Any, rounder: Rounder | None = None) -> SolveOutcome:
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
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = info.c.toarray().ravel() if info.c.shape[0] else np.zeros(n)
    lp.offset_ = float(info.c_offset[0]) if len(info.c_offset) else 0.0
    lp.col_lower_, lp.col_upper_ = lower, upper
    lp.row_lower_ = np.where(kind == 1, -inf, rhs)
    lp.row_upper_ = np.where(kind == -1, inf, rhs)
    a = info.A.tocsc()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data.astype(float)
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, m
    if integrality.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if k else highspy.HighsVarType.kContinuous
                           for k in integrality]
    h = _new_highs()
    h.passModel(lp)
    _set_options(h, options)
    col = {id(v): j for j, v in enumerate(cols)}
    translate_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    if integrality.any() and getattr(options, "mip_start", True):
        done = _round_and_fix(h, integrality, lower, upper, float(options.mip_gap), options, col, rounder)
        if done is not None:
            return _outcome(h, col, translate_s, time.perf_counter() - t1, "matrix", integrality, lower, upper, m,
                            override=done)
    _run(h, getattr(options, "verbose", False))
    return _outcome(h, col, translate_s, time.perf_counter() - t1, "matrix", integrality, lower, upper, m)


def _round_and_fix(h: highspy.Highs, integrality: np.ndarray, lower: np.ndarray, upper: np.ndarray, gap: float,
                   options: Any, col: dict[int, int], rounder: Rounder | None) -> tuple[str, float, float] | None:
    """Relax-and-round start: solve the LP relaxation (its optimum bounds the MIP), round the integers, fix them
    and re-solve the LP. Within the gap, that schedule is the answer; otherwise it seeds the MIP as incumbent.

    Returns (status, objective, bound) when the rounded schedule is accepted, else None (the MIP then runs).
    """
    verbose = getattr(options, "verbose", False)
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
    target = np.round(x)
    if rounder is not None:
        # formulations round their own integers consistently (e.g. cumulative energy), others go to the nearest
        for component, vals in rounder(_reader(x, col)):
            for v, val in zip(component.values(), vals, strict=True):
                j = col.get(id(v))
                if j is not None:
                    target[j] = val
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


def _solve_persistent(model: Any, options: Any) -> SolveOutcome:
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
