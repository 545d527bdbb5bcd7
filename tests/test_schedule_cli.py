"""The operator's path: `flexopt schedule day-ahead` and `intraday` from a portfolio file to files on disk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flexopt.cli import app

runner = CliRunner()
DAY = "2024-06-12"


@pytest.fixture
def portfolio(tmp_path):
    """A site with a battery, PV and load; cheap night, expensive evening (EUR/MWh, hourly, UTC)."""
    hours = pd.date_range("2024-06-10T00:00Z", periods=24 * 5, freq="1h")
    local_hour = hours.tz_convert("Europe/Madrid").hour
    price = np.where(local_hour < 6, 20.0, np.where((local_hour >= 19) & (local_hour < 22), 250.0, 90.0))
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": price}).to_csv(
        tmp_path / "prices.csv", index=False)
    quarter = pd.date_range("2024-06-10T00:00Z", periods=96 * 5, freq="15min")
    solar = np.clip(np.sin((quarter.tz_convert("Europe/Madrid").hour + quarter.minute / 60 - 7) / 14 * np.pi), 0, None)
    pd.DataFrame({"timestamp": quarter.strftime("%Y-%m-%dT%H:%M:%SZ"), "pv_w": 4000 * solar,
                  "load_w": 800 + 400 * (quarter.hour % 3)}).to_csv(tmp_path / "site.csv", index=False)
    doc = {
        "portfolio": {"name": "cli-test", "timezone": "Europe/Madrid"},
        "data_sources": {
            "prices": {"path": "prices.csv", "column": "price", "unit": "EUR/MWh"},
            "pv": {"path": "site.csv", "column": "pv_w", "unit": "W"},
            "load": {"path": "site.csv", "column": "load_w", "unit": "W"},
        },
        "tariff": {"import_price_eur_per_kwh": {"source": "prices"},
                   "export_price_eur_per_kwh": {"source": "prices", "scale": 0.5}},
        "congestion_points": [{"id": "cp", "import_limit_kw": 50}],
        "sites": [{
            "id": "home", "congestion_point": "cp", "connection": {"import_limit_kw": 20, "export_limit_kw": 10},
            "assets": [
                {"id": "bat", "type": "battery", "power_kw": 5, "energy_kwh": 10, "initial_soc_pct": 50},
                {"id": "pv", "type": "pv", "peak_kw": 4, "generation_kw": {"source": "pv"}, "series_peak_kw": 4},
                {"id": "house", "type": "load", "power_kw": {"source": "load"}},
            ],
        }],
    }
    path = tmp_path / "portfolio.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_day_ahead_writes_every_file_and_never_overwrites(portfolio, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["schedule", "day-ahead", str(portfolio), "--date", DAY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"schedule.parquet", "schedule.csv", "sites.parquet", "sites.csv",
                                               "states.parquet", "states.csv", "kpis.json", "run.json"}
    schedule = pd.read_parquet(out / "schedule.parquet")
    assert list(schedule.columns) == ["interval_start", "interval_end", "site_id", "asset_id", "asset_type",
                                      "power_kw", "baseline_kw", "setpoint", "setpoint_unit", "state", "state_unit"]
    assert len(schedule) == 3 * 96 and str(schedule["interval_start"].dt.tz) == "UTC"
    bat = schedule[schedule.asset_id == "bat"].set_index("interval_start")
    # every state of every asset, long: the battery's SoC in % (what intraday restarts from); pv and load have none
    states = pd.read_parquet(out / "states.parquet")
    assert list(states.columns) == ["interval_start", "interval_end", "asset_id", "key", "value", "unit"]
    assert set(zip(states.asset_id, states.key, states.unit, strict=True)) == {("bat", "soc_pct", "%")}
    soc = states.set_index("interval_start")["value"]
    assert len(soc) == 96 and (soc * 10 / 100).to_numpy() == pytest.approx(bat["state"].to_numpy())
    local = bat.index.tz_convert("Europe/Madrid")
    # the battery buys in the cheap night and sells or serves load in the expensive evening
    assert bat["power_kw"][local.hour < 6].sum() > 0
    assert bat["power_kw"][(local.hour >= 19) & (local.hour < 22)].sum() < 0
    kpis = json.loads((out / "kpis.json").read_text())
    assert kpis["cost_eur"] < kpis["baseline_cost_eur"]
    run = json.loads((out / "run.json").read_text())
    assert run["portfolio"]["name"] == "cli-test" and len(run["portfolio"]["sha256"]) == 64
    assert set(run["input_files"]) == {"prices", "pv", "load"}
    assert run["horizon"]["intervals"] == 96

    before = (out / "schedule.csv").read_bytes()
    again = runner.invoke(app, ["schedule", "day-ahead", str(portfolio), "--date", DAY, "--out", str(out)])
    assert again.exit_code == 2 and "never overwrites" in again.output
    assert (out / "schedule.csv").read_bytes() == before


def test_store_versions_and_intraday_continues_from_the_stored_schedule(portfolio, tmp_path):
    store = tmp_path / "runs"
    for _ in range(2):
        result = runner.invoke(app, ["schedule", "day-ahead", str(portfolio), "--date", DAY, "--store", str(store)])
        assert result.exit_code == 0, result.output
    base = store / "cli-test" / DAY
    assert sorted(p.name for p in (base / "day-ahead").iterdir()) == ["v001", "v002"]
    day_ahead = pd.read_parquet(base / "day-ahead" / "v002" / "schedule.parquet")
    start = pd.Timestamp(f"{DAY}T14:00", tz="Europe/Madrid")
    expected_kwh = day_ahead[(day_ahead.asset_id == "bat") & (day_ahead.interval_end == start)]["state"].item()

    result = runner.invoke(app, ["schedule", "intraday", str(portfolio), "--from", f"{DAY}T14:00",
                                 "--store", str(store)])
    assert result.exit_code == 0, result.output
    run_dir = base / "intraday" / "v001"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["initial_state"]["bat"]["soc_pct"] == pytest.approx(expected_kwh / 10 * 100)
    assert run["initial_state_source"].endswith("v002")
    intraday = pd.read_parquet(run_dir / "schedule.parquet")
    assert intraday["interval_start"].min() == start.tz_convert("UTC")
    assert intraday["interval_start"].nunique() == 96  # 24 h from 14:00, across midnight
    assert run["horizon"]["day_end_utc"] == pd.Timestamp(f"{DAY}T22:00Z").isoformat()
    # filed under the day it starts, with rows past midnight
    assert intraday["interval_end"].max() == start.tz_convert("UTC") + pd.Timedelta(hours=24)

    # --horizon-h shorter than the rest of the day: the day's end is still inside (its terminal SoC holds there)
    result = runner.invoke(app, ["schedule", "intraday", str(portfolio), "--from", f"{DAY}T14:00",
                                 "--store", str(store), "--horizon-h", "2"])
    assert result.exit_code == 0, result.output
    run = json.loads((base / "intraday" / "v002" / "run.json").read_text())
    assert run["horizon"]["intervals"] == 40 and run["horizon"]["requested_h"] == 2
    assert "extended" in run["horizon"]["notes"][0] and "extended" in result.output


@pytest.mark.parametrize(("args", "text"), [
    (["--horizon-h", "0.1"], "not a whole number of 15-minute intervals"),
    (["--horizon-h", "0"], "must be above 0"),
    (["--horizon-h", "169"], "at most 168"),
    (["--horizon-h", "nan"], "not a finite number"),
    (["--wait-s", "-1"], "at least 0"),
])
def test_bad_horizon_or_wait_is_exit_2(portfolio, tmp_path, args, text):
    for command in (["day-ahead", "--date", DAY], ["intraday", "--from", f"{DAY}T14:00"]):
        result = runner.invoke(app, ["schedule", command[0], str(portfolio), *command[1:], *args,
                                     "--store", str(tmp_path / "runs")])
        assert result.exit_code == 2, result.output
        assert text in result.output
        assert not (tmp_path / "runs" / "cli-test").exists()


def test_intraday_rerun_from_the_same_interval_keeps_every_state(portfolio, tmp_path):
    """The second run from 14:00 finds no row ending at 14:00 in the first (which starts there): it must take the
    states from the newest run that holds them, never the configured defaults."""
    store = tmp_path / "runs"
    assert runner.invoke(app, ["schedule", "day-ahead", str(portfolio), "--date", DAY, "--store", str(store)]
                         ).exit_code == 0
    runs = []
    for _ in range(2):
        result = runner.invoke(app, ["schedule", "intraday", str(portfolio), "--from", f"{DAY}T14:00",
                                     "--store", str(store)])
        assert result.exit_code == 0, result.output
        assert "warning" not in result.output
        runs.append(json.loads((store / "cli-test" / DAY / "intraday" / f"v00{len(runs) + 1}" / "run.json")
                               .read_text()))
    assert runs[1]["initial_state"] == runs[0]["initial_state"]
    assert runs[1]["initial_state"]["bat"]["soc_pct"] != pytest.approx(50.0)  # not the configured start
    assert runs[1]["initial_state_source"].endswith("day-ahead/v001")


def test_intraday_names_every_asset_that_starts_from_its_configuration(portfolio, tmp_path):
    result = runner.invoke(app, ["schedule", "intraday", str(portfolio), "--from", f"{DAY}T14:00",
                                 "--store", str(tmp_path / "empty")])
    assert result.exit_code == 0, result.output
    assert "warning: bat (battery): no stored schedule" in result.output
    run = json.loads(next((tmp_path / "empty").rglob("run.json")).read_text())
    assert run["initial_state_warnings"] and "bat (battery)" in run["initial_state_warnings"][0]


def test_measured_state_file_overrides(portfolio, tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"bat": {"soc_pct": 90}}))
    out = tmp_path / "o"
    result = runner.invoke(app, ["schedule", "intraday", str(portfolio), "--from", f"{DAY}T20:00", "--state",
                                 str(state), "--out", str(out), "--store", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    bat = pd.read_parquet(out / "schedule.parquet").query("asset_id == 'bat'")
    # starting full at 20:00 in the price peak, it discharges right away
    assert bat["power_kw"].iloc[0] < 0
    assert bat["state"].iloc[0] < 9.0


@pytest.mark.parametrize(("args", "text"), [
    (["--date", "12/06/2024"], "not a date"),
    (["--date", "2031-01-01"], "it covers"),
])
def test_bad_requests_exit_2_with_a_message(portfolio, tmp_path, args, text):
    result = runner.invoke(app, ["schedule", "day-ahead", str(portfolio), *args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert text in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_history_series_are_forecast_and_the_model_is_recorded(tmp_path):
    """A load given as history (8 weeks before the day) is forecast by flexopt; run.json names the model."""
    quarter = pd.date_range("2024-04-17T00:00Z", f"{DAY}T00:00Z", freq="15min", inclusive="left")
    hour = quarter.tz_convert("Europe/Madrid").hour + quarter.minute / 60
    load_w = 1000 + 800 * np.sin(2 * np.pi * (hour - 8) / 24)
    pd.DataFrame({"timestamp": quarter.strftime("%Y-%m-%dT%H:%M:%SZ"), "load_w": load_w}).to_csv(
        tmp_path / "history.csv", index=False)
    doc = {
        "portfolio": {"name": "history-test", "timezone": "Europe/Madrid"},
        "data_sources": {"house": {"path": "history.csv", "column": "load_w", "unit": "W", "kind": "history"}},
        "tariff": {"import_price_eur_per_kwh": 0.2},
        "sites": [{"id": "home", "assets": [{"id": "house", "type": "load", "power_kw": {"source": "house"}}]}],
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    result = runner.invoke(app, ["schedule", "day-ahead", str(path), "--date", DAY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    model = run["input_files"]["house"]["model"]
    assert model and model != "as given (forecast series)"
    house = pd.read_parquet(out / "schedule.parquet").query("asset_id == 'house'")
    local = house["interval_start"].dt.tz_convert("Europe/Madrid")
    expected_kw = (1000 + 800 * np.sin(2 * np.pi * (local.dt.hour + local.dt.minute / 60 - 8) / 24)) / 1000
    # a pure daily shape is forecast almost exactly
    assert np.abs(house["power_kw"].to_numpy() - expected_kw.to_numpy()).max() < 0.05


@pytest.fixture
def dst_portfolio(tmp_path):
    """A battery and a constant load in Madrid, hourly prices (UTC) from March to November 2024: both DST nights."""
    hours = pd.date_range("2024-03-25T00:00Z", "2024-11-01T00:00Z", freq="1h")
    price = np.where(hours.tz_convert("Europe/Madrid").hour < 6, 20.0, 90.0)
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": price}).to_csv(
        tmp_path / "prices.csv", index=False)
    doc = {
        "portfolio": {"name": "dst-test", "timezone": "Europe/Madrid"},
        "data_sources": {"prices": {"path": "prices.csv", "column": "price", "unit": "EUR/MWh"}},
        "tariff": {"import_price_eur_per_kwh": {"source": "prices"}},
        "sites": [{"id": "home", "connection": {"import_limit_kw": 20}, "assets": [
            {"id": "bat", "type": "battery", "power_kw": 5, "energy_kwh": 10, "initial_soc_pct": 50},
            {"id": "house", "type": "load", "power_kw": 1.0},
        ]}],
    }
    path = tmp_path / "portfolio.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize(("start", "says"), [
    ("2024-10-27T02:30", ["'2024-10-27T02:30' happens twice in Europe/Madrid", "2024-10-27T02:30+02:00",
                          "2024-10-27T02:30+01:00"]),
    ("2024-10-27T02:00", ["happens twice", "2024-10-27T02:00+02:00", "2024-10-27T02:00+01:00"]),
    ("2024-03-31T02:30", ["'2024-03-31T02:30' does not exist in Europe/Madrid", "from 02:00 to 03:00",
                          "2024-03-31T03:00", "2024-03-31T02:30+01:00"]),
])
def test_from_a_local_time_a_dst_night_repeats_or_skips_is_exit_2(dst_portfolio, tmp_path, start, says):
    """Taken silently as one of the two (or shifted out of the gap), the run would start an hour from where the
    operator meant: --from must say which, with its UTC offset."""
    out = tmp_path / "out"
    result = runner.invoke(app, ["schedule", "intraday", str(dst_portfolio), "--from", start, "--out", str(out),
                                 "--store", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("--from: ") and "Traceback" not in result.output
    for text in says:
        assert text in result.output
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(("start", "start_utc"), [
    ("2024-10-27T02:30+02:00", "2024-10-27T00:30:00+00:00"),  # the first 02:30 (CEST)
    ("2024-10-27T02:30+01:00", "2024-10-27T01:30:00+00:00"),  # the second (CET)
    ("2024-10-27T00:30Z", "2024-10-27T00:30:00+00:00"),
    ("2024-03-31T01:30+00:00", "2024-03-31T01:30:00+00:00"),  # 03:30 CEST, past the gap
])
def test_from_with_an_offset_on_a_dst_night_runs(dst_portfolio, tmp_path, start, start_utc):
    out = tmp_path / "out"
    result = runner.invoke(app, ["schedule", "intraday", str(dst_portfolio), "--from", start, "--out", str(out),
                                 "--store", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["horizon"]["start_utc"] == start_utc


@pytest.mark.parametrize("command", [["dispatch", "{pf}", "--once", "--at", "{t}", "--store", "{store}"],
                                     ["telemetry", "latest", "{pf}", "--at", "{t}", "--store", "{store}"]])
@pytest.mark.parametrize(("at", "says"), [("2024-10-27T02:30", "happens twice"),
                                          ("2024-03-31T02:30", "does not exist")])
def test_at_on_a_dst_night_says_which_instant_is_meant(dst_portfolio, tmp_path, command, at, says):
    """dispatch and telemetry read --at as the schedule commands read --from: a repeated or skipped local time is
    exit 2 asking for the offset, before any device or database is touched."""
    args = [a.format(pf=dst_portfolio, t=at, store=tmp_path / "runs") for a in command]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("--at: ") and says in result.output and "+01:00" in result.output
