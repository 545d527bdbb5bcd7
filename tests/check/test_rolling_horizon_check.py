"""`flexopt check` on runs that cross midnight: the terminal SoC at every local day's end inside the horizon (not
at the horizon's end), and a horizon that covers its day and no more than run.json says was asked for."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from flexopt.check import check_run
from flexopt.runs.runner import RunRequest, run_schedule

DAY = dt.date(2024, 6, 12)


def slow_battery(folder: Path) -> Path:
    """1 kWh at the start, 9 kWh wanted at each day's end, 0.25 kW: 2 kWh short at the first midnight only."""
    folder.mkdir(parents=True)
    hours = pd.date_range("2024-06-11T00:00Z", periods=24 * 4, freq="1h")
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "price": np.where(hours.hour < 6, 0.05, 0.2)}).to_csv(folder / "prices.csv", index=False)
    doc = {"portfolio": {"name": "slow", "timezone": "UTC"},
           "data_sources": {"prices": {"path": "prices.csv", "column": "price", "unit": "EUR/kWh"}},
           "tariff": {"import_price_eur_per_kwh": {"source": "prices"}},
           "sites": [{"id": "home", "assets": [
               {"id": "bat", "type": "battery", "power_kw": 0.25, "energy_kwh": 10, "soc_min_pct": 0,
                "soc_max_pct": 100, "initial_soc_pct": 10, "terminal_soc_pct": 90, "charge_efficiency": 1.0,
                "discharge_efficiency": 1.0}]}]}
    path = folder / "portfolio.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_terminal_soc_is_checked_at_each_days_end(tmp_path):
    portfolio = slow_battery(tmp_path / "p")
    run = run_schedule(RunRequest(portfolio_path=portfolio, kind="day-ahead", day=DAY, horizon_h=48,
                                  out=tmp_path / "run")).directory
    kpis = json.loads((run / "kpis.json").read_text())
    (violation,) = kpis["violations"]["list"]
    assert violation["kind"] == "terminal_soc" and violation["start"].startswith("2024-06-12T23:45")
    result = check_run(portfolio, run)
    assert result.unreported == []
    assert [(b.kind, b.t) for b in result.breaches] == [("terminal_soc", 95)]  # not at 191, the second midnight

    kpis["violations"] = {"count": 0, "list": []}  # a run that keeps quiet about the first midnight
    (run / "kpis.json").write_text(json.dumps(kpis))
    (breach,) = check_run(portfolio, run).unreported
    assert (breach.kind, breach.t, round(breach.amount, 6)) == ("terminal_soc", 95, 2.0)


def test_horizon_covers_its_day_and_no_more_than_asked(tmp_path):
    portfolio = slow_battery(tmp_path / "p")
    start = dt.datetime(2024, 6, 12, 14, tzinfo=dt.UTC)
    run = run_schedule(RunRequest(portfolio_path=portfolio, kind="intraday", day=DAY, start=start,
                                  out=tmp_path / "run")).directory
    record = json.loads((run / "run.json").read_text())
    assert record["horizon"]["intervals"] == 96
    assert not [b for b in check_run(portfolio, run).breaches if b.kind == "horizon"]

    record["horizon"]["requested_end_utc"] = "2024-06-13T06:00:00+00:00"  # asked for less than it has
    (run / "run.json").write_text(json.dumps(record))
    (breach,) = [b for b in check_run(portfolio, run).unreported if b.kind == "horizon"]
    assert "later than run.json says was asked for" in breach.note

    record["date"] = "2024-06-13"  # filed under a day it does not start in, and ending before that day's end
    (run / "run.json").write_text(json.dumps(record))
    notes = [b.note for b in check_run(portfolio, run).unreported if b.kind == "horizon"]
    assert any("before the end of the local day 2024-06-13" in n for n in notes)
    assert any("outside that local day" in n for n in notes)
