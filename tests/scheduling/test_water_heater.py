"""Water heater: never below its minimum, heating in the cheapest quarter-hours; identical heaters aggregated."""

from __future__ import annotations

import numpy as np
import pytest

from flexopt.problem import schedule

C_KWH_PER_K = 200 * 4.186 / 3600  # 200 l tank
DRAW_K = 100 * 25 / 200  # 100 l at 40 degC from 15 degC cold water cools a 200 l tank by 12.5 K


def _prices():
    p = np.full(96, 0.20)
    p[12:16] = 0.05  # 03:00-04:00
    return p


def _heater(hid: str, count: int = 1, **kw) -> dict:
    return {"id": hid, "type": "water_heater", "count": count, "volume_l": 200.0, "element_kw": 2.0,
            "min_temp_c": 45.0, "max_temp_c": 75.0, "initial_temp_c": 50.0, "thermostat_c": 60.0,
            "standby_loss_w_per_k": 0.0, "draws": [{"at_local": "20:00", "litres": 100.0}], **kw}


def _run(tmp_path, builder, heaters: list[dict]):
    loaded, inputs = builder.build(tmp_path, [{"id": "site-1", "assets": heaters}], series={"price": _prices()},
                                   tariff={"import_price_eur_per_kwh": {"source": "price"}})
    return schedule(loaded, inputs)


def test_heats_in_the_cheap_hour_and_never_drops_below_minimum(tmp_path, portfolio_builder):
    res = _run(tmp_path, portfolio_builder, [_heater("wh-1")])
    p, temp = res.schedule.power_kw.to_numpy(), res.schedule.state.to_numpy()
    # needs 57.5 degC before the draw: 7.5 K * C = 1.744 kWh = 3.49 quarter-hours at 2 kW -> 4 whole ones (on/off)
    np.testing.assert_allclose(p[12:16], 2.0, atol=1e-6)
    assert np.abs(np.delete(p, np.r_[12:16])).max() < 1e-6
    assert temp.min() >= 45 - 1e-6
    assert temp[79] == pytest.approx(50 + 2.0 / C_KWH_PER_K, abs=1e-6)
    assert temp[80] == pytest.approx(50 + 2.0 / C_KWH_PER_K - DRAW_K, abs=1e-6)
    assert res.kpis["cost_eur"] == pytest.approx(4 * 0.5 * 0.05, abs=1e-9)
    # thermostat (60 +/- 2.5): 50 -> 62.5 degC at once, and again after the draw, all at 0.20
    assert res.kpis["baseline_cost_eur"] == pytest.approx(2 * 12.5 * C_KWH_PER_K * 0.20, abs=1e-6)
    assert set(res.schedule.setpoint.round(9)) == {0.0, 1.0}
    assert res.violations == []


def test_identical_heaters_aggregate_to_the_same_total_as_separate_ones(tmp_path, portfolio_builder):
    separate = _run(tmp_path / "a", portfolio_builder, [_heater(f"wh-{i}") for i in range(3)])
    grouped = _run(tmp_path / "b", portfolio_builder, [_heater("wh", count=3)])
    # each tank needs 4 whole quarter-hours; the mean temperature alone would accept 11 instead of 12
    assert separate.kpis["cost_eur"] == pytest.approx(12 * 0.5 * 0.05, abs=1e-9)
    assert grouped.kpis["cost_eur"] == pytest.approx(separate.kpis["cost_eur"], abs=1e-9)
    np.testing.assert_allclose(grouped.schedule.power_kw.to_numpy(),
                               separate.schedule.groupby("interval_start").power_kw.sum().to_numpy(), atol=1e-6)
    assert grouped.violations == []


def test_thirty_identical_heaters_are_one_aggregate(tmp_path, portfolio_builder):
    res = _run(tmp_path, portfolio_builder, [_heater("seville", count=30)])
    assert len(res.schedule) == 96  # one row per interval for the whole group
    assert res.kpis["cost_eur"] == pytest.approx(30 * 4 * 0.5 * 0.05, abs=1e-9)
    assert res.schedule.power_kw.max() == pytest.approx(60.0, abs=1e-6)
    # integers: elements on + the coldest tank's on/off per interval, not 30 binaries per interval
    assert res.kpis["solver"]["binaries"] + res.kpis["solver"]["integers"] <= 2 * 96
    assert res.violations == []


def test_draw_larger_than_the_tank_can_cover_is_reported(tmp_path, portfolio_builder):
    # 300 l at 40 degC from a 200 l tank at most 75 degC: drops by 37.5 K -> below 45 unless >= 82.5 before
    res = _run(tmp_path, portfolio_builder, [_heater("wh-1", draws=[{"at_local": "20:00", "litres": 300.0}])])
    (v,) = res.violations
    assert v.kind == "tank_temp_low" and v.asset_id == "wh-1" and v.unit == "degC"
    q = 0.5 / C_KWH_PER_K  # K per quarter-hour of heating
    temp = res.schedule.state.to_numpy()
    # 50 + 11 q = 73.65 is the hottest whole number of quarter-hours under the 75 degC cut-out; heating on through
    # the draw's quarter-hour leaves 50 + 12 q - 37.5 = 38.3 degC, then it recovers q per quarter-hour
    assert temp.max() <= 75 + 1e-6
    assert temp[79] == pytest.approx(50 + 11 * q, abs=1e-6)
    assert v.amount == pytest.approx(45 - (50 + 12 * q - 300 * 25 / 200), abs=1e-6)
    assert v.start == res.schedule.interval_start.iloc[80]
    assert v.end == res.schedule.interval_end.iloc[83]  # 38.3 + 3 q = 44.75 < 45, 38.3 + 4 q = 46.9
