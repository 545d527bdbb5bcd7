"""Solve a model given as matrices with HiGHS in memory and read values back as numpy arrays: the entry
``solve_model`` and the single-model paths.

Two in-memory paths (no LP files), selected by ``SolveOptions.backend``:

- ``matrix`` (default): the matrices go to ``highspy`` in one ``passModel`` call. A model with integers is solved
  block by block (:mod:`flexopt.solver.decomposed`) unless ``SolveOptions.decompose`` is off; otherwise as one
  model, with a relax-and-round start.
- ``persistent``: the same matrices as a Pyomo model (:func:`flexopt.solver.pyomo_model.to_pyomo`), solved through
  ``pyomo.contrib.solver`` 'highs' (Pyomo's persistent highspy interface): a second, independent translation of the
  same model, for cross-checks (slow on large models).

A solver that fails or stops without a feasible solution raises :class:`SolveError`; never a fallback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np

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
    silenced,
    status_name,
)
from flexopt.solver.matrix import ModelMatrix
from flexopt.solver.options import SolveOptions
from flexopt.solver.rounding import Rounder, round_target, rounded

# SolveError and SolveOutcome are what callers of solve_model catch and read
__all__ = ["SolveError", "SolveOutcome", "relative_gap", "solve_model"]


def solve_model(matrix: ModelMatrix, options: SolveOptions, rounder: Rounder | None = None) -> SolveOutcome:
    """Solve ``matrix`` as ``options`` say. ``rounder``: the formulations' own rounding of their integers (for
    relax-and-round)."""
    if options.backend not in ("matrix", "persistent"):
        raise ValueError(f"unknown backend {options.backend!r}; use 'matrix' or 'persistent'")
    t0 = time.perf_counter()
    if options.write_model is not None:
        matrix.write(options.write_model)
    if options.backend == "persistent":
        return _solve_persistent(matrix, options)
    if matrix.integrality.any() and options.decompose:
        blocks = split(matrix, options)
        return solve_decomposed(matrix, blocks, options, round_target(rounder), time.perf_counter() - t0)
    return _solve_single(matrix, options, rounder, t0)


def _solve_single(matrix: ModelMatrix, options: SolveOptions, rounder: Rounder | None, t0: float) -> SolveOutcome:
    """The whole model as one HiGHS model; with integers, a relax-and-round start first."""
    h = new_highs()
    matrix.load_into(h)
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
                                method="lp_round", _x=done.x)
    run(h, options.verbose)
    return _read_outcome(h, (binaries, integers), len(matrix.cost), matrix.n_rows, translate_s,
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
    target = rounded(x, rounder)
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


def _read_outcome(h: highspy.Highs, counts: tuple[int, int], variables: int, constraints: int,
                  translate_s: float, solve_s: float, backend: str, x: np.ndarray | None = None) -> SolveOutcome:
    """The finished model's schedule, objective, bound and gap; SolveError when it has no feasible schedule."""
    name = status_name(h)
    info = h.getInfo()
    if not (info.primal_solution_status == 2 or name == "kModelEmpty"):
        raise no_schedule(name)
    x = np.asarray(h.getSolution().col_value, dtype=float) if x is None else x
    objective = float(info.objective_function_value)
    binaries, integers = counts
    if binaries + integers:
        bound = float(info.mip_dual_bound)
        gap = relative_gap(objective, bound)
    else:
        bound, gap = objective, 0.0
    return SolveOutcome(status=name, termination=TERMINATION.get(name, "error"), objective=objective, bound=bound,
                        mip_gap=gap, variables=variables, constraints=constraints, binaries=binaries,
                        integers=integers, translate_s=translate_s, solve_s=solve_s, backend=backend, _x=x)


def _solve_persistent(matrix: ModelMatrix, options: SolveOptions) -> SolveOutcome:
    """The matrices as a Pyomo model, through Pyomo's persistent highspy interface (no decomposition, no
    relax-and-round); the solution is read back by column."""
    from pyomo.common.timing import HierarchicalTimer
    from pyomo.contrib.solver.common.factory import SolverFactory

    from flexopt.solver.pyomo_model import to_pyomo

    t0 = time.perf_counter()
    model = to_pyomo(matrix)
    built_s = time.perf_counter() - t0
    opt = SolverFactory("highs")
    timer = HierarchicalTimer()
    kwargs: dict[str, Any] = {"load_solutions": False, "raise_exception_on_nonoptimal_result": False,
                              "rel_gap": float(options.mip_gap), "timer": timer}
    if options.time_limit_s is not None:
        kwargs["time_limit"] = float(options.time_limit_s)
    if options.threads is not None:
        kwargs["threads"] = int(options.threads)
    with silenced():
        opt.solve(model, **kwargs)
    h = opt._solver_model  # the highspy.Highs instance Pyomo built (values are read from it in bulk)
    translate_s = built_s + (timer.timers["set_instance"].total_time if "set_instance" in timer.timers else 0.0)
    solve_s = timer.timers["optimize"].total_time if "optimize" in timer.timers else 0.0
    x = np.zeros(len(matrix.cost))
    if h.getInfo().primal_solution_status == 2:
        solver_x = np.asarray(h.getSolution().col_value, dtype=float)
        by_var = opt._pyomo_var_to_solver_var_map  # id(pyomo var) -> its HiGHS column
        for j, v in enumerate(model.x.values()):
            k = by_var.get(id(v))
            x[j] = solver_x[k] if k is not None else min(max(0.0, matrix.lower[j]), matrix.upper[j])
    return _read_outcome(h, matrix.integer_counts(), len(matrix.cost), matrix.n_rows, translate_s, solve_s,
                         "persistent", x=x)
