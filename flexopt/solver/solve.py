"""Solve a Pyomo model with HiGHS in memory and read values back as numpy arrays: the entry ``solve_model`` and the
single-model paths.

Two in-memory paths (no LP files), selected by ``SolveOptions.backend``:

- ``matrix`` (default): Pyomo's own ``LinearStandardFormCompiler`` turns the model into sparse
  matrices, which go to ``highspy`` in one ``passModel`` call. Measured 3-4x faster than the
  persistent interface's per-constraint translation (docs/benchmarks.md). A model with integers is solved block
  by block (:mod:`flexopt.solver.decomposed`) unless ``SolveOptions.decompose`` is off; otherwise as one model,
  with a relax-and-round start.
- ``persistent``: ``pyomo.contrib.solver`` 'highs' (Pyomo's persistent highspy interface).

A solver that fails or stops without a feasible solution raises :class:`SolveError`; never a fallback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
from pyomo.common.tee import capture_output

from flexopt.solver.decomposed import solve_decomposed, split
from flexopt.solver.highs import (
    TERMINATION,
    SolveError,
    SolveOutcome,
    new_highs,
    no_schedule,
    relative_gap,
    run,
    set_options,
    status_name,
)
from flexopt.solver.matrix import ModelMatrix, compile_model, integer_counts
from flexopt.solver.options import SolveOptions
from flexopt.solver.rounding import Rounder, round_target, rounded

# SolveError and SolveOutcome are what callers of solve_model catch and read
__all__ = ["SolveError", "SolveOutcome", "relative_gap", "solve_model"]


def solve_model(model: Any, options: SolveOptions, rounder: Rounder | None = None,
                coupling: tuple[Any, ...] = ()) -> SolveOutcome:
    """Solve ``model`` as ``options`` say. ``rounder``: the formulations' own rounding of their integers (for
    relax-and-round); ``coupling``: constraint components that join devices (site balance; the Lagrangian step
    prices them)."""
    if options.backend == "persistent":
        return _solve_persistent(model, options)
    if options.backend != "matrix":
        raise ValueError(f"unknown backend {options.backend!r}; use 'matrix' or 'persistent'")
    t0 = time.perf_counter()
    matrix = compile_model(model, coupling, names=options.write_model is not None)
    if options.write_model is not None:
        matrix.write(options.write_model)
    if matrix.integrality.any() and options.decompose:
        blocks = split(matrix, options)
        return solve_decomposed(matrix, blocks, options, round_target(matrix.col, rounder), time.perf_counter() - t0)
    return _solve_single(matrix, options, rounder, t0)


def _solve_single(matrix: ModelMatrix, options: SolveOptions, rounder: Rounder | None, t0: float) -> SolveOutcome:
    """The whole model as one HiGHS model; with integers, a relax-and-round start first."""
    h = new_highs()
    h.passModel(matrix.to_highs())
    set_options(h, options)
    translate_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    binaries, integers = matrix.integer_counts()
    if matrix.integrality.any() and options.mip_start:
        done = _round_and_fix(h, matrix, options, rounder)
        if done is not None:
            return SolveOutcome(status="kOptimal", termination="optimal", objective=done.objective, bound=done.bound,
                                mip_gap=relative_gap(done.objective, done.bound), variables=len(matrix.cost),
                                constraints=matrix.n_rows, binaries=binaries, integers=integers,
                                translate_s=translate_s, solve_s=time.perf_counter() - t1, backend="matrix",
                                method="lp_round", _x=done.x, _col=matrix.col)
    run(h, options.verbose)
    return _read_outcome(h, matrix.col, (binaries, integers), len(matrix.cost), matrix.n_rows, translate_s,
                         time.perf_counter() - t1, "matrix")


@dataclass
class _Rounded:
    """A rounded schedule within the gap of the relaxation's bound."""

    objective: float
    bound: float
    x: np.ndarray


def _round_and_fix(h: highspy.Highs, matrix: ModelMatrix, options: SolveOptions,
                   rounder: Rounder | None) -> _Rounded | None:
    """Relax-and-round start: solve the LP relaxation (its optimum bounds the MIP), round the integers, fix them
    and re-solve the LP. Within the gap, that schedule is the answer; otherwise it seeds the MIP as incumbent.

    Returns the schedule when it is accepted, else None (the MIP then runs)."""
    verbose = options.verbose
    lower, upper = matrix.lower, matrix.upper
    idx = np.flatnonzero(matrix.integrality).astype(np.int32)
    cont = np.full(idx.size, highspy.HighsVarType.kContinuous)
    ints = np.full(idx.size, highspy.HighsVarType.kInteger)
    h.changeColsIntegrality(idx.size, idx, cont)
    run(h, verbose)
    relaxed_ok = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    h.changeColsIntegrality(idx.size, idx, ints)
    if not relaxed_ok:
        return None
    bound = float(h.getInfo().objective_function_value)
    x = np.asarray(h.getSolution().col_value, dtype=float)
    target = rounded(x, matrix.col, rounder)
    fixed = np.clip(target[idx], lower[idx], upper[idx])
    h.changeColsBounds(idx.size, idx, fixed, fixed)
    run(h, verbose)
    feasible = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    value = float(h.getInfo().objective_function_value) if feasible else np.inf
    x_fix = np.asarray(h.getSolution().col_value, dtype=float)
    h.changeColsBounds(idx.size, idx, lower[idx], upper[idx])
    if not feasible:
        return None
    if value - bound <= float(options.mip_gap) * max(abs(value), 1e-9):
        return _Rounded(value, bound, x_fix)
    # the fixed LP's solution is the MIP's first incumbent
    h.setSolution(x_fix.size, np.arange(x_fix.size, dtype=np.int32), x_fix)
    return None


def _read_outcome(h: highspy.Highs, col: dict[int, int], counts: tuple[int, int], variables: int, constraints: int,
                  translate_s: float, solve_s: float, backend: str) -> SolveOutcome:
    """The finished model's schedule, objective, bound and gap; SolveError when it has no feasible schedule."""
    name = status_name(h)
    info = h.getInfo()
    if not (info.primal_solution_status == 2 or name == "kModelEmpty"):
        raise no_schedule(name)
    x = np.asarray(h.getSolution().col_value, dtype=float)
    objective = float(info.objective_function_value)
    binaries, integers = counts
    if binaries + integers:
        bound = float(info.mip_dual_bound)
        gap = relative_gap(objective, bound)
    else:
        bound, gap = objective, 0.0
    return SolveOutcome(status=name, termination=TERMINATION.get(name, "error"), objective=objective, bound=bound,
                        mip_gap=gap, variables=variables, constraints=constraints, binaries=binaries,
                        integers=integers, translate_s=translate_s, solve_s=solve_s, backend=backend, _x=x, _col=col)


def _solve_persistent(model: Any, options: SolveOptions) -> SolveOutcome:
    """The model through Pyomo's persistent highspy interface (no decomposition, no relax-and-round)."""
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
    return _read_outcome(h, col, integer_counts(integrality, lower, upper), len(lower), lp.num_row_, translate_s,
                         solve_s, "persistent")
