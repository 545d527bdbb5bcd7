"""Each breach kind, injected into a copy of a real run folder, is found and named; the untampered run passes.

The clean portfolio (conftest.py) is scheduled once by the real model; every test tampers with its own copy of the
run folder (schedule.parquet, sites.parquet, kpis.json, run.json) and checks it with the real checker.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from flexopt.check import check_run
from flexopt.config.loader import load_portfolio
from flexopt.runs.intraday import state_at
from flexopt.runs.runner import RunRequest, run_schedule

WATER_KWH_PER_L_K = 4.186 / 3600


def _power(run, asset_id: str) -> np.ndarray:
    s = pd.read_parquet(run / "schedule.parquet")
    return s.loc[s.asset_id == asset_id, "power_kw"].to_numpy()


def _with_power(schedule: pd.DataFrame, asset_id: str, power_kw) -> pd.DataFrame:
    schedule.loc[schedule.asset_id == asset_id, "power_kw"] = power_kw
    return schedule


def test_the_untampered_run_passes_and_its_reported_violation_is_recognised(kit, clean_run):
    result = check_run(clean_run.portfolio, clean_run.run)
    assert result.unreported == []
    reported = {(b.kind, b.subject) for b in result.breaches if b.reported}
    # the DSO window 18:00-20:00 (5 kW) cannot be met: the model reports it, the checker finds it reported
    assert reported == {("congestion_import_limit", "cp")}
    local = {result.horizon.index[b.t].tz_convert(kit.TZ).strftime("%H:%M") for b in result.breaches}
    assert min(local) == "18:00" and max(local) == "20:45"  # 18:00-21:00: both windows, the tighter one wins


def test_power_above_the_rating(kit, clean_run, tampered):
    kit.shift_power(tampered, "bat", 10, 6.0 - _power(tampered, "bat")[10])
    assert ("power_limit", "bat") in kit.unreported(clean_run.portfolio, tampered)


def test_soc_jump_is_simultaneous_charge_and_discharge(kit, clean_run, tampered):
    """The SoC drops by 0.4 kWh with the power unchanged: energy burnt by charging and discharging at once."""
    kit.edit_parquet(tampered, "schedule.parquet", lambda s: s.assign(
        state=s.state - np.where((s.asset_id == "bat") & (s.groupby("asset_id").cumcount() >= 30), 0.4, 0.0)))
    result = check_run(clean_run.portfolio, tampered)
    assert {(b.kind, b.subject, b.t) for b in result.unreported} == {("soc_dynamics", "bat", 30)}
    assert result.unreported[0].amount == pytest.approx(0.4, abs=1e-6)


def test_climate_heating_and_cooling_at_once(kit, clean_run, tampered):
    """One more kW with the temperature unchanged: it follows neither heating nor cooling with the whole power."""
    kit.shift_power(tampered, "zone", 20, 1.0)
    found = kit.unreported(clean_run.portfolio, tampered)
    assert ("thermal_mode", "zone") in found
    assert ("site_balance", "home") not in found


def test_ev_charged_beyond_the_vehicles_full_battery(kit, clean_run, tampered):
    """The V2G car arrives at 08:00 with 18 of 60 kWh; charging 7.4 kW all day would put 88 kWh in."""
    start = pd.Timestamp(f"{kit.DAY}T08:00", tz=kit.TZ).tz_convert("UTC")
    end = pd.Timestamp(f"{kit.DAY}T20:00", tz=kit.TZ).tz_convert("UTC")
    kit.edit_parquet(tampered, "schedule.parquet", lambda s: s.assign(power_kw=np.where(
        (s.asset_id == "v2g") & (s.interval_start >= start) & (s.interval_start < end), 7.4, s.power_kw)))
    found = kit.unreported(clean_run.portfolio, tampered)
    assert ("ev_battery_full", "v2g") in found
    assert ("power_limit", "v2g") not in found  # one unit plugged: 7.4 kW is its rating


def test_hottest_tank_of_a_group_above_its_cut_out(kit, clean_run, tampered):
    """Seven intervals with all three elements on, then one: the tank that got eight intervals of heat passes the
    90 degC cut-out by 3.37 K while the mean is 0.50 K above it; the run reports only the mean."""
    cap = 100 * WATER_KWH_PER_L_K
    step, loss = 2.0 * 0.25 / cap, 0.25 * 1.5e-3 * (60 - 20) / cap
    hottest, mean = 60 - 8 * loss + 8 * step, 60 - 8 * loss + 22 / 3 * step
    assert 60 - 7 * loss + 7 * step < 90 < mean < hottest
    power = np.zeros(96)
    power[:7], power[7] = 6.0, 2.0
    kit.edit_parquet(tampered, "schedule.parquet", lambda s: _with_power(s, "boilers", power))
    horizon_start = pd.read_parquet(tampered / "schedule.parquet").interval_start.min()

    def report(amount):
        def edit(k):
            k["violations"]["list"] = [*k["violations"]["list"], {
                "kind": "tank_temp_high", "site_id": "home", "asset_id": "boilers", "congestion_point": None,
                "start": horizon_start.isoformat(), "end": (horizon_start + pd.Timedelta(days=1)).isoformat(),
                "amount": amount, "unit": "degC", "detail": "injected"}]
        return edit

    kit.edit_kpis(tampered, report(mean - 90))
    high = [b for b in check_run(clean_run.portfolio, tampered).breaches if b.kind == "tank_temp_high"]
    assert min(b.t for b in high) == 7
    first = next(b for b in high if b.t == 7)
    assert first.amount == pytest.approx(hottest - 90, abs=1e-6)
    assert not first.reported
    kit.edit_kpis(tampered, report(hottest - 90))  # a report as large as the hottest tank's excess covers it
    assert all(b.reported for b in check_run(clean_run.portfolio, tampered).breaches
               if b.kind == "tank_temp_high" and b.amount <= hottest - 90 + 1e-9)


def test_tank_emptied_below_cold_water(kit, clean_run, tampered):
    """No heating at all: the 120 l evening draw takes more heat than the tank holds above 15 degC."""
    kit.edit_parquet(tampered, "schedule.parquet", lambda s: _with_power(s, "boiler", 0.0))
    result = check_run(clean_run.portfolio, tampered)
    unmet = [b for b in result.unreported if b.kind == "hot_water_unmet"]
    assert [b.subject for b in unmet] == ["boiler"]
    assert result.horizon.index[unmet[0].t].tz_convert(kit.TZ).strftime("%H:%M") == "21:00"
    # the simulated tank stops at the cold-water temperature, it never reports an impossible one
    low = [b for b in result.breaches if b.kind == "tank_temp_low" and b.subject == "boiler"]
    assert min(b.value for b in low) == pytest.approx(15.0)


def test_site_balance_mismatch(kit, clean_run, tampered):
    kit.edit_parquet(tampered, "sites.parquet", lambda s: s.assign(
        net_kw=s.net_kw + np.where((s.id == "home") & (s.interval_start == s.interval_start.min()), 1.0, 0.0)))
    assert kit.unreported(clean_run.portfolio, tampered) == {("site_balance", "home")}


def test_cost_mismatch(kit, clean_run, tampered):
    kit.edit_kpis(tampered, lambda k: k.update(cost_eur=k["cost_eur"] + 0.01))
    assert kit.unreported(clean_run.portfolio, tampered) == {("cost", "run")}


@pytest.mark.parametrize("how", ["removed", "too_small"])
def test_unreported_congestion_breach(kit, clean_run, tampered, how):
    def edit(k):
        items = k["violations"]["list"]
        if how == "removed":
            k["violations"]["list"] = [v for v in items if v["kind"] != "congestion_import_limit"]
        else:
            for v in items:
                v["amount"] /= 2
    kit.edit_kpis(tampered, edit)
    assert kit.unreported(clean_run.portfolio, tampered) == {("congestion_import_limit", "cp")}


def test_congestion_limit_from_a_tighter_dso_window(clean_run, tmp_path):
    """The DSO file read again: a window the run did not know about limits its intervals."""
    folder = tmp_path / "portfolio"
    folder.mkdir()
    for f in clean_run.portfolio.parent.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    with (folder / "dso.csv").open("a") as fh:
        fh.write("cp,2024-06-12T03:10:00+02:00,2024-06-12T03:20:00+02:00,1,\n")
    found = check_run(folder / "portfolio.yaml", clean_run.run).unreported
    hit = {(b.kind, pd.Timestamp(0) if b.t is None else b.t) for b in found}
    # 03:00-03:15 and 03:15-03:30 overlap the window; the sites file shows the old limit there
    assert {k for k, _ in hit} == {"congestion_import_limit", "limit_column"}
    assert {t for _, t in hit} == {12, 13}


def test_terminal_soc_short(kit, clean_run, tampered):
    last = _power(tampered, "bat")[-1]
    assert last > -4.0
    kit.shift_power(tampered, "bat", 95, -5.0 - last)
    assert ("terminal_soc", "bat") in kit.unreported(clean_run.portfolio, tampered)


def test_power_outside_a_session(kit, clean_run, tampered):
    kit.shift_power(tampered, "ev", 40, 3.0)  # 10:00 local, the car comes at 18:00
    found = check_run(clean_run.portfolio, tampered).unreported
    assert ("ev_unplugged", "ev", 40) in {(b.kind, b.subject, b.t) for b in found}


def test_a_missing_row(kit, clean_run, tampered):
    kit.edit_parquet(tampered, "schedule.parquet",
                 lambda s: s.drop(s.index[(s.asset_id == "house")][5]).reset_index(drop=True))
    found = check_run(clean_run.portfolio, tampered).unreported
    assert ("missing_row", "house", 5) in {(b.kind, b.subject, b.t) for b in found}


def test_a_duplicate_row_and_a_row_of_an_unknown_asset(kit, clean_run, tampered):
    def edit(s):
        extra = s[s.asset_id == "house"].head(1)
        return pd.concat([s, extra, extra.assign(asset_id="ghost")], ignore_index=True)
    kit.edit_parquet(tampered, "schedule.parquet", edit)
    found = kit.unreported(clean_run.portfolio, tampered)
    assert {("duplicate_row", "house"), ("unknown_row", "ghost")} <= found


def test_horizon_not_the_local_day_of_the_run(kit, clean_run, tampered):
    run = json.loads((tampered / "run.json").read_text())
    run["date"] = (kit.DAY + dt.timedelta(days=1)).isoformat()
    (tampered / "run.json").write_text(json.dumps(run))
    assert ("horizon", "run") in kit.unreported(clean_run.portfolio, tampered)


@pytest.fixture(scope="module")
def intraday_run(kit, clean_run, tmp_path_factory):
    """The clean portfolio re-optimised from 12:00 (the V2G car is plugged in) from the day-ahead run's states."""
    loaded = load_portfolio(clean_run.portfolio)
    start = dt.datetime.combine(kit.DAY, dt.time(12), tzinfo=loaded.portfolio.tz)
    state = state_at(pd.read_parquet(clean_run.run / "states.parquet"), loaded, start)
    assert "energy_delivered_kwh" in state["v2g"]
    out = tmp_path_factory.mktemp("intraday") / "run"
    return run_schedule(RunRequest(portfolio_path=clean_run.portfolio, kind="intraday", day=kit.DAY, start=start,
                                   out=out, initial_state=state, state_source=str(clean_run.run))).directory


def test_intraday_run_from_the_expected_states_passes(clean_run, intraday_run):
    assert check_run(clean_run.portfolio, intraday_run).unreported == []


def test_intraday_run_that_forgets_a_start_state(kit, clean_run, intraday_run, tmp_path):
    run = kit.copy_run(intraday_run, tmp_path / "run")
    record = json.loads((run / "run.json").read_text())
    del record["initial_state"]["bat"]
    (run / "run.json").write_text(json.dumps(record))
    found = kit.unreported(clean_run.portfolio, run)
    assert ("start_state", "bat") in found
