"""The HiGHS wrapper: a quiet model, the run options, a run with its output captured, status names and hints, and
what a solve returns (:class:`SolveOutcome`) or raises (:class:`SolveError`).

Every other solver module talks to ``highspy`` through these few functions, so the status vocabulary and the hints
a user sees are the same whichever path solved the model.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np

from flexopt.solver.options import SolveOptions

# HiGHS model status name -> the termination reported in kpis
TERMINATION = {
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


def no_schedule(status: str, where: str = "") -> SolveError:
    """The error for a model (or, ``where``, a part of it) that ended with ``status`` and no feasible schedule."""
    termination = TERMINATION.get(status, "error")
    hint = _HINTS.get(termination, "rerun with threads=1 and report the model status")
    place = f", {where}" if where else ""
    return SolveError(f"HiGHS returned no feasible schedule (model status {status}, termination {termination}"
                      f"{place}); {hint}")


def relative_gap(objective: float, bound: float) -> float:
    """(objective - bound) / |objective|, never negative: a bound a rounding error above the objective (-2e-16)
    means the schedule is optimal, not better than optimal."""
    if not np.isfinite(objective):
        return float("inf")
    return max(0.0, (objective - bound) / max(abs(objective), 1e-9))


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

    def values(self, family: Any) -> np.ndarray:
        """Solved values of a variable family (its ``cols``), in the order of its elements."""
        return solved_values(family, self._x)


def solved_values(family: Any, x: np.ndarray) -> np.ndarray:
    """The values of a variable family (anything with ``cols``, the columns of its elements) in the solution ``x``."""
    return x[family.cols] if x.size else np.zeros(len(family.cols))


@contextmanager
def silenced() -> Iterator[None]:
    """Standard output and error of this process (the file descriptors: HiGHS writes from C++) go to /dev/null
    for the duration; process-wide, so never around work in other threads. (Pyomo's ``capture_output`` did this
    before, and importing it cost a second of scipy.stats imports.)"""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def new_highs() -> highspy.Highs:
    """A HiGHS instance that prints nothing (its banner goes to the file descriptor, hence the capture)."""
    with silenced():
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
    return h


def set_options(h: highspy.Highs, options: SolveOptions) -> None:
    """The run's gap, time limit, threads and log switch, then the user's own HiGHS options (they win)."""
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


def run(h: highspy.Highs, verbose: bool = False, capture: bool = True) -> float:
    """Run HiGHS and return the seconds it took. Output is captured unless ``verbose``, and never in worker
    threads (``capture=False``): redirecting file descriptors is process-wide."""
    t0 = time.perf_counter()
    if verbose or not capture:
        h.run()
        return time.perf_counter() - t0
    with silenced():
        h.run()
    return time.perf_counter() - t0


def status_name(h: highspy.Highs) -> str:
    """The model status as HiGHS names it (``kOptimal``, ``kTimeLimit``, ...)."""
    status = h.getModelStatus()
    return status.name if hasattr(status, "name") else str(status).split(".")[-1]


def has_solution(h: highspy.Highs) -> bool:
    """HiGHS holds a feasible primal solution (an optimum, or an incumbent at a limit)."""
    return h.getInfo().primal_solution_status == 2
