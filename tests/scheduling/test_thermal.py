"""Heat pump (1R1C): in band at the lowest cost, pre-heating when it pays, comfort breach reported."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flexopt.scheduling.problem import schedule

R_K_PER_KW, C_KWH_PER_K, COP = 10.0, 5.0, 3.0
A = math.exp(-0.25 / (R_K_PER_KW * C_KWH_PER_K))  # per-interval decay of the 1R1C


def _run(tmp_path, builder, prices, **hp):
    zone = {"id": "hp-1", "type": "heat_pump", "max_electric_kw": 3.0, "cop_heating": COP,
            "thermal_resistance_k_per_kw": R_K_PER_KW, "thermal_capacitance_kwh_per_k": C_KWH_PER_K,
            "initial_temp_c": 20.0, "outdoor_temp_c": 0.0, "default_min_temp_c": 20.0, "default_max_temp_c": 22.0,
            **hp}
    loaded, inputs = builder.build(tmp_path, [{"id": "site-1", "assets": [zone]}], series={"price": prices},
                                   tariff={"import_price_eur_per_kwh": {"source": "price"}})
    return schedule(loaded, inputs)


def test_flat_price_holds_the_lower_edge_of_the_band(tmp_path, portfolio_builder):
    res = _run(tmp_path, portfolio_builder, np.full(96, 0.10))
    # steady state at 20 degC with 0 degC outside: P = (20 - 0) / (R * COP) = 2/3 kW all day
    p = res.schedule.power_kw.to_numpy()
    np.testing.assert_allclose(p, 20 / (R_K_PER_KW * COP), atol=1e-6)
    np.testing.assert_allclose(res.schedule.state.to_numpy(), 20.0, atol=1e-6)
    assert res.kpis["cost_eur"] == pytest.approx(20 / 30 * 24 * 0.10, abs=1e-5)
    # the unmanaged thermostat holds 21 degC: 21/30 kW once there
    assert res.schedule.baseline_kw.iloc[-1] == pytest.approx(21 / 30, abs=1e-6)
    assert res.kpis["baseline_cost_eur"] > res.kpis["cost_eur"]
    assert res.violations == []


def test_cheap_morning_preheats_to_the_top_of_the_band(tmp_path, portfolio_builder):
    prices = np.r_[np.full(48, 0.05), np.full(48, 0.30)]
    res = _run(tmp_path, portfolio_builder, prices, default_max_temp_c=24.0)
    temp, p = res.schedule.state.to_numpy(), res.schedule.power_kw.to_numpy()
    assert temp.min() >= 20 - 1e-6 and temp.max() <= 24 + 1e-6
    assert temp[47] == pytest.approx(24.0, abs=1e-6)  # stored heat is worth 0.30 * A**k > 0.05 for any k here
    coasting = np.flatnonzero(temp[48:] > 20 + 1e-6) + 48
    # coasting from 24 degC towards 0 degC: 24 * A**k > 20 for k <= ln(20/24)/ln(A) = 36.46
    k = math.floor(math.log(20 / 24) / math.log(A))
    np.testing.assert_array_equal(coasting, np.arange(48, 48 + k))
    assert p[coasting].max() < 1e-6  # nothing bought at 0.30 while above the band's floor
    # the first heating interval tops up exactly to 20 degC: 20 = A * 24 A**k + (1 - A) * R * COP * P
    top_up = (20 - A * 24 * A**k) / ((1 - A) * R_K_PER_KW * COP)
    assert p[48 + k] == pytest.approx(top_up, abs=1e-6)
    # then it holds 20 degC at the steady-state power
    np.testing.assert_allclose(p[49 + k:], 20 / 30, atol=1e-6)


def test_too_small_heat_pump_reports_the_comfort_shortfall(tmp_path, portfolio_builder):
    res = _run(tmp_path, portfolio_builder, np.full(96, 0.10), max_electric_kw=0.5)
    # flat out all day it tends to 0 + R*COP*0.5 = 15 degC: T_end = 15 + 5 * A**96
    t_end = 15 + 5 * A ** 96
    np.testing.assert_allclose(res.schedule.power_kw.to_numpy(), 0.5, atol=1e-6)
    assert res.schedule.state.iloc[-1] == pytest.approx(t_end, abs=1e-6)
    (v,) = res.violations
    assert v.kind == "comfort_low" and v.asset_id == "hp-1" and v.unit == "degC"
    assert v.amount == pytest.approx(20 - t_end, abs=1e-6)
    assert v.start == res.schedule.interval_start.iloc[0] and v.end == res.schedule.interval_end.iloc[-1]


def test_reversible_unit_runs_one_mode_within_its_rating_at_negative_prices(tmp_path, portfolio_builder):
    # paid to draw power: heating and cooling at once would draw twice the rating with no effect on the room
    prices = np.r_[np.full(48, 0.10), np.full(48, -0.05)]
    res = _run(tmp_path, portfolio_builder, prices, mode="both", cop_cooling=3.0, outdoor_temp_c=21.0)
    p, temp = res.schedule.power_kw.to_numpy(), res.schedule.state.to_numpy()
    assert p.max() <= 3.0 + 1e-6
    assert p[48:].max() == pytest.approx(3.0, abs=1e-6)  # it does use the negative price, in one mode
    # the temperature follows one mode per interval: the change is +g*p (heating) or -g*p (cooling)
    prev = np.r_[20.0, temp[:-1]]
    free = A * prev + (1 - A) * 21.0
    g = (1 - A) * R_K_PER_KW * COP
    one_mode = np.isclose(temp, free + g * p, atol=1e-6) | np.isclose(temp, free - g * p, atol=1e-6)
    assert one_mode.all()
    assert res.kpis["solver"]["simultaneous_modes_kwh"]["heat_pump"] == pytest.approx(0.0, abs=1e-6)
    assert res.kpis["solver"]["binaries"] > 0


def test_reversible_unit_minimum_power_applies_to_the_mode_it_runs_in(tmp_path, portfolio_builder):
    prices = np.r_[np.full(48, 0.10), np.full(48, -0.05)]
    res = _run(tmp_path, portfolio_builder, prices, mode="both", outdoor_temp_c=21.0, min_electric_kw=1.0)
    p = res.schedule.power_kw.to_numpy()
    assert ((p < 1e-6) | (p >= 1.0 - 1e-6)).all()
    assert p.max() <= 3.0 + 1e-6
