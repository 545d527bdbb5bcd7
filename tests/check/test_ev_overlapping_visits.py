"""Two sessions of one charger entry that overlap in time are checked as their aggregate, and the breach says so."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import yaml

from flexopt.check import check_run
from flexopt.runs.runner import RunRequest, run_schedule

DAY = dt.date(2024, 6, 12)


def test_overlapping_visits_pass_as_scheduled_and_a_short_one_is_named_as_aggregate(tmp_path):
    hours = pd.date_range("2024-06-11T00:00Z", periods=72, freq="1h")
    price = np.where(hours.hour % 4 == 0, 0.05, 0.20)
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": price}).to_csv(
        tmp_path / "prices.csv", index=False)
    doc = {"portfolio": {"name": "ev-overlap", "timezone": "UTC"},
           "data_sources": {"prices": {"path": "prices.csv", "column": "price", "unit": "EUR/kWh"}},
           "tariff": {"import_price_eur_per_kwh": {"source": "prices"}},
           "sites": [{"id": "depot", "assets": [
               {"id": "ev", "type": "ev_charger", "count": 2, "max_charge_kw": 11, "current_type": "dc",
                "charge_efficiency": 1.0, "discharge_efficiency": 1.0,
                "sessions": [{"arrival_local": "08:00", "departure_local": "12:00", "energy_kwh": 5, "units": 1},
                             {"arrival_local": "10:00", "departure_local": "16:00", "energy_kwh": 6, "units": 1}]},
           ]}]}
    portfolio = tmp_path / "portfolio.yaml"
    portfolio.write_text(yaml.safe_dump(doc))
    run = run_schedule(RunRequest(portfolio_path=portfolio, kind="day-ahead", day=DAY, out=tmp_path / "run")).directory
    assert check_run(portfolio, run).unreported == []

    schedule = pd.read_parquet(run / "schedule.parquet")
    schedule["power_kw"] = np.where(schedule.interval_start.dt.hour >= 12, 0.0, schedule.power_kw)
    schedule.to_parquet(run / "schedule.parquet", index=False)
    short = [b for b in check_run(portfolio, run).unreported if b.kind == "ev_energy"]
    assert [b.t for b in short] == [63]  # the second car leaves at 16:00 without what it needs
    assert "aggregate of 2 overlapping visits" in short[0].note
