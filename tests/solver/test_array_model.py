"""The array-built model: families become slices of one matrix exactly as stated, and the same matrices solved
through Pyomo (a translation flexopt does not write) reach the same optimum as the matrix path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from flexopt.config.loader import load_portfolio
from flexopt.data.inputs import Horizon, Inputs
from flexopt.models.arrays import ArrayModel, ModelError
from flexopt.models.base import add_one_mode_rows, add_row_arrays, add_rows, add_var
from flexopt.scheduling.problem import schedule
from flexopt.solver.highs import SolveError
from flexopt.solver.matrix import pass_model
from flexopt.solver.options import SolveOptions

ROOT = Path(__file__).resolve().parents[2]


def small_model() -> tuple[ArrayModel, object, object]:
    m = ArrayModel()
    a, b = m.block("a"), m.block("b")
    x = add_var(a, "x", [0, 0, 0], [1, 2, np.inf])
    y = add_var(b, "y", [-np.inf, 0], [np.inf, 1], integer=True)
    add_rows(a, "sum", [([1.0, 2.0], [x[0], x[1]]), ([1.0, 1.0, -1.0], [x[2], x[2], y[0]])], [None, 0.0], [4.0, None])
    add_row_arrays(b, "pairs", np.array([[1.0, 0.0], [3.0, -1.0]]), np.array([[y[0], y[1]], [x[0], y[1]]]),
                   np.array([-1.0, -np.inf]), None)
    m.add_cost([x[0], y[1], x[0]], [1.0, 2.0, 0.5], constant=3.0)
    return m, a, b


def test_families_are_the_matrix_as_stated():
    """Bounds (None and inf: none), duplicate entries added (x[2] twice), zero coefficients dropped, integer
    columns, cost terms on one column added, the constant kept, row masks and names by family."""
    m, a, b = small_model()
    arr = m.arrays()
    dense = arr["a_csc"].toarray()
    np.testing.assert_array_equal(dense, [[1, 2, 0, 0, 0], [0, 0, 2, -1, 0], [0, 0, 0, 1, 0], [3, 0, 0, 0, -1]])
    assert arr["a_csc"].nnz == 7  # the 0.0 of "pairs"[0] is no entry
    np.testing.assert_array_equal(arr["lower"], [0, 0, 0, -np.inf, 0])
    np.testing.assert_array_equal(arr["upper"], [1, 2, np.inf, np.inf, 1])
    np.testing.assert_array_equal(arr["row_lower"], [-np.inf, 0, -1, -np.inf])
    np.testing.assert_array_equal(arr["row_upper"], [4, np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(arr["integrality"], [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(arr["cost"], [1.5, 0, 0, 0, 2])
    assert arr["offset"] == 3.0
    np.testing.assert_array_equal(m.row_mask((b.pairs,)), [False, False, True, True])
    np.testing.assert_array_equal(a.x.cols, [0, 1, 2])
    cols, rows = m.names()
    assert cols == ["a.x[0]", "a.x[1]", "a.x[2]", "b.y[0]", "b.y[1]"]
    assert rows == ["a.sum[0]", "a.sum[1]", "b.pairs[0]", "b.pairs[1]"]


def test_bad_statements_are_refused():
    _m, a, _b = small_model()
    with pytest.raises(ValueError, match="exists already"):
        add_var(a, "x", [0], [1])
    with pytest.raises(ValueError, match=r"must be \(rows, terms\)"):
        add_row_arrays(a, "bad", np.ones((2, 2)), np.zeros((2, 3), dtype=int), None, None)
    with pytest.raises(ValueError, match="bounds for"):
        add_rows(a, "short", [([1.0], [0]), ([1.0], [1])], [0.0], None)


def test_numbers_that_are_not_numbers_are_refused_by_family():
    """A NaN or infinite coefficient or cost, or a NaN bound, names its family and element (HiGHS would ignore a NaN
    entry, and a NaN bound taken as none would lift a limit); None and inf bounds mean none."""
    m = ArrayModel()
    blk = m.block("asset_x")
    x = add_var(blk, "p", [0, None], [np.inf, 1])
    with pytest.raises(ModelError, match=r"asset_x.bad: coefficient nan at element 1"):
        add_rows(blk, "bad", [([1.0, np.nan], [x[0], x[1]])], [0.0], None)
    with pytest.raises(ModelError, match=r"asset_x.q: a bound at element 0 is not a number"):
        add_var(blk, "q", [np.nan], [1.0])
    with pytest.raises(ModelError, match=r"asset_x.rows: a bound at element 1"):
        add_row_arrays(blk, "rows", np.ones((2, 1)), np.array([[x[0]], [x[1]]]), np.array([0.0, np.nan]), None)
    with pytest.raises(ModelError, match="objective: cost inf"):
        m.add_cost([x[0]], [np.inf])


def test_a_model_highs_refuses_is_a_solve_error():
    import highspy
    from scipy.sparse import csc_matrix

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    with pytest.raises(SolveError, match="HiGHS refused the model"):
        pass_model(h, csc_matrix(np.array([[np.inf, 1.0]])), np.ones(2), np.zeros(2), np.ones(2), np.zeros(1),
                   np.ones(1))


def test_one_mode_rows_are_two_rows_per_position():
    """first <= first_max * b and second <= second_max * (1 - b), interleaved."""
    m = ArrayModel()
    blk = m.block("u")
    c, d, b = add_var(blk, "c", [0, 0], [5, 5]), add_var(blk, "d", [0, 0], [4, 4]), add_var(blk, "b", [0, 0], [1, 1])
    add_one_mode_rows(blk, "one", c, d, b, [5.0, 6.0], [4.0, 3.0])
    arr = m.arrays()
    np.testing.assert_array_equal(arr["a_csc"].toarray(), [[1, 0, 0, 0, -5, 0], [0, 0, 1, 0, 4, 0],
                                                            [0, 1, 0, 0, 0, -6], [0, 0, 0, 1, 0, 3]])
    np.testing.assert_array_equal(arr["row_upper"], [0, 4, 0, 3])


@pytest.mark.parametrize("portfolio", ["abadiano.yaml", "bilbao.yaml"])
def test_pyomo_translation_reaches_the_same_optimum(portfolio):
    """The matrix path and the same matrices as a Pyomo model solved through Pyomo's persistent HiGHS interface
    agree on the optimum at gap 0 (two translations, one model)."""
    loaded = load_portfolio(ROOT / "examples" / portfolio)
    horizon = Horizon.for_day(dt.date(2024, 6, 25), loaded.portfolio.portfolio.timezone)
    by_matrix = schedule(loaded, Inputs(loaded, horizon), SolveOptions(mip_gap=0.0))
    by_pyomo = schedule(loaded, Inputs(loaded, horizon), SolveOptions(mip_gap=0.0, backend="persistent"))
    a, b = by_matrix.kpis["solver"], by_pyomo.kpis["solver"]
    assert b["backend"] == "persistent" and a["backend"] == "matrix"
    assert b["variables"] == a["variables"] and b["constraints"] == a["constraints"]
    assert b["objective"] == pytest.approx(a["objective"], rel=1e-6, abs=1e-6)
