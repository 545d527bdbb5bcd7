"""DST days, identical chargers as one aggregate, intraday initial state."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from flexopt.data.inputs import Horizon, Inputs
from flexopt.scheduling.problem import schedule


@pytest.mark.parametrize(("day", "n"), [(dt.date(2024, 3, 31), 92), (dt.date(2024, 10, 27), 100)])
def test_dst_days_have_their_true_length_and_local_sessions(tmp_path, portfolio_builder, day, n):
    horizon = Horizon.for_day(day, "Europe/Madrid")
    local = horizon.local
    # cheapest in the local hour 09:00-10:00, so the 08:00-11:00 session charges there
    prices = np.where(local.hour == 9, 0.10, 0.20)
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 11.0, "charge_efficiency": 1.0,
          "sessions": [{"arrival_local": "08:00", "departure_local": "11:00", "energy_kwh": 11.0}]}
    loaded, inputs = portfolio_builder.build(
        tmp_path, [{"id": "site-1", "assets": [ev, {"id": "load-1", "type": "load", "power_kw": 1.0}]}],
        day=day, tz="Europe/Madrid", series={"price": prices},
        tariff={"import_price_eur_per_kwh": {"source": "price"}})
    assert inputs.horizon.n == n
    res = schedule(loaded, inputs)
    assert len(res.schedule) == 2 * n
    ev_p = res.schedule[res.schedule.asset_id == "ev-1"].power_kw.to_numpy()
    np.testing.assert_allclose(ev_p[local.hour == 9], 11.0, atol=1e-6)
    assert np.abs(ev_p[local.hour != 9]).max() < 1e-6
    # the load is 1 kW for the day's real length: 23 h or 25 h
    hours = n / 4
    assert res.kpis["baseline_cost_eur"] == pytest.approx(
        (hours - 1) * 0.20 + 0.10 + 11 * 0.20, abs=1e-6)  # baseline EV: full power from 08:00 at 0.20
    assert res.kpis["cost_eur"] == pytest.approx((hours - 1) * 0.20 + 0.10 + 11 * 0.10, abs=1e-6)
    starts = res.schedule[res.schedule.asset_id == "ev-1"].interval_start
    assert starts.is_unique and starts.is_monotonic_increasing
    assert (res.schedule.interval_end - res.schedule.interval_start == pd.Timedelta(minutes=15)).all()


def test_identical_chargers_match_separate_chargers(tmp_path, portfolio_builder):
    prices = np.full(96, 0.20)
    prices[40:44] = 0.10  # 10:00-11:00
    prices[52:56] = 0.12  # 13:00-14:00
    session = {"arrival_local": "08:00", "departure_local": "17:00", "energy_kwh": 15.0}

    def run(sub, chargers):
        return schedule(*portfolio_builder.build(
            tmp_path / sub, [{"id": "depot", "assets": chargers}], series={"price": prices},
            tariff={"import_price_eur_per_kwh": {"source": "price"}}))

    lossless = {"charge_efficiency": 1.0}
    separate = run("a", [{"id": f"ev-{i}", "type": "ev_charger", "max_charge_kw": 11.0, "sessions": [session],
                          **lossless} for i in range(4)])
    grouped = run("b", [{"id": "evs", "type": "ev_charger", "count": 4, "max_charge_kw": 11.0,
                         "sessions": [session], **lossless}])
    # each vehicle: 11 kWh in the 0.10 hour, 4 kWh in the 0.12 hour
    expected = 4 * (11 * 0.10 + 4 * 0.12)
    assert separate.kpis["cost_eur"] == pytest.approx(expected, abs=1e-6)
    assert grouped.kpis["cost_eur"] == pytest.approx(expected, abs=1e-6)
    # energy per price level (within the 0.12 hour the quarter-hours are interchangeable)
    total = {"grouped": grouped.schedule.power_kw.to_numpy(),
             "separate": separate.schedule.groupby("interval_start").power_kw.sum().to_numpy()}
    for p in total.values():
        assert p[40:44].sum() * 0.25 == pytest.approx(44.0, abs=1e-6)
        assert p[52:56].sum() * 0.25 == pytest.approx(16.0, abs=1e-6)
    assert grouped.schedule.power_kw.max() == pytest.approx(44.0, abs=1e-6)
    assert grouped.schedule.setpoint.max() == pytest.approx(11.0, abs=1e-6)  # per charger
    # one integer "chargers on" per plugged-in interval, not one binary per charger
    assert grouped.kpis["solver"]["integers"] + grouped.kpis["solver"]["binaries"] == 36


def test_initial_state_overrides_start_values(tmp_path, portfolio_builder):
    start = pd.Timestamp("2024-06-01 12:00", tz="UTC")
    bess = {"id": "bess-1", "type": "battery", "power_kw": 5.0, "energy_kwh": 10.0, "soc_min_pct": 0.0,
            "soc_max_pct": 100.0, "charge_efficiency": 1.0, "discharge_efficiency": 1.0, "terminal_soc_pct": 80.0,
            "degradation_cost_eur_per_kwh": 0.01}
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 11.0, "current_type": "dc",
          "sessions": [{"arrival_local": "08:00", "departure_local": "16:00", "energy_kwh": 20.0}]}
    loaded, _ = portfolio_builder.build(tmp_path, [{"id": "site-1", "assets": [bess, ev]}])
    horizon = Horizon.between(start.to_pydatetime(), dt.datetime(2024, 6, 2), "UTC")
    inputs = Inputs(loaded, horizon)
    res = schedule(loaded, inputs, initial_state={"bess-1": {"soc_pct": 80}, "ev-1": {"energy_delivered_kwh": 14}})
    assert inputs.horizon.n == 48
    b = res.schedule[res.schedule.asset_id == "bess-1"]
    # flat price and a wear cost: cycling only costs, so the battery stays at its start (80 % = 8 kWh),
    # which is also its terminal target
    np.testing.assert_allclose(b.state.to_numpy(), 8.0, atol=1e-6)
    e = res.schedule[res.schedule.asset_id == "ev-1"]
    # 6 kWh still needed in the car before 16:00 (6 / 0.95 from the grid); the session started before the horizon
    assert e.state.iloc[15] == pytest.approx(20.0, abs=1e-6)
    assert e.power_kw.sum() * 0.25 == pytest.approx(6.0 / 0.95, abs=1e-6)
    assert res.kpis["cost_eur"] == pytest.approx(6.0 / 0.95 * 0.1, abs=1e-6)
    with pytest.raises(ValueError, match=r"unknown key.*soc_kwh.*allowed: soc_pct"):
        schedule(loaded, inputs, initial_state={"bess-1": {"soc_kwh": 3}})
    with pytest.raises(ValueError, match="unknown asset 'nope'"):
        schedule(loaded, inputs, initial_state={"nope": {"soc_pct": 3}})


def test_intraday_keeps_the_days_terminal_soc(tmp_path, portfolio_builder):
    # measured at 10 % at noon, the battery must still end the day at its configured 60 %: it buys the energy,
    # however it is priced, or the shortfall is a reported violation
    start = pd.Timestamp("2024-06-01 12:00", tz="UTC")
    bess = {"id": "bess-1", "type": "battery", "power_kw": 1.0, "energy_kwh": 10.0, "soc_min_pct": 0.0,
            "soc_max_pct": 100.0, "initial_soc_pct": 60.0, "charge_efficiency": 1.0, "discharge_efficiency": 1.0}
    loaded, _ = portfolio_builder.build(tmp_path, [{"id": "site-1", "assets": [bess]}])
    inputs = Inputs(loaded, Horizon.between(start.to_pydatetime(), dt.datetime(2024, 6, 2), "UTC"))
    res = schedule(loaded, inputs, initial_state={"bess-1": {"soc_pct": 10}})
    assert res.schedule.state.iloc[-1] == pytest.approx(6.0, abs=1e-6)
    assert res.violations == []
    # 2 kW of charging short of reach: 1 kWh/h for 3 h from 10 % cannot make 60 %, and the report says by how much
    late = Inputs(loaded, Horizon.between(dt.datetime(2024, 6, 1, 21), dt.datetime(2024, 6, 2), "UTC"))
    res = schedule(loaded, late, initial_state={"bess-1": {"soc_pct": 10}})
    (v,) = res.violations
    assert v.kind == "terminal_soc" and v.amount == pytest.approx(6.0 - 1.0 - 3.0, abs=1e-6)


def test_daily_patterns_follow_the_sites_own_clock(tmp_path, portfolio_builder):
    # a Madrid portfolio with a site in Lisbon (one hour behind): its 08:00-09:00 session is 07:00-08:00 UTC in June
    ev = {"id": "ev-lis", "type": "ev_charger", "max_charge_kw": 4.0, "charge_efficiency": 1.0,
          "sessions": [{"arrival_local": "08:00", "departure_local": "09:00", "energy_kwh": 4.0}]}
    loaded, inputs = portfolio_builder.build(
        tmp_path, [{"id": "lisbon", "timezone": "Europe/Lisbon", "assets": [ev]}], day=dt.date(2024, 6, 3),
        tz="Europe/Madrid")
    res = schedule(loaded, inputs)
    charging = res.schedule[res.schedule.power_kw > 1e-6].interval_start
    assert list(charging.dt.hour.unique()) == [7]
    assert charging.dt.tz_convert("Europe/Lisbon").dt.hour.unique().tolist() == [8]
    assert res.violations == []
