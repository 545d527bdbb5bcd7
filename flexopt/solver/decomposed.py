"""Decomposed solve: the model's independent blocks as separate HiGHS models, in named stages.

A congestion point with its sites, or a site without one, shares no row with the rest of the model, so each is a
block of the constraint matrix that can be solved alone; blocks run two at a time in threads (HiGHS releases the
GIL). The requested relative gap is kept for the *merged* schedule: the blocks share one absolute gap budget.

Stages, in the order ``solve_decomposed`` runs them:

1. :func:`split` - one block per connected component holding integers, one LP for all continuous ones.
2. :func:`relax` - each block's LP relaxation: its bound, the point to round, the prices of its site rows.
3. :func:`round_and_fix` - integers rounded and fixed, the block's LP re-solved: a first schedule.
4. :func:`price` - the Lagrangian bound and the devices' own schedules at the relaxation's prices.
5. :func:`neighbourhood` - a small MIP over the integers the relaxation left fractional.
6. :func:`plan_budget` - accept the blocks that fit the gap budget, share what is left among the others.
7. :func:`branch` - branch-and-bound for the others, stopped as soon as the merged gap fits.
8. :func:`merge` - one schedule, bound and gap for the whole model.

Stages 3-5 run with ``SolveOptions.mip_start``; 4 and 5 only while the merged schedule is not within the gap, and
block by block, biggest gap first: a block starts only while the merged schedule still does not fit.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import highspy
import numpy as np

from flexopt.solver.highs import (
    TERMINATION,
    SolveOutcome,
    has_solution,
    new_highs,
    no_schedule,
    relative_gap,
    run,
    set_options,
    status_name,
)
from flexopt.solver.lagrangian import lagrangian
from flexopt.solver.matrix import ModelMatrix, integer_blocks
from flexopt.solver.options import SolveOptions
from flexopt.solver.rounding import RoundTarget

log = logging.getLogger(__name__)

# block states whose schedule is accepted as it is (within the gap budget)
FINAL = ("optimal", "rounded", "lagrangian", "neighbourhood")

T = TypeVar("T")


@dataclass(eq=False)
class MatrixBlock:
    """One independent block of the constraint matrix, solved as its own HiGHS model.

    ``objective`` and ``bound`` are the block's best schedule and best lower bound so far (cost only, no offset);
    ``state`` says which stage found the schedule (``rounded``, ``lagrangian``, ``neighbourhood``) or how its MIP
    ended (``optimal``, ``time_limit``, ...)."""

    cols: np.ndarray = field(repr=False)  # columns in the full model
    rows: np.ndarray = field(repr=False)  # rows in the full model
    model: ModelMatrix = field(repr=False)  # the block in its own numbering
    h: highspy.Highs = field(repr=False)
    int_idx: np.ndarray = field(repr=False)  # own indices of the integer columns
    label: int = 0  # position, largest block first (logs)
    bound: float = 0.0  # LP relaxation optimum, later the Lagrangian or the MIP's dual bound
    objective: float = np.inf
    x: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    state: str = "lp"
    status: str = ""  # HiGHS model status of the last relaxation or MIP
    lp_x: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # the relaxation's solution
    duals: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # the relaxation's row duals
    seconds: float = 0.0

    @property
    def gap(self) -> float:
        """Absolute gap: what the block's schedule may cost above the best it could be."""
        return self.objective - self.bound

    def solution(self) -> tuple[np.ndarray, float]:
        """The HiGHS model's current solution and its cost."""
        x = np.asarray(self.h.getSolution().col_value, dtype=float)
        return x, float(np.dot(self.model.cost, x))

    def start_from_schedule(self) -> None:
        """Give HiGHS the block's schedule as its first incumbent, when a stage found one."""
        if self.state in ("rounded", "lagrangian", "neighbourhood"):
            self.h.setSolution(self.x.size, np.arange(self.x.size, dtype=np.int32), self.x)


@dataclass(eq=False)
class Decomposition:
    """What the stages share: the full model, the options, the blocks (largest first), when the solve started and
    its deadline, and how many blocks are solved at once."""

    model: ModelMatrix
    options: SolveOptions
    blocks: list[MatrixBlock]
    started: float
    deadline: float | None
    workers: int

    @classmethod
    def start(cls, model: ModelMatrix, options: SolveOptions, blocks: list[MatrixBlock]) -> Decomposition:
        """The clock starts now: ``time_limit_s`` is for every stage together."""
        now = time.perf_counter()
        deadline = None if options.time_limit_s is None else now + float(options.time_limit_s)
        return cls(model, options, blocks, now, deadline, _workers(options, len(blocks)))

    @property
    def mip_gap(self) -> float:
        """The requested relative gap (of the merged schedule)."""
        return float(self.options.mip_gap)

    @property
    def mips(self) -> list[MatrixBlock]:
        """The blocks with integers (the others are final after the relaxation)."""
        return [b for b in self.blocks if b.int_idx.size]

    @property
    def coupled(self) -> bool:
        """The model has rows that join devices (the Lagrangian step has something to price)."""
        return self.model.coupling is not None and bool(self.model.coupling.any())

    @property
    def base(self) -> float:
        """The continuous blocks' optimum plus the objective's constant."""
        return sum(b.bound for b in self.blocks if b.int_idx.size == 0) + self.model.offset

    def bound(self) -> float:
        """The merged lower bound: the sum of the blocks' bounds."""
        return self.base + sum(b.bound for b in self.mips)

    def objective(self) -> float:
        """The merged schedule's objective (inf while a block has none)."""
        return self.base + sum(b.objective for b in self.mips)

    def budget(self) -> float:
        """The absolute gap the blocks may leave together, ``mip_gap * min(|bound|, |objective|)``: within it, the
        merged relative gap is within ``mip_gap`` whichever the total ends up being (0 without a schedule, or when
        bound and objective differ in sign)."""
        lo, hi = self.bound(), self.objective()
        return self.mip_gap * min(abs(lo), abs(hi)) if np.isfinite(hi) and (lo >= 0) == (hi >= 0) else 0.0

    def fits(self) -> bool:
        """Every block accepted as it is would meet ``mip_gap``: the exact test on the merged objective."""
        lo, hi = self.bound(), self.objective()
        return bool(np.isfinite(hi)) and hi - lo <= self.mip_gap * max(abs(hi), 1e-9)

    def limit(self, h: highspy.Highs, cap: float | None = None) -> None:
        """Set the run's time limit: what is left until the deadline, at most ``cap`` (None: no cap of its own,
        and without a deadline the option is left as it is)."""
        if self.deadline is None:
            if cap is not None:
                h.setOptionValue("time_limit", cap)
            return
        left = self.deadline - time.perf_counter()
        h.setOptionValue("time_limit", max(left if cap is None else min(cap, left), 1e-9))

    @property
    def capture(self) -> bool:
        """HiGHS output is captured only without worker threads (the capture is process-wide)."""
        return self.workers == 1

    def run_block(self, block: MatrixBlock) -> None:
        """Run the block's HiGHS model and count its seconds."""
        block.seconds += run(block.h, self.options.verbose, self.capture)

    def each(self, items: Sequence[T], work: Callable[[T], None]) -> None:
        """``work(item)`` for every item, ``workers`` at a time, in the order given (the first start first)."""
        if self.workers <= 1 or len(items) <= 1:
            for item in items:
                work(item)
            return
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for f in [pool.submit(work, item) for item in items]:
                f.result()


def _workers(options: SolveOptions, jobs: int) -> int:
    """Blocks solved at once: one per core (at most 2 unless ``threads`` says otherwise), never more than jobs."""
    if options.verbose:
        return 1  # one log at a time
    want = options.threads or min(os.cpu_count() or 1, 2)
    return max(1, min(int(want), jobs))


def solve_decomposed(model: ModelMatrix, blocks: list[MatrixBlock], options: SolveOptions, target: RoundTarget,
                     translate_s: float) -> SolveOutcome:
    """The stages in order: each later one runs only while the merged schedule is not within ``mip_gap``."""
    d = Decomposition.start(model, options, blocks)
    relax(d)
    if options.mip_start:
        round_and_fix(d, target)
        if d.coupled and not d.fits():
            price(d)
        if not d.fits():
            neighbourhood(d)
    log.debug("merged: bound %.4f, budget %.4f, objective %.4f", d.bound(), d.budget(), d.objective())
    plan = plan_budget(d)
    branch(d, plan)
    return merge(d, plan, translate_s)


def split(model: ModelMatrix, options: SolveOptions) -> list[MatrixBlock]:
    """Stage 1. One block per connected component of the constraint matrix that holds integers, plus one for all
    purely continuous components together (an LP); largest first, so that a big block does not start last.

    Each is its own HiGHS model, loaded as its LP relaxation: the relaxation is solved first (:func:`relax`)."""
    blocks = []
    for _has_int, cols, rows in integer_blocks(model.a_csc, model.integrality):
        part = model.part(cols, rows, closed=True)
        h = new_highs()
        part.load_into(h, integers=False)
        set_options(h, options)
        blocks.append(MatrixBlock(cols=cols, rows=rows, model=part, h=h,
                                  int_idx=np.flatnonzero(part.integrality).astype(np.int32)))
    blocks.sort(key=lambda b: -b.cols.size)
    for k, b in enumerate(blocks):
        b.label = k
    return blocks


def relax(d: Decomposition) -> None:
    """Stage 2. Every block's LP relaxation: its optimum is the block's bound, its solution the point to round and
    its row duals the prices of the Lagrangian step. The continuous block is final here; the others become MIPs
    again, without a schedule yet.

    The relaxations run without presolve unless ``highs_options`` sets it: on these blocks it removes little and
    costs a fifth of the LP's time (fleet 1000: 3.6 s -> 2.7 s for the 25 blocks on one core).

    A relaxation without an optimum raises :class:`SolveError` (the block then has no schedule either)."""
    kint = highspy.HighsVarType.kInteger
    own_presolve = "presolve" in d.options.highs_options

    def one(b: MatrixBlock) -> None:
        d.limit(b.h)
        if not own_presolve:
            b.h.setOptionValue("presolve", "off")
        d.run_block(b)
        if not own_presolve:
            b.h.setOptionValue("presolve", "choose")  # HiGHS' default, for the MIPs
        b.status = status_name(b.h)
        if b.status in ("kOptimal", "kModelEmpty"):
            b.x = b.lp_x = np.asarray(b.h.getSolution().col_value, dtype=float)
            b.duals = np.asarray(b.h.getSolution().row_dual, dtype=float)
            b.bound = b.objective = float(np.dot(b.model.cost, b.x))
        if b.int_idx.size:
            b.h.changeColsIntegrality(b.int_idx.size, b.int_idx, np.full(b.int_idx.size, kint))

    d.each(d.blocks, one)
    for b in d.blocks:
        if b.status not in ("kOptimal", "kModelEmpty"):
            raise no_schedule(b.status, "in the relaxation of an independent part of the model")
        if b.int_idx.size:
            b.state, b.objective = "lp", np.inf
        else:
            b.state = "optimal"


def round_and_fix(d: Decomposition, target: RoundTarget) -> None:
    """Stage 3, relax-and-round. Round every integer of the relaxed solution at once (the formulations round their
    own consistently), fix them in each block and re-solve its LP: a schedule close to the bound, often within it,
    and otherwise the later stages' starting point."""
    x = np.zeros(len(d.model.cost))
    for b in d.blocks:
        x[b.cols] = b.lp_x
    values = target(x)
    d.each(d.mips, lambda b: _fix_and_resolve(d, b, values[b.cols], "rounded"))
    for b in d.mips:
        log.debug("block %d: %d cols %d ints, relaxation %.4f, rounded %.4f (%.3f s)", b.label, b.cols.size,
                  b.int_idx.size, b.bound, b.objective, b.seconds)


def _fix_and_resolve(d: Decomposition, b: MatrixBlock, values: np.ndarray, state: str) -> None:
    """Fix the block's integers at ``values`` (its own numbering, rounded and clipped to their bounds), re-solve
    its LP and keep that schedule when it is cheaper than the block's best.

    The fixed columns are made continuous for the re-solve: HiGHS then runs the simplex from the basis it has
    (only bounds changed) instead of a MIP whose presolve removes them, a third of the time."""
    idx = b.int_idx
    lower, upper = b.model.lower[idx], b.model.upper[idx]
    fixed = np.clip(np.round(values[idx]), lower, upper)
    b.h.changeColsBounds(idx.size, idx, fixed, fixed)
    b.h.changeColsIntegrality(idx.size, idx, np.full(idx.size, highspy.HighsVarType.kContinuous))
    d.limit(b.h)
    d.run_block(b)
    if status_name(b.h) == "kOptimal":
        x, cost = b.solution()
        if cost < b.objective:
            b.x, b.objective, b.state = x, cost, state
    b.h.changeColsIntegrality(idx.size, idx, np.full(idx.size, highspy.HighsVarType.kInteger))
    b.h.changeColsBounds(idx.size, idx, lower, upper)


def price(d: Decomposition) -> None:
    """Stage 4, the Lagrangian step (:mod:`flexopt.solver.lagrangian`). With the site balance rows priced at the
    relaxation's duals, each block falls apart into one small problem per device: the sum of their optima is a
    bound at least as strong as the LP's, and their integers, fixed in the block, give another schedule.

    Blocks go biggest gap first, and a block starts only while the merged schedule is not within the gap: once
    the bounds raised so far make it fit, the rest keep their relaxation's bound (it stays valid). Skipped also for
    a block already within a thousandth of the gap of its bound, and so far for a block whose rounding gave no
    schedule (its infinite gap passes the same test against an infinite tolerance)."""
    def one(b: MatrixBlock) -> None:
        if d.fits() or b.gap <= d.mip_gap * 1e-3 * max(abs(b.objective), 1e-9):
            return
        res = lagrangian(b.model, b.duals, d.deadline)
        if res is None:
            return
        b.seconds += res.seconds
        before = b.objective, b.bound
        b.bound = max(b.bound, res.bound)
        _fix_and_resolve(d, b, res.x, "lagrangian")
        log.debug("block %d: lagrangian bound %.4f -> %.4f, schedule %.4f -> %.4f (%d devices, %d MIPs, %.3f s)",
                  b.label, before[1], res.bound, before[0], b.objective, res.subproblems, res.mips, res.seconds)

    d.each(_biggest_gap_first(d.mips), one)


def _biggest_gap_first(blocks: list[MatrixBlock]) -> list[MatrixBlock]:
    """The blocks by their gap, biggest first (a block without a schedule first of all)."""
    return sorted(blocks, key=lambda b: -b.gap)


def neighbourhood(d: Decomposition) -> None:
    """Stage 5, relaxation-induced neighbourhood. For every block off its bound, a MIP in which the integers the
    relaxation left integral stay fixed at its values and only the fractional ones are free: small, and it usually
    finds the schedule a full MIP would. Each block aims at its share of the budget (by its gap) and gets
    max(2 s, twice the solve time so far); biggest gap first, and a block starts only while the merged schedule is
    not within the gap."""
    budget = d.budget()
    total = sum(b.gap for b in d.mips)
    far = [b for b in d.mips if b.gap > 1e-9 * max(1.0, abs(b.bound))]
    cap = max(2.0, 2.0 * (time.perf_counter() - d.started))

    def one(b: MatrixBlock) -> None:
        if d.fits():
            return
        v = b.lp_x[b.int_idx]
        keep = b.int_idx[np.abs(v - np.round(v)) < 1e-6]
        lower, upper = b.model.lower[keep], b.model.upper[keep]
        fixed = np.clip(np.round(b.lp_x[keep]), lower, upper)
        b.h.changeColsBounds(keep.size, keep, fixed, fixed)
        share = budget * b.gap / total if np.isfinite(total) and total > 0 else 0.0
        b.h.setOptionValue("mip_rel_gap", d.mip_gap if share <= 0 else 0.0)
        b.h.setOptionValue("mip_abs_gap", max(share, 1e-6))
        d.limit(b.h, cap)
        b.start_from_schedule()
        d.run_block(b)
        if has_solution(b.h):
            x, cost = b.solution()
            if cost < b.objective:
                b.x, b.objective, b.state = x, cost, "neighbourhood"
        b.h.changeColsBounds(keep.size, keep, lower, upper)
        b.h.setOptionValue("mip_rel_gap", d.mip_gap)
        b.h.setOptionValue("mip_abs_gap", 1e-6)

    d.each(_biggest_gap_first(far), one)
    for b in far:
        log.debug("block %d: neighbourhood %.4f (bound %.4f, %.3f s)", b.label, b.objective, b.bound, b.seconds)


@dataclass
class BudgetPlan:
    """How the merged gap budget is spent: blocks accepted as they are, and MIPs with their absolute gap shares."""

    budget: float  # the absolute gap all blocks together may leave
    accepted: list[MatrixBlock]
    branch: list[tuple[MatrixBlock, float]]  # hardest first, each with its share of the budget


def plan_budget(d: Decomposition) -> BudgetPlan:
    """Stage 6. When every block fits, all are accepted. Otherwise the blocks closest to their bound are accepted
    with up to half of the budget, and the rest of it is shared among the others by their gap (a block without a
    schedule weighs its bound), so that the accepted gaps plus the shares add up to the budget."""
    budget = d.budget()
    todo = sorted(d.mips, key=lambda b: b.gap)
    if d.fits():
        accepted, spent = len(todo), sum(b.gap for b in todo)
    else:
        accepted, spent = 0, 0.0
        while accepted < len(todo) and spent + todo[accepted].gap <= 0.5 * budget:
            spent += todo[accepted].gap
            accepted += 1
    rest = todo[accepted:]
    weights = np.array([b.gap if np.isfinite(b.objective) else max(abs(b.bound), 1.0) for b in rest])
    shares = max(budget - spent, 0.0) * weights / weights.sum() if rest and weights.sum() > 0 else weights * 0
    order = sorted(range(len(rest)), key=lambda k: -weights[k])
    return BudgetPlan(budget, todo[:accepted], [(rest[k], float(shares[k])) for k in order])


class MergedGap:
    """Every integer block's (objective, bound) as known now. Running MIPs update theirs from HiGHS' interrupt
    callback, so a MIP can stop as soon as the blocks *together* fit the budget, whatever its own share: the slack
    the other blocks left pays for its gap."""

    def __init__(self, blocks: list[MatrixBlock]) -> None:
        self._now = {id(b): (b.objective, b.bound) for b in blocks}

    def update(self, block: MatrixBlock, objective: float, bound: float) -> None:
        self._now[id(block)] = (objective, bound)

    def total(self) -> float:
        """The blocks' absolute gaps added up."""
        return sum(o - b for o, b in self._now.values())


def branch(d: Decomposition, plan: BudgetPlan) -> None:
    """Stage 7. Branch-and-bound for the blocks not accepted, hardest first, each from its best schedule with its
    share of the budget as absolute gap, and interrupted as soon as the merged gap fits (:class:`MergedGap`). The
    time limit is the whole run's: each MIP may use what is left of it.

    A block that ends without any schedule raises :class:`SolveError` with its status and a hint."""
    gaps = MergedGap(d.mips)
    d.each(plan.branch, lambda item: _branch_one(d, item[0], item[1], plan.budget, gaps))
    for b, _share in plan.branch:
        if b.state == "no_solution":
            raise no_schedule(b.status, "in an independent part of the model")


def _branch_one(d: Decomposition, b: MatrixBlock, share: float, budget: float, gaps: MergedGap) -> None:
    """One block's MIP (see :func:`branch`)."""
    if budget > 0:
        def enough(event: Any) -> None:
            data = event.data_out
            gaps.update(b, min(b.objective, data.mip_primal_bound), max(b.bound, data.mip_dual_bound))
            if gaps.total() <= budget:
                event.data_in.user_interrupt = True

        b.h.cbMipInterrupt.subscribe(enough)
        b.h.setOptionValue("mip_rel_gap", 0.0)
        b.h.setOptionValue("mip_abs_gap", float(share))
    d.limit(b.h, np.inf)
    b.start_from_schedule()
    d.run_block(b)
    name = status_name(b.h)
    if has_solution(b.h):
        x, cost = b.solution()
        if cost <= b.objective:
            b.x, b.objective = x, cost
        b.bound = max(b.bound, float(b.h.getInfo().mip_dual_bound))
    gaps.update(b, b.objective, b.bound)
    b.status = name
    if not np.isfinite(b.objective):
        b.state = "no_solution"
    else:  # interrupted by the merged gap test: as good as optimal
        b.state = "optimal" if name == "kInterrupt" else TERMINATION.get(name, "error")
    log.debug("block %d: MIP %s objective %.4f bound %.4f share %.4f (%.3f s)", b.label, name, b.objective, b.bound,
              share, b.seconds)


def merge(d: Decomposition, plan: BudgetPlan, translate_s: float) -> SolveOutcome:
    """Stage 8. The blocks' schedules as one, with the merged objective, bound and their true relative gap;
    ``components`` says how many blocks there were, how each ended and the slowest one."""
    x = np.zeros(len(d.model.cost))
    for b in d.blocks:
        x[b.cols] = b.x
    objective, bound = d.objective(), d.bound()
    mips = d.mips
    states = [b.state for b in mips]
    first_open = next((b for b in mips if b.state not in FINAL), None)
    binaries, integers = d.model.integer_counts()
    slow = max(d.blocks, key=lambda b: b.seconds)
    components = {"count": len(d.blocks), "with_integers": len(mips), "states": dict(Counter(states)),
                  "workers": d.workers, "slowest_s": round(slow.seconds, 4), "slowest_variables": int(slow.cols.size)}
    method = ("decomposed" if plan.branch
              else next((s for s in ("neighbourhood", "lagrangian") if s in states), "lp_round"))
    return SolveOutcome(status="kOptimal" if first_open is None else first_open.status,
                        termination="optimal" if first_open is None else first_open.state,
                        objective=objective, bound=bound, mip_gap=relative_gap(objective, bound),
                        variables=len(d.model.cost), constraints=d.model.n_rows, binaries=binaries, integers=integers,
                        translate_s=translate_s, solve_s=time.perf_counter() - d.started, backend="matrix",
                        method=method, _x=x, components=components)
