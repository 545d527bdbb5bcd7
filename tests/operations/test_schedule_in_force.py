"""The run in force after midnight: an intraday run of yesterday whose horizon reaches into today, unless a run of
today covers the time; the next intraday run starts from yesterday's run when today has none; dispatch follows."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flexopt.cli import app
from flexopt.config.loader import load_portfolio
from flexopt.operations.schedules import ScheduleNotFound, find_schedule_run
from flexopt.runs.intraday import initial_state_from_store, start_states
from flexopt.runs.runner import RunRequest, run_schedule

D0, D1 = dt.date(2024, 6, 12), dt.date(2024, 6, 13)


@pytest.fixture
def tiny(tmp_path) -> Path:
    hours = pd.date_range("2024-06-11T00:00Z", periods=24 * 4, freq="1h")
    price = np.where(hours.hour < 6, 0.05, np.where(hours.hour >= 18, 0.40, 0.20))
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": price}).to_csv(
        tmp_path / "prices.csv", index=False)
    doc = {"portfolio": {"name": "tiny", "timezone": "UTC", "resolution_min": 60},
           "data_sources": {"prices": {"path": "prices.csv", "column": "price", "unit": "EUR/kWh"}},
           "tariff": {"import_price_eur_per_kwh": {"source": "prices"}},
           "sites": [{"id": "home", "assets": [
               {"id": "bat", "type": "battery", "power_kw": 5, "energy_kwh": 10, "initial_soc_pct": 50},
               {"id": "house", "type": "load", "power_kw": 1}]}]}
    path = tmp_path / "portfolio.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def at(day: dt.date, hour: int, minute: int = 30) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC)


def run(portfolio: Path, store: Path, kind: str, day: dt.date, start: dt.datetime | None = None) -> Path:
    loaded = load_portfolio(portfolio)
    resolve = None if start is None else (lambda ld: start_states(ld, store, day, start))
    return run_schedule(RunRequest(portfolio_path=loaded.path, kind=kind, day=day, start=start, store=store,
                                   resolve_state=resolve)).directory


def test_yesterdays_run_is_in_force_after_midnight_until_today_has_one(tiny, tmp_path):
    store = tmp_path / "runs"
    run(tiny, store, "day-ahead", D0)
    late = run(tiny, store, "intraday", D0, at(D0, 14, 0))  # 14:00 today to 14:00 tomorrow
    assert late.parent.parent.name == D0.isoformat()  # filed under the day it starts
    rows = pd.read_parquet(late / "schedule.parquet")
    assert rows["interval_end"].max() == pd.Timestamp(at(D1, 14, 0))

    assert find_schedule_run(store, "tiny", D1, at(D1, 0)).path == late
    assert find_schedule_run(store, "tiny", D1, at(D1, 13)).path == late
    with pytest.raises(ScheduleNotFound, match="no schedule for tiny on 2024-06-13"):
        find_schedule_run(store, "tiny", D1, at(D1, 14))  # nothing reaches 14:00 tomorrow
    with pytest.raises(ScheduleNotFound, match="no schedule for tiny on 2024-06-13"):
        find_schedule_run(store, "tiny", D1)  # without a time: runs of that day only

    # the first intraday run after midnight continues from yesterday's run: no state from the configuration
    state, source, warnings = initial_state_from_store(load_portfolio(tiny), store, D1, at(D1, 3, 0))
    assert source == str(late) and not warnings
    expected = rows[(rows.asset_id == "bat") & (rows.interval_end == pd.Timestamp(at(D1, 3, 0)))]["state"].item()
    assert state["bat"]["soc_pct"] == pytest.approx(expected / 10 * 100)

    # an intraday run of today from 10:00: before it, yesterday's run is still in force
    today = run(tiny, store, "intraday", D1, at(D1, 10, 0))
    assert json.loads((today / "run.json").read_text())["initial_state_source"] == str(late)
    assert find_schedule_run(store, "tiny", D1, at(D1, 9)).path == late
    assert find_schedule_run(store, "tiny", D1, at(D1, 10)).path == today

    # a run of today that covers the time wins over yesterday's, whatever completed last
    ahead = run(tiny, store, "day-ahead", D1)
    assert find_schedule_run(store, "tiny", D1, at(D1, 0)).path == ahead
    assert find_schedule_run(store, "tiny", D1, at(D1, 10)).path == ahead  # the newest of today


def test_dispatch_follows_yesterdays_run_past_midnight(tiny, tmp_path):
    store = tmp_path / "runs"
    late = run(tiny, store, "intraday", D0, at(D0, 20, 0))
    result = CliRunner().invoke(app, ["dispatch", str(tiny), "--store", str(store), "--once", "--at",
                                      "2024-06-13T01:30", "--settle-s", "0"])
    assert result.exit_code == 0, result.output
    (record,) = (store / "tiny" / D1.isoformat() / "dispatch").glob("*.json")  # recorded under its own day
    assert json.loads(record.read_text())["schedule"]["path"] == str(late)
