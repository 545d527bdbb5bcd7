"""Lagrangian bound: devices alone at the relaxation's site prices bound the MIP from below, above the LP bound."""

from __future__ import annotations

import highspy
import numpy as np
import pytest
from scipy.sparse import csc_matrix

from flexopt.models.water_heater import WaterHeaterFormulation
from flexopt.scheduling.problem import schedule
from flexopt.solver.lagrangian import lagrangian
from flexopt.solver.matrix import ModelMatrix, highs_lp, integer_blocks
from flexopt.solver.options import SolveOptions

INF = highspy.kHighsInf


def _two_devices() -> ModelMatrix:
    """Two devices, two periods: z[k,t] on/off at 2 kW, each needs >= 3 kWh-units (so both periods when whole);
    site balance per period: 2*z[0,t] + 2*z[1,t] - imp[t] = 0, import at 1 then 2 per unit.
    Columns: z00 z01 z10 z11 imp0 imp1."""
    a = np.array([
        [2, 2, 0, 0, 0, 0],   # device 0 energy >= 3
        [0, 0, 2, 2, 0, 0],   # device 1 energy >= 3
        [2, 0, 2, 0, -1, 0],  # balance t=0 (coupling)
        [0, 2, 0, 2, 0, -1],  # balance t=1 (coupling)
    ], dtype=float)
    return ModelMatrix(a_csc=csc_matrix(a), cost=np.array([0, 0, 0, 0, 1.0, 2.0]), lower=np.zeros(6),
                 upper=np.array([1, 1, 1, 1, INF, INF]), row_lower=np.array([3.0, 3.0, 0.0, 0.0]),
                 row_upper=np.array([INF, INF, 0.0, 0.0]), integrality=np.array([1, 1, 1, 1, 0, 0]),
                 coupling=np.array([False, False, True, True]))


def _lp_duals(b: ModelMatrix) -> tuple[float, np.ndarray]:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(highs_lp(b.a_csc, b.cost, b.lower, b.upper, b.row_lower, b.row_upper))  # the relaxation
    h.run()
    return h.getInfo().objective_function_value, np.asarray(h.getSolution().row_dual)


def test_blocks_split_devices_and_put_continuous_parts_and_row_free_integers_together():
    b = _two_devices()
    keep = np.flatnonzero(~b.coupling)
    a_k = b.a_csr[keep].tocsc()  # coupling rows dropped: two devices, and the imports in no row
    blocks = [(h, c.tolist(), r.tolist()) for h, c, r in integer_blocks(a_k, b.integrality)]
    assert blocks == [(False, [4, 5], []), (True, [0, 1], [0]), (True, [2, 3], [1])]
    alone = b.integrality.copy()
    alone[4] = 1  # an integer import in no row: its own integer block, or the LP's with row_free_integers_to_lp
    assert [c.tolist() for _h, c, _r in integer_blocks(a_k, alone)] == [[5], [0, 1], [2, 3], [4]]
    merged = list(integer_blocks(a_k, alone, row_free_integers_to_lp=True))
    assert [(h, c.tolist()) for h, c, _r in merged] == [(False, [4, 5]), (True, [0, 1]), (True, [2, 3])]


def test_lagrangian_bound_closes_the_per_device_integrality_gap():
    b = _two_devices()
    lp_bound, duals = _lp_duals(b)
    # LP: each device runs period 0 fully and period 1 half (3 units: 2 at 1 + 1 at 2 = 4), total 8
    assert lp_bound == pytest.approx(8.0)
    res = lagrangian(b, duals)
    # whole periods only: each device needs both (4 units: 2 at 1 + 2 at 2 = 6), total 12 = the MIP optimum
    assert res.bound == pytest.approx(12.0, abs=1e-6)
    assert res.subproblems == 2
    assert res.mips == 2  # each device's LP runs one and a half periods: both solved as MIPs
    np.testing.assert_allclose(res.x[:4], 1.0, atol=1e-9)


def test_a_device_whose_lp_is_integral_is_not_solved_as_a_mip():
    b = _two_devices()
    b.row_lower[:2] = 4.0  # both periods whole in the relaxation already
    lp_bound, duals = _lp_duals(b)
    res = lagrangian(b, duals)
    assert (res.subproblems, res.mips) == (2, 0)
    assert res.bound == pytest.approx(lp_bound) and lp_bound == pytest.approx(12.0)
    np.testing.assert_allclose(res.x[:4], 1.0, atol=1e-9)


def test_lagrangian_bound_is_valid_at_any_multipliers():
    b = _two_devices()
    for duals in (np.zeros(4), np.array([0, 0, 0.5, 3.0]), np.array([0, 0, 1.0, 2.0])):
        res = lagrangian(b, duals)
        assert res is not None and res.bound <= 12.0 + 1e-6


def _heater_sites() -> list[dict]:
    heater = {"type": "water_heater", "volume_l": 80.0, "element_kw": 3.0, "min_temp_c": 45.0, "max_temp_c": 75.0,
              "thermostat_c": 60.0, "standby_loss_w_per_k": 1.5,
              "draws": [{"at_local": "07:30", "litres": 40.0}, {"at_local": "21:00", "litres": 60.0}]}
    return [{"id": f"s{k}", "congestion_point": "cp", "assets": [
        {"id": f"wh-{k}", **heater, "initial_temp_c": 50.0 + 3 * k, "element_kw": 2.0 + 0.5 * k},
        {"id": f"ev-{k}", "type": "ev_charger", "max_charge_kw": 11.0,
         "sessions": [{"arrival_local": "18:00", "departure_local": "23:00", "energy_kwh": 9.0 + k}]}]}
        for k in range(4)]


def test_fleet_with_congestion_bound_is_below_the_exact_optimum(tmp_path, portfolio_builder):
    hours = np.arange(96) / 4
    price = 0.12 + 0.06 * np.cos((hours - 20) / 24 * 2 * np.pi) + 0.01 * np.sin(hours * 3.1)
    loaded, inputs = portfolio_builder.build(
        tmp_path, _heater_sites(), series={"price": price},
        tariff={"import_price_eur_per_kwh": {"source": "price"}},
        extra={"congestion_points": [{"id": "cp", "import_limit_kw": 20.0}]})
    exact = schedule(loaded, inputs, SolveOptions(mip_gap=0.0, decompose=False)).kpis["solver"]
    fast = schedule(loaded, inputs, SolveOptions(mip_gap=0.005)).kpis["solver"]
    assert exact["termination"] == "optimal"
    tol = 1e-6 * abs(exact["objective"])
    assert fast["bound"] <= exact["objective"] + tol
    assert exact["objective"] <= fast["objective"] + tol
    assert fast["mip_gap"] <= 0.005 + 1e-12


def test_a_heater_alone_needs_no_branching(tmp_path, portfolio_builder, monkeypatch):
    """With the rounding rows, one heater's LP relaxation is integral: the rounded schedule meets the bound,
    where the plain relaxation (element-intervals continuous, no rounding rows) is below it."""
    price = np.full(96, 0.20)
    price[8:16] = 0.05  # 02:00-04:00
    heater = {"id": "wh", "type": "water_heater", "volume_l": 200.0, "element_kw": 2.0, "min_temp_c": 45.0,
              "max_temp_c": 75.0, "initial_temp_c": 50.0, "thermostat_c": 60.0, "standby_loss_w_per_k": 1.5,
              "draws": [{"at_local": "20:00", "litres": 100.0}]}
    loaded, inputs = portfolio_builder.build(tmp_path, [{"id": "s", "assets": [heater]}], series={"price": price},
                                             tariff={"import_price_eur_per_kwh": {"source": "price"}})
    res = schedule(loaded, inputs, SolveOptions(mip_gap=1e-9))
    s = res.kpis["solver"]
    assert s["method"] == "lp_round"
    assert s["objective"] - s["bound"] <= 1e-9 * abs(s["objective"])
    assert res.violations == []
    # 45 degC at the end of the day: 50 - 12.5 (draw) - 96 * 0.0645 (loss) + 2.15 k >= 45 -> k = 6.18 -> 7 whole
    # quarter-hours, all in the cheap two hours
    p = res.schedule.power_kw.to_numpy()
    assert set(np.round(p, 9)) == {0.0, 2.0}
    assert np.flatnonzero(p > 1).size == 7 and set(np.flatnonzero(p > 1)) <= set(range(8, 16))
    assert res.kpis["cost_eur"] == pytest.approx(7 * 0.5 * 0.05, abs=1e-9)
    monkeypatch.setattr(WaterHeaterFormulation, "relax_elements", True)
    plain = schedule(loaded, inputs, SolveOptions(mip_gap=1e-9)).kpis["solver"]
    assert plain["objective"] < s["bound"] - 0.01  # 6.18 quarter-hours instead of 7, at 0.025 EUR each


def test_constant_standby_loss_at_the_thermostat_temperature(tmp_path, portfolio_builder):
    heater = {"id": "wh", "type": "water_heater", "volume_l": 100.0, "element_kw": 2.0, "min_temp_c": 40.0,
              "max_temp_c": 75.0, "initial_temp_c": 70.0, "thermostat_c": 60.0, "ambient_temp_c": 20.0,
              "standby_loss_w_per_k": 2.0}
    loaded, inputs = portfolio_builder.build(tmp_path, [{"id": "s", "assets": [heater]}])
    res = schedule(loaded, inputs)
    temp = res.schedule.state.to_numpy()
    loss_k = 0.25 * 0.002 * (60 - 20) / (100 * 4.186 / 3600)  # K per quarter-hour, at the thermostat
    np.testing.assert_allclose(temp, 70 - loss_k * np.arange(1, 97), atol=1e-9)
    assert res.schedule.power_kw.abs().max() < 1e-9
