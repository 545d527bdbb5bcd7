"""The decomposed solve's stages, one at a time, on hand-built models whose answers are known.

Sites are toy problems: devices switch on (binary) at ``power`` per period and need at least ``energy``; the site
balance row (coupling) takes their power from an import paid at the period's price. Site A (two devices, prices 1
and 2): LP bound 8 (each device runs one and a half periods), MIP optimum 12 (both run both periods). Site C (one
device, prices 1, 2, 5, 5): LP bound 4, MIP optimum 6. A continuous part: ``u + v >= 3``, costs 1 and 2, optimum 4.
"""

from __future__ import annotations

import time

import highspy
import numpy as np
import pytest
from scipy.sparse import block_diag, csc_matrix

from flexopt.solver.decomposed import (
    BudgetPlan,
    Decomposition,
    MergedGap,
    branch,
    merge,
    neighbourhood,
    plan_budget,
    price,
    relax,
    round_and_fix,
    solve_decomposed,
    split,
)
from flexopt.solver.highs import SolveError, relative_gap
from flexopt.solver.matrix import ModelMatrix
from flexopt.solver.options import SolveOptions

INF = highspy.kHighsInf
SITE_A = ((1.0, 2.0), [(2.0, 3.0), (2.0, 3.0)])
SITE_C = ((1.0, 2.0, 5.0, 5.0), [(2.0, 3.0)])
OFFSET = 10.0


def _site(prices, devices) -> ModelMatrix:
    """Columns: z[device, period] (binary), then import[period]; rows: one energy row per device, then the
    balance rows ``sum power * z - import = 0`` (coupling)."""
    t, k = len(prices), len(devices)
    a = np.zeros((k + t, k * t + t))
    for d, (power, _energy) in enumerate(devices):
        a[d, d * t:(d + 1) * t] = power
        for p in range(t):
            a[k + p, d * t + p] = power
    for p in range(t):
        a[k + p, k * t + p] = -1.0
    n = k * t + t
    return ModelMatrix(a_csc=csc_matrix(a), cost=np.r_[np.zeros(k * t), prices], lower=np.zeros(n),
                       upper=np.r_[np.ones(k * t), np.full(t, INF)],
                       row_lower=np.r_[[e for _p, e in devices], np.zeros(t)],
                       row_upper=np.r_[np.full(k, INF), np.zeros(t)],
                       integrality=np.r_[np.ones(k * t), np.zeros(t)].astype(np.int32),
                       coupling=np.r_[np.zeros(k, bool), np.ones(t, bool)])


def _continuous() -> ModelMatrix:
    return ModelMatrix(a_csc=csc_matrix(np.array([[1.0, 1.0]])), cost=np.array([1.0, 2.0]), lower=np.zeros(2),
                       upper=np.full(2, 2.0), row_lower=np.array([3.0]), row_upper=np.array([INF]),
                       integrality=np.zeros(2, dtype=np.int32), coupling=np.zeros(1, bool))


def _cover(n: int = 30, seed: int = 1) -> ModelMatrix:
    """A covering problem HiGHS needs hundreds of nodes to prove (cost about the weights: many near-ties); rounding
    its relaxation up is feasible."""
    rng = np.random.default_rng(seed)
    w = rng.integers(20, 60, size=(3, n)).astype(float)
    return ModelMatrix(a_csc=csc_matrix(w), cost=w.sum(0) + rng.integers(0, 10, size=n), lower=np.zeros(n),
                       upper=np.ones(n), row_lower=w.sum(1) / 2, row_upper=np.full(3, INF),
                       integrality=np.ones(n, dtype=np.int32), coupling=np.zeros(3, bool))


def _stack(*parts: ModelMatrix, offset: float = 0.0) -> ModelMatrix:
    """The parts side by side: a block-diagonal model."""
    cat = np.concatenate
    return ModelMatrix(a_csc=csc_matrix(block_diag([p.a_csc for p in parts])), cost=cat([p.cost for p in parts]),
                       lower=cat([p.lower for p in parts]), upper=cat([p.upper for p in parts]),
                       row_lower=cat([p.row_lower for p in parts]), row_upper=cat([p.row_upper for p in parts]),
                       integrality=cat([p.integrality for p in parts]), offset=offset,
                       coupling=cat([p.coupling for p in parts]))


def _model() -> ModelMatrix:
    return _stack(_site(*SITE_A), _continuous(), _site(*SITE_C), offset=OFFSET)


def _start(model: ModelMatrix, **options) -> Decomposition:
    """The shared state after the split, blocks solved one after the other (in the order the stages give).

    HiGHS' own thread count stays the process's default: once its scheduler has started, another count fails."""
    opts = SolveOptions(**options)
    d = Decomposition.start(model, opts, split(model, opts))
    d.workers = 1
    return d


def _mip_optimum(model: ModelMatrix) -> float:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.passModel(model.to_highs())
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return h.getInfo().objective_function_value


def _bounds(b) -> tuple[np.ndarray, np.ndarray]:
    lp = b.h.getLp()
    return np.asarray(lp.col_lower_)[b.int_idx], np.asarray(lp.col_upper_)[b.int_idx]


def test_split_gives_one_block_per_independent_part_largest_first():
    model = _model()
    blocks = split(model, SolveOptions())
    # site C (4 binaries + 4 imports), site A (4 + 2), the continuous part (2)
    assert [b.cols.size for b in blocks] == [8, 6, 2]
    assert [b.int_idx.size for b in blocks] == [4, 4, 0]
    assert sorted(np.concatenate([b.cols for b in blocks]).tolist()) == list(range(len(model.cost)))
    assert sorted(np.concatenate([b.rows for b in blocks]).tolist()) == list(range(model.n_rows))
    for b in blocks:  # each block is its part of the model, in its own numbering
        np.testing.assert_array_equal(b.model.cost, model.cost[b.cols])
        np.testing.assert_array_equal(b.model.a_csc.toarray(), model.a_csc.toarray()[np.ix_(b.rows, b.cols)])
    assert [int(b.model.coupling.sum()) for b in blocks] == [4, 2, 0]


def test_relaxation_bounds_each_block_by_its_lp_optimum():
    d = _start(_model())
    relax(d)
    c, a, cont = d.blocks
    assert (c.bound, a.bound, cont.bound) == pytest.approx((4.0, 8.0, 4.0))
    assert d.bound() == pytest.approx(OFFSET + 16.0)
    np.testing.assert_allclose(c.lp_x[:4], [1.0, 0.5, 0.0, 0.0], atol=1e-9)  # the point rounding starts from
    # the continuous part is final, the others wait for a schedule and are MIPs again
    assert cont.state == "optimal" and cont.objective == pytest.approx(4.0)
    assert [(b.state, b.objective) for b in (c, a)] == [("lp", np.inf), ("lp", np.inf)]
    integer, continuous = highspy.HighsVarType.kInteger, highspy.HighsVarType.kContinuous
    for b in (c, a):
        assert b.h.getLp().integrality_ == [integer] * 4 + [continuous] * (b.cols.size - 4)


def test_rounding_up_is_feasible_within_the_known_integrality_gap():
    d = _start(_model())
    relax(d)
    round_and_fix(d, np.ceil)
    c, a, _ = d.blocks
    # up: site C runs periods 1-2 (its optimum 6), site A all four device-periods (12)
    assert [b.state for b in (c, a)] == ["rounded", "rounded"]
    assert [b.objective for b in (c, a)] == pytest.approx([6.0, 12.0])
    assert d.objective() == pytest.approx(_mip_optimum(_model()))
    assert d.objective() - d.bound() == pytest.approx(6.0)  # 32 against the LP bound 26: a relative gap of 0.1875
    for gap, fits in ((0.19, True), (0.18, False)):
        d.options.mip_gap = gap
        assert d.fits() is fits
    integer = highspy.HighsVarType.kInteger
    for b in (c, a):  # the integers are free again for the later stages, and integer (re-solved as an LP)
        lower, upper = _bounds(b)
        assert (lower == 0).all() and (upper == 1).all()
        assert b.h.getLp().integrality_[:4] == [integer] * 4


def test_an_infeasible_rounding_is_not_kept():
    d = _start(_model())
    relax(d)
    round_and_fix(d, np.round)  # 0.5 rounds to 0: no device gets its energy
    assert [(b.state, b.objective) for b in d.mips] == [("lp", np.inf), ("lp", np.inf)]
    assert not d.fits() and d.budget() == 0.0


def test_lagrangian_bound_lies_between_the_lp_bound_and_the_mip_optimum():
    d = _start(_model())
    relax(d)
    round_and_fix(d, np.ones_like)  # everything on: site C pays 26, site A its optimum 12
    lp = [b.bound for b in d.mips]
    price(d)
    for b, lp_bound in zip(d.mips, lp, strict=True):
        optimum = _mip_optimum(_model().part(b.cols, b.rows))
        assert lp_bound < b.bound <= optimum + 1e-6
        assert b.objective == pytest.approx(optimum)
    assert [b.bound for b in d.mips] == pytest.approx([6.0, 12.0])  # the devices' integer optima
    # site C's schedule is now the devices' own; site A's rounded one was as good
    assert [b.state for b in d.mips] == ["lagrangian", "rounded"]


def test_lagrangian_needs_time_left():
    d = _start(_model(), time_limit_s=60.0)
    relax(d)
    round_and_fix(d, np.ones_like)
    d.deadline = time.perf_counter() - 1.0
    price(d)
    assert [(b.state, b.bound, b.objective) for b in d.mips] == [("rounded", 4.0, 26.0), ("rounded", 8.0, 12.0)]


def test_neighbourhood_closes_the_gap_a_poor_rounding_left():
    d = _start(_model())
    relax(d)
    round_and_fix(d, np.ones_like)  # everything on: feasible, site C pays 26 instead of 6
    c, a, _ = d.blocks
    assert (c.objective, a.objective) == pytest.approx((26.0, 12.0))
    neighbourhood(d)
    # site C: periods 1, 3, 4 integral in the relaxation and fixed, period 2 free -> its optimum
    assert c.state == "neighbourhood" and c.objective == pytest.approx(_mip_optimum(_site(*SITE_C)))
    assert a.state == "rounded" and a.objective == pytest.approx(12.0)  # already optimal: kept as it was
    for b in (c, a):  # fixed integers released, the gap options back
        lower, upper = _bounds(b)
        assert (lower == 0).all() and (upper == 1).all()
        assert b.h.getOptionValue("mip_rel_gap")[1] == pytest.approx(d.mip_gap)
        assert b.h.getOptionValue("mip_abs_gap")[1] == pytest.approx(1e-6)


def _runs(d: Decomposition) -> list[int]:
    """The labels of the blocks whose HiGHS model runs from now on, in order."""
    ran, run_block = [], d.run_block

    def record(b) -> None:
        ran.append(b.label)
        run_block(b)

    d.run_block = record
    return ran


def test_price_goes_biggest_gap_first_and_stops_once_the_merged_gap_fits():
    # rounded with everything on: site C (block 0) 26 over its bound 4, site A (block 1) 12 over 8
    for gap, priced in ((0.15, [0]), (0.10, [0, 1])):
        d = _start(_model(), mip_gap=gap)
        relax(d)
        round_and_fix(d, np.ones_like)
        ran = _runs(d)
        price(d)
        c, a, _ = d.blocks
        assert ran == priced
        # site C priced: its devices' optimum 6 as bound and schedule; merged 32 over 28, a gap of 0.125
        assert (c.state, c.bound, c.objective) == ("lagrangian", pytest.approx(6.0), pytest.approx(6.0))
        if gap == 0.15:  # fits: site A keeps its relaxation's bound and its rounded schedule
            assert (a.state, a.bound, a.objective) == ("rounded", pytest.approx(8.0), pytest.approx(12.0))
        else:  # 0.125 > 0.10: site A priced too, its bound now its optimum
            assert a.bound == pytest.approx(12.0)
        assert d.fits()
        assert d.bound() <= _mip_optimum(_model()) + 1e-6


def test_neighbourhood_goes_biggest_gap_first_and_stops_once_the_merged_gap_fits():
    d = _start(_model(), mip_gap=0.2)
    relax(d)
    round_and_fix(d, np.ones_like)  # merged 52 over 26
    ran = _runs(d)
    neighbourhood(d)
    c, a, _ = d.blocks
    # site C to its optimum: merged 32 over 26, a gap of 0.1875 <= 0.2; site A's MIP never runs
    assert ran == [0]
    assert c.state == "neighbourhood" and c.objective == pytest.approx(6.0)
    assert a.state == "rounded" and a.objective == pytest.approx(12.0)
    assert d.fits()


def _four_blocks(objectives, gap=0.01) -> Decomposition:
    """Four independent copies of site C, each with bound 100 and the given objective (set by hand)."""
    d = _start(_stack(*[_site(*SITE_C)] * 4), mip_gap=gap)
    for b, objective in zip(d.blocks, objectives, strict=True):
        b.bound, b.objective = 100.0, objective
    return d


def test_budget_shares_add_up_to_the_requested_relative_gap():
    d = _four_blocks([110.0, 100.1, 102.0, 100.5])
    plan = plan_budget(d)
    assert plan.budget == pytest.approx(0.01 * 400.0)  # mip_gap * min(|bound|, |objective|)
    spent = sum(b.gap for b in plan.accepted)
    shares = [s for _b, s in plan.branch]
    assert sorted(b.gap for b in plan.accepted) == pytest.approx([0.1, 0.5])  # the closest, within half the budget
    assert spent <= 0.5 * plan.budget
    assert [b.gap for b, _s in plan.branch] == pytest.approx([10.0, 2.0])  # hardest first
    assert spent + sum(shares) == pytest.approx(plan.budget)
    assert shares == pytest.approx([3.4 * 10 / 12, 3.4 * 2 / 12])  # by their gap
    # a merged schedule that meets every share is within the requested relative gap
    merged_gap = relative_gap(400.0 + spent + sum(shares), 400.0)
    assert merged_gap <= 0.01 + 1e-12


def test_budget_accepts_every_block_when_the_merged_schedule_fits():
    plan = plan_budget(_four_blocks([100.1, 100.2, 100.3, 100.4]))
    assert len(plan.accepted) == 4 and plan.branch == []


def test_a_block_without_a_schedule_goes_first_with_no_budget():
    d = _four_blocks([100.1, np.inf, 100.2, 100.3])
    plan = plan_budget(d)
    assert plan.budget == 0.0 and plan.accepted == []
    assert plan.branch[0][0] is d.blocks[1] and [s for _b, s in plan.branch] == [0.0] * 4


def test_merged_gap_counts_every_block():
    d = _four_blocks([101.0, 102.0, 103.0, 104.0])
    gaps = MergedGap(d.mips)
    assert gaps.total() == pytest.approx(10.0)
    gaps.update(d.blocks[3], 100.5, 100.0)
    assert gaps.total() == pytest.approx(6.5)


def test_merged_gap_interrupt_stops_a_block_before_its_own_share():
    model = _stack(_cover(), _site(*SITE_A))
    d = _start(model, mip_gap=0.0)
    relax(d)
    round_and_fix(d, np.ceil)
    cover, site = d.blocks
    start = cover.objective
    assert site.gap == pytest.approx(4.0) and cover.gap > 1.0
    # the accepted site's gap plus half of the cover's: the cover may stop well before proving its optimum
    plan = BudgetPlan(site.gap + 0.5 * cover.gap, [site], [(cover, 1e-6)])
    branch(d, plan)
    assert cover.status == "kInterrupt" and cover.state == "optimal"
    assert cover.gap > 1e-6  # its own share (an absolute gap option) did not stop it
    assert site.gap + cover.gap <= plan.budget  # the merged test did
    assert cover.objective <= start
    out = merge(d, plan, 0.0)
    assert out.method == "decomposed" and out.termination == "optimal"
    assert out.objective - out.bound <= plan.budget + 1e-9


def test_a_block_whose_relaxation_is_infeasible_raises_with_status_and_hint():
    bad = ModelMatrix(a_csc=csc_matrix(np.array([[1.0]])), cost=np.ones(1), lower=np.zeros(1), upper=np.ones(1),
                      row_lower=np.array([2.0]), row_upper=np.array([INF]), integrality=np.ones(1, dtype=np.int32),
                      coupling=np.zeros(1, bool))
    d = _start(_stack(_site(*SITE_A), bad))
    with pytest.raises(SolveError, match=r"model status kInfeasible, termination infeasible, in the relaxation.*"
                                         r"check initial states"):
        relax(d)


def test_a_block_without_an_integer_schedule_raises_with_status_and_hint():
    half = ModelMatrix(a_csc=csc_matrix(np.array([[2.0]])), cost=np.ones(1), lower=np.zeros(1), upper=np.ones(1),
                       row_lower=np.ones(1), row_upper=np.ones(1), integrality=np.ones(1, dtype=np.int32),
                       coupling=np.zeros(1, bool))  # 2 x = 1: the relaxation has x = 0.5, no integer does
    model = _stack(_site(*SITE_A), half)
    opts = SolveOptions()
    with pytest.raises(SolveError, match=r"model status kInfeasible, termination infeasible, in an independent "
                                         r"part of the model.*check initial states"):
        solve_decomposed(model, split(model, opts), opts, np.round, 0.0)


def test_the_time_limit_is_what_is_left_of_the_whole_run():
    d = _start(_model())
    h = d.blocks[0].h
    d.limit(h)  # no deadline, no cap of its own: the option stays as it is
    assert h.getOptionValue("time_limit")[1] == INF
    d.limit(h, 2.0)
    assert h.getOptionValue("time_limit")[1] == 2.0
    d.deadline = time.perf_counter() + 100.0
    d.limit(h, 2.0)
    assert h.getOptionValue("time_limit")[1] == 2.0
    d.limit(h)
    assert 2.0 < h.getOptionValue("time_limit")[1] <= 100.0
    d.deadline = time.perf_counter() - 1.0
    d.limit(h, 2.0)
    assert h.getOptionValue("time_limit")[1] == 1e-9


def test_a_relaxation_out_of_time_raises_with_the_time_limit_hint():
    d = _start(_model(), time_limit_s=60.0)
    d.deadline = time.perf_counter() - 1.0
    with pytest.raises(SolveError, match=r"model status kTimeLimit.*raise SolveOptions.time_limit_s"):
        relax(d)


def test_a_mip_out_of_time_returns_its_schedule_and_gap():
    model = _stack(_cover(), _site(*SITE_A))
    d = _start(model, time_limit_s=60.0, mip_gap=0.0)
    relax(d)
    round_and_fix(d, np.ceil)
    cover = d.blocks[0]
    start = cover.objective
    d.deadline = time.perf_counter() - 1.0  # the earlier stages used the whole limit
    plan = plan_budget(d)
    branch(d, plan)
    assert cover.status == "kTimeLimit" and cover.state == "time_limit" and cover.objective <= start
    out = merge(d, plan, 0.0)
    assert (out.status, out.termination) == ("kTimeLimit", "time_limit")
    assert out.mip_gap == pytest.approx(relative_gap(d.objective(), d.bound())) and out.mip_gap > 0


def test_merge_assembles_the_blocks_schedules_into_the_models_solution():
    model = _model()
    opts = SolveOptions(mip_gap=0.0)
    out = solve_decomposed(model, split(model, opts), opts, np.ceil, 0.0)
    # rounding up is optimal and the Lagrangian proves it: no branch-and-bound
    assert (out.objective, out.bound, out.mip_gap) == (pytest.approx(32.0), pytest.approx(32.0), 0.0)
    assert out.method == "lp_round" and out.termination == "optimal"
    assert out.components["count"] == 3 and out.components["states"] == {"rounded": 2}
    assert float(model.cost @ out._x) + OFFSET == pytest.approx(out.objective)
    assert (out.binaries, out.integers, out.variables, out.constraints) == (8, 0, 16, 10)
