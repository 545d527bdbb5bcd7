"""Rolling horizons: how far a run looks (24 h across midnight, DST nights in elapsed hours, never before the day's
end, shortened where the prices end), the day's terminal SoC at its midnight rather than at the horizon's end, and
the next day's EV sessions and hot-water draws inside the horizon."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from flexopt.check import check_run
from flexopt.config.loader import LoadedPortfolio
from flexopt.config.portfolio import Portfolio
from flexopt.data.inputs import Inputs
from flexopt.data.timeseries import SeriesError
from flexopt.models.calendar import day_ends, hours_to_next_midnight
from flexopt.runs.horizon import plan_horizon
from flexopt.runs.runner import RunRequest, run_schedule
from flexopt.scheduling.problem import schedule

MADRID = "Europe/Madrid"


def portfolio(tmp_path: Path, sites: list[dict], prices: pd.Series, tz: str = MADRID) -> LoadedPortfolio:
    """A portfolio whose import and export price is ``prices`` (EUR/kWh, UTC index), written as a CSV file."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"timestamp": prices.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": prices.to_numpy()}).to_csv(
        tmp_path / "prices.csv", index=False)
    raw = {"portfolio": {"name": "rolling", "timezone": tz},
           "data_sources": {"prices": {"path": str(tmp_path / "prices.csv"), "column": "price", "unit": "EUR/kWh"}},
           "tariff": {"import_price_eur_per_kwh": {"source": "prices"},
                      "export_price_eur_per_kwh": {"source": "prices"}},
           "sites": sites}
    return LoadedPortfolio(portfolio=Portfolio.model_validate(raw), path=tmp_path / "p.yaml", files=[],
                           base_dir=tmp_path)


def hourly(first: str, last: str, value=0.1, tz: str = MADRID) -> pd.Series:
    """Hourly prices from local ``first`` to local ``last`` (inclusive), in UTC."""
    index = pd.date_range(pd.Timestamp(first, tz=tz), pd.Timestamp(last, tz=tz), freq="1h").tz_convert("UTC")
    values = value(index.tz_convert(tz)) if callable(value) else np.full(len(index), value)
    return pd.Series(values, index=index)


LOAD = {"id": "house", "type": "load", "power_kw": 1.0}


def local(ts: pd.Timestamp, tz: str = MADRID) -> str:
    return ts.tz_convert(tz).strftime("%Y-%m-%d %H:%M")


def test_intraday_looks_24_hours_ahead_across_midnight(tmp_path):
    loaded = portfolio(tmp_path, [{"id": "s", "assets": [LOAD]}], hourly("2024-06-11", "2024-06-14 23:00"))
    start = dt.datetime(2024, 6, 12, 14, tzinfo=ZoneInfo(MADRID))
    plan = plan_horizon(loaded, "intraday", start.date(), start, None)
    h = plan.horizon
    assert h.n == 96 and local(h.index[0]) == "2024-06-12 14:00" and local(h.ends[-1]) == "2024-06-13 14:00"
    assert local(plan.day_end) == "2024-06-13 00:00" and not plan.notes
    assert list(day_ends(h)) == [39]  # 23:45-24:00, the last interval of the scheduled day
    assert hours_to_next_midnight(h) == 10.0
    record = plan.record()
    assert record["requested_h"] == 24 and record["shortened"] is False
    # day-ahead keeps its local day unless asked; asked, it runs from its midnight
    assert plan_horizon(loaded, "day-ahead", start.date(), None, None).horizon.n == 96
    two = plan_horizon(loaded, "day-ahead", start.date(), None, 48).horizon
    assert two.n == 192 and list(day_ends(two)) == [95, 191] and hours_to_next_midnight(two) == 0.0


@pytest.mark.parametrize(("day", "start", "end", "intervals", "day_end"), [
    ("2024-10-26", "2024-10-26 14:00", "2024-10-27 13:00", 96, 39),  # the night the clocks go back: 25 h
    ("2024-03-30", "2024-03-30 14:00", "2024-03-31 15:00", 96, 39),  # the night the clocks go forward: 23 h
    ("2024-10-27", "2024-10-27 00:00", "2024-10-28 00:00", 100, 99),  # 24 h fall short of a 25-hour day
    ("2024-03-31", "2024-03-31 00:00", "2024-04-01 01:00", 96, 91),  # a 23-hour day and an hour of the next
])
def test_hours_are_elapsed_time_over_dst_nights(tmp_path, day, start, end, intervals, day_end):
    loaded = portfolio(tmp_path, [{"id": "s", "assets": [LOAD]}], hourly("2024-03-29", "2024-10-29"))
    first = pd.Timestamp(start, tz=MADRID).to_pydatetime()
    plan = plan_horizon(loaded, "intraday", dt.date.fromisoformat(day), first, 24)
    h = plan.horizon
    assert h.n == intervals and local(h.ends[-1]) == end
    assert list(day_ends(h)) == [day_end]
    assert bool(plan.notes) == (intervals == 100)  # extended to the day's end, and said so
    assert plan_horizon(loaded, "day-ahead", h.local[0].date(), None, None).horizon.n == (
        {"2024-10-27": 100, "2024-03-31": 92}.get(day, 96))


def test_horizon_never_ends_before_the_days_end(tmp_path):
    loaded = portfolio(tmp_path, [{"id": "s", "assets": [LOAD]}], hourly("2024-06-11", "2024-06-14 23:00"))
    start = dt.datetime(2024, 6, 12, 14, tzinfo=ZoneInfo(MADRID))
    plan = plan_horizon(loaded, "intraday", start.date(), start, 2)
    assert plan.horizon.n == 40 and local(plan.horizon.ends[-1]) == "2024-06-13 00:00"
    assert plan.notes and "extended" in plan.notes[0] and "terminal conditions" in plan.notes[0]
    with pytest.raises(ValueError, match="whole number of 15-minute intervals"):
        plan_horizon(loaded, "intraday", start.date(), start, 0.1)


def test_prices_that_end_sooner_shorten_the_horizon_with_a_note(tmp_path):
    sites = [{"id": "s", "assets": [LOAD]}]
    start = dt.datetime(2024, 6, 12, 14, tzinfo=ZoneInfo(MADRID))
    # tomorrow's prices not published yet: the run goes to the end of today and says why
    loaded = portfolio(tmp_path / "a", sites, hourly("2024-06-11", "2024-06-12 23:00"))
    plan = plan_horizon(loaded, "intraday", start.date(), start, None)
    assert plan.horizon.n == 40 and local(plan.horizon.ends[-1]) == "2024-06-13 00:00"
    (note,) = plan.notes
    assert "shortened" in note and "'prices'" in note and "2024-06-13T00:00+02:00" in note
    assert plan.record()["shortened"] is True
    # known until 05:00 tomorrow: the horizon ends there, on the interval grid
    loaded = portfolio(tmp_path / "b", sites, hourly("2024-06-11", "2024-06-13 04:00"))
    plan = plan_horizon(loaded, "intraday", start.date(), start, None)
    assert local(plan.horizon.ends[-1]) == "2024-06-13 05:00" and plan.horizon.n == 60

    # the whole run: filed under the day it starts, the note in run.json and in the progress lines
    messages: list[str] = []
    path = write_yaml(tmp_path / "c", sites, hourly("2024-06-11", "2024-06-12 23:00"))
    out = run_schedule(RunRequest(portfolio_path=path, kind="intraday", day=start.date(), start=start,
                                  out=tmp_path / "run"), messages.append)
    record = __import__("json").loads((out.directory / "run.json").read_text())
    assert record["horizon"]["intervals"] == 40 and record["horizon"]["shortened"] is True
    assert any("shortened" in m for m in messages)


def test_prices_that_end_before_the_days_end_still_fail(tmp_path):
    start = dt.datetime(2024, 6, 12, 14, tzinfo=ZoneInfo(MADRID))
    path = write_yaml(tmp_path, [{"id": "s", "assets": [LOAD]}], hourly("2024-06-11", "2024-06-12 15:00"))
    with pytest.raises(SeriesError, match="prices"):
        run_schedule(RunRequest(portfolio_path=path, kind="intraday", day=start.date(), start=start,
                                out=tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def write_yaml(folder: Path, sites: list[dict], prices: pd.Series, tz: str = MADRID) -> Path:
    import yaml

    loaded = portfolio(folder, sites, prices, tz)
    doc = loaded.portfolio.model_dump(mode="json", exclude_defaults=True)
    path = folder / "portfolio.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


BATTERY = {"id": "bess", "type": "battery", "power_kw": 1.0, "energy_kwh": 10.0, "soc_min_pct": 0.0,
           "soc_max_pct": 100.0, "initial_soc_pct": 60.0, "charge_efficiency": 1.0, "discharge_efficiency": 1.0}


def soc_at(res, t: int) -> float:
    return float(res.schedule[res.schedule.asset_id == "bess"]["state"].iloc[t])


def test_battery_keeps_the_days_target_at_midnight_not_at_the_horizons_end(tmp_path):
    # dear at 23:00 and tomorrow morning: without the day's end it would sell at 23:00; it must hold 6 kWh at
    # midnight, then it may sell down to empty by noon tomorrow (12 h of charging can still reach the target)
    prices = hourly("2024-06-01", "2024-06-03", lambda t: np.where((t.hour == 23) | ((t.hour >= 8) & (t.hour < 12)),
                                                                    0.5, 0.1), tz="UTC")
    loaded = portfolio(tmp_path, [{"id": "s", "assets": [BATTERY, LOAD]}], prices, tz="UTC")
    start = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
    plan = plan_horizon(loaded, "intraday", start.date(), start, 24)
    res = schedule(loaded, Inputs(loaded, plan.horizon))
    assert soc_at(res, 47) >= 6.0 - 1e-6  # 23:45-24:00: the day's end
    power = res.schedule[res.schedule.asset_id == "bess"]["power_kw"].to_numpy()
    assert power[44:48].sum() * 0.25 == pytest.approx(-1.0, abs=1e-6)  # serves the dear 23:00 hour
    assert power[80:96].sum() * 0.25 == pytest.approx(-4.0, abs=1e-6)  # and the dear morning, refilled at 0.1
    assert res.violations == []


@pytest.mark.parametrize("efficiency", [1.0, 0.9])
def test_energy_left_to_be_put_back_after_the_horizon_is_not_free(tmp_path, efficiency):
    """Flat prices, an evening run: emptying the battery after midnight and leaving the refill to after the
    horizon saved the energy's price for nothing (the reference of a UFTP offer near midnight did this). What the
    SoC lacks of the day's target at the horizon's end costs what putting it back does, so it stays."""
    battery = BATTERY | {"charge_efficiency": efficiency, "discharge_efficiency": efficiency}
    prices = hourly("2024-06-01", "2024-06-03", 0.2, tz="UTC")
    loaded = portfolio(tmp_path, [{"id": "s", "assets": [battery, LOAD]}], prices, tz="UTC")
    start = dt.datetime(2024, 6, 1, 23, tzinfo=dt.UTC)
    plan = plan_horizon(loaded, "intraday", start.date(), start, 24)  # ends at 23:00 tomorrow
    res = schedule(loaded, Inputs(loaded, plan.horizon))
    assert soc_at(res, plan.horizon.n - 1) == pytest.approx(6.0, abs=1e-6)
    power = res.schedule[res.schedule.asset_id == "bess"]["power_kw"].to_numpy()
    assert np.abs(power).max() == pytest.approx(0.0, abs=1e-6)  # nothing to gain: it idles


def test_a_horizon_ending_late_in_a_day_keeps_its_target_reachable(tmp_path):
    prices = hourly("2024-06-01", "2024-06-03", lambda t: np.where(t.hour >= 21, 0.5, 0.1), tz="UTC")
    loaded = portfolio(tmp_path, [{"id": "s", "assets": [BATTERY, LOAD]}], prices, tz="UTC")
    start = dt.datetime(2024, 6, 1, 23, tzinfo=dt.UTC)
    plan = plan_horizon(loaded, "intraday", start.date(), start, 24)  # ends at 23:00 tomorrow
    res = schedule(loaded, Inputs(loaded, plan.horizon))
    assert soc_at(res, 3) == pytest.approx(6.0, abs=1e-6)  # today's end
    assert soc_at(res, plan.horizon.n - 1) >= 5.0 - 1e-6  # 1 h at 1 kW still reaches 6 kWh
    power = res.schedule[res.schedule.asset_id == "bess"]["power_kw"].to_numpy()
    assert power[-8:].sum() * 0.25 == pytest.approx(-2.0, abs=1e-6)  # serves tomorrow's dear 21:00-23:00


def test_a_short_day_end_is_reported_at_the_days_last_interval(tmp_path):
    prices = hourly("2024-06-01", "2024-06-03", 0.1, tz="UTC")
    loaded = portfolio(tmp_path, [{"id": "s", "assets": [BATTERY]}], prices, tz="UTC")
    start = dt.datetime(2024, 6, 1, 21, tzinfo=dt.UTC)
    plan = plan_horizon(loaded, "intraday", start.date(), start, 24)
    res = schedule(loaded, Inputs(loaded, plan.horizon), initial_state={"bess": {"soc_pct": 10}})
    (v,) = res.violations  # 3 h at 1 kW from 1 kWh make 4 of 6 kWh by midnight; tomorrow's end is reachable
    assert v.kind == "terminal_soc" and v.amount == pytest.approx(2.0, abs=1e-6)
    assert v.start == pd.Timestamp("2024-06-01 23:45", tz="UTC") and "end of 2024-06-01" in v.detail


def test_next_days_sessions_and_draws_are_in_the_horizon_over_the_autumn_dst_night(tmp_path):
    """From 14:00 the day before the clocks go back: tomorrow's overnight car and its 02:30 draw (the first of the
    two 02:30s) are scheduled, the day's terminal SoC holds at midnight, and the run passes the physics check."""
    ev = {"id": "ev", "type": "ev_charger", "max_charge_kw": 3.7, "current_type": "dc",
          "sessions": [{"arrival_local": "00:00", "departure_local": "07:30", "energy_kwh": 8.0}]}
    tank = {"id": "dhw", "type": "water_heater", "volume_l": 150, "element_kw": 2.0, "initial_temp_c": 60.0,
            "draws": [{"at_local": "02:30", "litres": 60}, {"at_local": "20:00", "litres": 40}]}
    cheap_night = hourly("2024-10-24", "2024-10-29", lambda t: np.where((t.hour >= 1) & (t.hour < 5), 0.05, 0.2))
    path = write_yaml(tmp_path, [{"id": "home", "assets": [BATTERY, ev, tank, LOAD]}], cheap_night)
    start = dt.datetime(2024, 10, 26, 14, tzinfo=ZoneInfo(MADRID))
    out = run_schedule(RunRequest(portfolio_path=path, kind="intraday", day=start.date(), start=start,
                                  out=tmp_path / "run"))
    rows = out.result.schedule
    ev_rows = rows[rows.asset_id == "ev"].set_index("interval_start")
    tomorrow = ev_rows.index.tz_convert(MADRID).date == dt.date(2024, 10, 27)
    assert ev_rows.loc[tomorrow, "power_kw"].sum() * 0.25 * 0.95 == pytest.approx(8.0, abs=1e-6)
    tank_t = rows[rows.asset_id == "dhw"].set_index("interval_start")["state"]
    drop = tank_t.diff()
    assert drop.idxmin() == pd.Timestamp("2024-10-27 00:30", tz="UTC")  # 02:30 CEST, before the clocks go back
    bess = rows[rows.asset_id == "bess"]["state"].to_numpy()
    assert bess[39] >= 6.0 - 1e-6  # 23:45-24:00 on the 26th
    assert out.result.violations == []
    assert check_run(path, out.directory).unreported == []
