"""Water heater: never below its minimum, heating in the cheapest quarter-hours; identical heaters aggregated."""

from __future__ import annotations

import numpy as np
import pytest

from flexopt.scheduling.problem import schedule

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
    # integers: elements on + the coldest and the hottest tank's on/off per interval, not 30 binaries per interval
    assert res.kpis["solver"]["binaries"] + res.kpis["solver"]["integers"] <= 3 * 96
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


def _round_robin_tanks(on_share: np.ndarray, count: int, t0: float, step_k: float, draw_k: np.ndarray) -> np.ndarray:
    """Every tank's temperature when each interval's elements go to the tanks heated least so far (ties: first)."""
    heated = np.zeros(count)
    temps = np.full(count, t0)
    out = np.zeros((len(on_share), count))
    for t, share in enumerate(on_share):
        k = round(share * count)
        chosen = np.argsort(heated, kind="stable")[:k]
        heated[chosen] += 1
        temps = temps - draw_k[t]
        temps[chosen] += step_k
        out[t] = temps
    return out


def test_hottest_tank_of_a_group_stays_under_its_cut_out(tmp_path, portfolio_builder):
    # 30 l tanks: one quarter-hour of a 2 kW element is 14.3 K. A cheap night invites heating to the cut-out; on
    # the mean temperature alone the group overshoots it on the tanks that got one more quarter-hour
    prices = np.full(96, 0.30)
    prices[8:24] = 0.02
    tank = _heater("wh", count=3, volume_l=30.0, initial_temp_c=50.0, max_temp_c=75.0,
                   draws=[{"at_local": "07:00", "litres": 40.0}, {"at_local": "19:00", "litres": 40.0}])
    loaded, inputs = portfolio_builder.build(tmp_path, [{"id": "site-1", "assets": [tank]}],
                                             series={"price": prices},
                                             tariff={"import_price_eur_per_kwh": {"source": "price"}})
    res = schedule(loaded, inputs)
    cap = 30 * 4.186 / 3600
    draw = np.zeros(96)
    draw[[28, 76]] = 40 * 25 / 30
    tanks = _round_robin_tanks(res.schedule.setpoint.to_numpy(), 3, 50.0, 0.5 / cap, draw)
    assert tanks.max() <= 75.0 + 1e-6
    assert tanks.max() > 75.0 - 0.5 / cap  # it does fill the tanks in the cheap night
    np.testing.assert_allclose(tanks.mean(axis=1), res.schedule.state.to_numpy(), atol=1e-6)
    assert not [v for v in res.violations if v.kind == "tank_temp_high"]
    low = [v for v in res.violations if v.kind == "tank_temp_low"]
    assert tanks.min() >= 45.0 - 1e-6 or low


def test_draw_larger_than_a_full_tank_is_unmet_hot_water_never_a_subzero_tank(tmp_path, portfolio_builder):
    # 1000 l at 40 degC from a 200 l tank asks for 125 K: a full tank (75 degC) gives 60 K down to the 15 degC
    # cold water, the rest (65 K = 15.1 kWh) is unmet and reported; the tank is then at 15 degC, not -50 degC
    res = _run(tmp_path, portfolio_builder, [_heater("wh-1", draws=[{"at_local": "20:00", "litres": 1000.0}])])
    temp = res.schedule.state.to_numpy()
    assert temp.min() >= 15.0 - 1e-6
    assert temp[79] == pytest.approx(75.0, abs=0.5 / C_KWH_PER_K)  # as full as whole quarter-hours make it
    unmet = [v for v in res.violations if v.kind == "hot_water_unmet"]
    assert len(unmet) == 1 and unmet[0].unit == "kWh"
    # what the tank held above cold water and the element gave during the draw's quarter-hour was supplied
    heat_80 = res.schedule.power_kw.iloc[80] * 0.25
    assert unmet[0].amount == pytest.approx((125 - (temp[79] - 15.0)) * C_KWH_PER_K - heat_80, abs=1e-6)
    assert unmet[0].start == res.schedule.interval_start.iloc[80]
    assert temp[80] == pytest.approx(15.0, abs=1e-6)


def test_a_draw_in_the_hour_the_clock_skips_happens_when_it_jumps(tmp_path, portfolio_builder):
    import datetime as dt

    from flexopt.data.inputs import Horizon
    from flexopt.models.calendar import instants

    spring = Horizon.for_day(dt.date(2024, 3, 31), "Europe/Madrid")  # 02:00 -> 03:00
    (t,) = instants(spring, dt.time(2, 30))
    assert spring.local[t].hour == 3 and spring.local[t].minute == 0
    autumn = Horizon.for_day(dt.date(2024, 10, 27), "Europe/Madrid")  # 03:00 -> 02:00: the first 02:30 counts
    (t,) = instants(autumn, dt.time(2, 30))
    assert autumn.local[t].hour == 2 and autumn.local[t].minute == 30 and autumn.index[t].hour == 0
    late = Horizon.between(dt.datetime(2024, 6, 1, 14), dt.datetime(2024, 6, 2), "Europe/Madrid")
    assert instants(late, dt.time(7, 0)).size == 0  # a draw before an intraday start is not in its horizon
