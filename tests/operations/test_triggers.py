"""Dispatch's own re-optimisation: after N consecutive deviating rounds and not before, never again within the
minimum interval, when the DSO limits file changes; a re-run is a real ``flexopt schedule intraday`` run whose
outcome goes into the round's record, and a failed one leaves the schedule in force and is a critical alarm."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console

from flexopt.adapters.clock import SimClock
from flexopt.commands.reoptimise import Reoptimise
from flexopt.config.loader import load_portfolio
from flexopt.operations.schedules import find_schedule_run
from flexopt.operations.triggers import ReoptimisationTrigger, TriggerOptions, round_deviation_kw
from flexopt.runs.locks import held
from flexopt.runs.runner import RunRequest, run_schedule
from flexopt.runs.store import schedule_lock_path

DAY = dt.date(2024, 6, 12)
T0 = dt.datetime(2024, 6, 12, 10, 0, tzinfo=dt.UTC)


def record(deviation_kw: float | None, kind: str = "exact", schedule: str | None = None) -> dict:
    """A round record as dispatch writes it, trimmed to what the trigger reads."""
    return {"at": T0.isoformat(), "summary": {"alarms_critical": 0, "alarms_warning": 0},
            "schedule": {"path": schedule} if schedule else None, "alarms": [],
            "assets": {"bat": {"setpoint_kind": kind, "deviation_kw": deviation_kw},
                       "ev": {"setpoint_kind": "import_ceiling", "deviation_kw": -4.0}}}


def every_15_min(n: int) -> list[dt.datetime]:
    return [T0 + dt.timedelta(minutes=15 * k) for k in range(n)]


def test_the_round_deviation_counts_ceilings_one_way():
    assert round_deviation_kw(record(-3.0)) == 3.0  # the charger drawing 4 kW less than its ceiling is no deviation
    assert round_deviation_kw(record(2.0, "export_ceiling")) == 0.0
    assert round_deviation_kw(record(None)) == 0.0


def test_fires_after_n_deviating_rounds_in_a_row_and_not_before():
    trigger = ReoptimisationTrigger(TriggerOptions(deviation_kw=5.0, after_rounds=3, min_interval_min=60))
    times = every_15_min(6)
    assert trigger.observe(record(6.0), times[0]) is None
    assert trigger.observe(record(6.0), times[1]) is None
    assert trigger.observe(record(1.0), times[2]) is None  # the streak breaks
    assert trigger.observe(record(6.0), times[3]) is None
    assert trigger.observe(record(6.0), times[4]) is None
    decision = trigger.observe(record(7.5), times[5])
    assert decision is not None and decision.fire
    assert decision.reasons == ["deviation 7.50 kW above 5 kW for 3 consecutive rounds"]


def test_respects_the_minimum_interval_between_re_runs():
    trigger = ReoptimisationTrigger(TriggerOptions(deviation_kw=5.0, after_rounds=1, min_interval_min=60))
    times = every_15_min(8)
    assert trigger.observe(record(9.0), times[0]).fire
    trigger.ran(times[0], ok=True)
    for t in times[1:4]:  # 15, 30 and 45 minutes later: held back
        decision = trigger.observe(record(9.0), t)
        assert not decision.fire and decision.held_until == times[0] + dt.timedelta(hours=1)
    assert trigger.observe(record(9.0), times[4]).fire  # an hour later


def test_a_change_of_the_dso_limits_file_triggers(tmp_path):
    limits = tmp_path / "limits.csv"
    limits.write_text("congestion_point,start,end,max_import_kw,max_export_kw\n")
    trigger = ReoptimisationTrigger(TriggerOptions(dso_limits_file=limits, min_interval_min=0))
    assert trigger.observe(record(50.0), T0) is None  # no deviation threshold: deviations never trigger
    limits.write_text("congestion_point,start,end,max_import_kw,max_export_kw\n"
                      "cp,2024-06-12T12:00+00:00,2024-06-12T14:00+00:00,2,\n")
    decision = trigger.observe(record(0.0), T0 + dt.timedelta(minutes=15))
    assert decision.fire and decision.reasons == [f"the DSO limits file {limits} changed"]
    trigger.ran(T0, ok=False)  # a failed run: the change is still pending
    assert trigger.observe(record(0.0), T0 + dt.timedelta(minutes=30)).fire
    trigger.ran(T0, ok=True)
    assert trigger.observe(record(0.0), T0 + dt.timedelta(minutes=45)) is None


@pytest.fixture
def tiny(tmp_path) -> Path:
    hours = pd.date_range("2024-06-11T00:00Z", periods=24 * 4, freq="1h")
    price = np.where(hours.hour < 6, 0.05, np.where(hours.hour >= 18, 0.40, 0.20))
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": price}).to_csv(
        tmp_path / "prices.csv", index=False)
    (tmp_path / "limits.csv").write_text("congestion_point,start,end,max_import_kw,max_export_kw\n")
    doc = {"portfolio": {"name": "tiny", "timezone": "UTC", "resolution_min": 15},
           "data_sources": {"prices": {"path": "prices.csv", "column": "price", "unit": "EUR/kWh"}},
           "tariff": {"import_price_eur_per_kwh": {"source": "prices"}},
           "congestion_points": [{"id": "cp", "import_limit_kw": 20}], "dso_limits_file": "limits.csv",
           "sites": [{"id": "home", "congestion_point": "cp", "assets": [
               {"id": "bat", "type": "battery", "power_kw": 5, "energy_kwh": 10, "initial_soc_pct": 50},
               {"id": "house", "type": "load", "power_kw": 1}]}]}
    path = tmp_path / "portfolio.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _reoptimise(tiny: Path, store: Path, **options) -> Reoptimise:
    loaded = load_portfolio(tiny)
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - closed with the process
    return Reoptimise(tiny, loaded, TriggerOptions(**options), store=store, wait_s=0.0,
                      clock=SimClock(T0 + dt.timedelta(seconds=30), 1.0, held=True), console=quiet, run_console=quiet)


def test_a_trigger_runs_intraday_and_dispatch_follows_the_new_run(tiny, tmp_path):
    store = tmp_path / "runs"
    run_schedule(RunRequest(portfolio_path=tiny, kind="day-ahead", day=DAY, store=store))
    reoptimise = _reoptimise(tiny, store, deviation_kw=1.0, after_rounds=2)
    in_force = str(find_schedule_run(store, "tiny", DAY, T0).path)
    first = asyncio.run(reoptimise.after_round(record(3.0, schedule=in_force), T0))
    assert "reoptimisation" not in first  # one deviating round of two
    second = asyncio.run(reoptimise.after_round(record(3.0, schedule=in_force), T0))
    entry = second["reoptimisation"]
    assert entry["outcome"] == "written" and entry["fired"]
    assert dt.datetime.fromisoformat(entry["from"]) == T0 + dt.timedelta(minutes=15)  # the next interval
    assert "/intraday/v" in entry["run"]
    assert second["alarms"] == [] and second["summary"]["alarms_critical"] == 0
    # the next round's interval is dispatched from the new run
    assert str(find_schedule_run(store, "tiny", DAY, T0 + dt.timedelta(minutes=15)).path) == entry["run"]


def test_a_failed_re_run_is_an_alarm_and_the_schedule_stays_in_force(tiny, tmp_path):
    store = tmp_path / "runs"
    day_ahead = run_schedule(RunRequest(portfolio_path=tiny, kind="day-ahead", day=DAY, store=store)).directory
    reoptimise = _reoptimise(tiny, store, dso_limits_file=tmp_path / "limits.csv")
    (tmp_path / "limits.csv").write_text("congestion_point,start,end,max_import_kw,max_export_kw\n"
                                         "cp,2024-06-12T12:00+00:00,2024-06-12T14:00+00:00,2,\n")
    with held(schedule_lock_path(store, "tiny"), 0.0, {"pid": 1, "host": "test", "what": "another run"}):
        out = asyncio.run(reoptimise.after_round(record(0.0, schedule=str(day_ahead)), T0))
    entry = out["reoptimisation"]
    assert entry["outcome"] == "failed" and entry["exit_code"] == 6  # busy: the store's lock was held
    alarm = out["alarms"][-1]
    assert (alarm["severity"], alarm["kind"]) == ("critical", "reoptimisation_failed")
    assert str(day_ahead) in alarm["reason"] and out["summary"]["alarms_critical"] == 1
    assert find_schedule_run(store, "tiny", DAY, T0 + dt.timedelta(minutes=15)).path == day_ahead


def test_the_trigger_options_are_for_a_continuous_dispatch(tiny, tmp_path):
    from typer.testing import CliRunner

    from flexopt.cli import app

    store = tmp_path / "runs"
    once = CliRunner().invoke(app, ["dispatch", str(tiny), "--store", str(store), "--once",
                                    "--reoptimise-deviation-kw", "2"])
    assert once.exit_code == 2 and "not with --once" in once.output
    doc = yaml.safe_load(tiny.read_text())
    del doc["dso_limits_file"]
    tiny.write_text(yaml.safe_dump(doc))
    no_file = CliRunner().invoke(app, ["dispatch", str(tiny), "--store", str(store), "--reoptimise-on-dso-change"])
    assert no_file.exit_code == 2 and "names no dso_limits_file" in no_file.output
