"""Intraday forecast correction, on SQLite and on PostgreSQL: the rest of the horizon's uncontrolled load and PV
move by what telemetry measured in the hour before the start, fading over the horizon; run.json says how much and
why an asset was not corrected; corrections.parquet holds the corrected series, and ``flexopt check`` holds the
schedule against it (and catches a file that corrects another forecast than the portfolio's).

Telemetry comes from round records shaped as dispatch writes them, written with dispatch's own audit writer and
stored with the importer dispatch uses."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from flexopt.adapters.base import Telemetry
from flexopt.cli import app
from flexopt.config.loader import PortfolioError, load_portfolio
from flexopt.operations import dispatch_folder, write_round
from flexopt.operations.round import site_meter_load_kw
from flexopt.runs.files import jsonable
from flexopt.telemetry import import_folder, open_db

NAME = "correct-me"
DAY = dt.date(2024, 6, 25)
TZ = "Europe/Madrid"
START_LOCAL = "2024-06-25T15:00"
START_UTC = dt.datetime(2024, 6, 25, 13, 0, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=15)
PV_PEAK_KW = 6.0
FIELDS = ("available", "voltage_v", "active_power_kw", "reactive_power_kvar", "soc_pct", "temp_c", "ev_plugged",
          "ev_charging", "ev_energy_kwh", "setpoint")


def _http(device_id: str) -> dict:
    return {"protocol": "http", "base_url": "http://127.0.0.1:8080", "device_id": device_id, "setpoint_unit": "kW",
            "setpoint": {"method": "POST", "path": "/d/{device_id}/power", "body": {"kw": "{value}"}},
            "telemetry": {"path": "/d/{device_id}", "fields": {"power_w": "p"}}}


def portfolio_doc(meter: str = "load", curtailable: bool = False, pv_peak_kw: float = PV_PEAK_KW) -> dict:
    return {
        "portfolio": {"name": NAME, "timezone": TZ, "resolution_min": 15},
        "data_sources": {
            "prices": {"path": "prices.csv", "column": "price", "unit": "EUR/kWh"},
            "load_fc": {"path": "forecasts.csv", "column": "load_kw", "unit": "kW"},
            "pv_fc": {"path": "forecasts.csv", "column": "pv_kw", "unit": "kW"},
        },
        "tariff": {"import_price_eur_per_kwh": {"source": "prices"}},
        "sites": [{"id": "home", "connection": {"import_limit_kw": 30, "export_limit_kw": 30}, "assets": [
            {"id": "house", "type": "load", "power_kw": {"source": "load_fc"}, "meter": meter,
             "endpoint": _http("meter")},
            {"id": "roof", "type": "pv", "peak_kw": pv_peak_kw, "series_peak_kw": pv_peak_kw,
             "curtailable": curtailable, "generation_kw": {"source": "pv_fc"}, "endpoint": _http("pv")},
            {"id": "bess", "type": "battery", "power_kw": 5, "energy_kwh": 10, "endpoint": _http("bess")},
        ]}],
    }


def load_forecast_kw(index: pd.DatetimeIndex) -> np.ndarray:
    hours = index.tz_convert(TZ).hour + index.tz_convert(TZ).minute / 60
    return 2.0 + 1.0 * np.sin(2 * np.pi * hours / 24)


def pv_forecast_kw(index: pd.DatetimeIndex) -> np.ndarray:
    hours = index.tz_convert(TZ).hour + index.tz_convert(TZ).minute / 60
    return np.clip(5.0 * np.sin(np.pi * (hours - 7) / 14), 0, None)


def write_inputs(folder: Path) -> None:
    index = pd.date_range("2024-06-24T00:00Z", periods=72 * 4, freq="15min")
    stamp = index.strftime("%Y-%m-%dT%H:%M:%SZ")
    local = index.tz_convert(TZ).hour
    pd.DataFrame({"timestamp": stamp, "price": np.where(local < 7, 0.10, 0.25)}).to_csv(folder / "prices.csv",
                                                                                      index=False)
    pd.DataFrame({"timestamp": stamp, "load_kw": load_forecast_kw(index), "pv_kw": pv_forecast_kw(index)}).to_csv(
        folder / "forecasts.csv", index=False)


def tele(asset_id: str, at: dt.datetime, **values: Any) -> dict:
    return {"asset_id": asset_id, "at": at, "connected": True, **dict.fromkeys(FIELDS), "quality": "good",
            "notes": "", "extra": {}} | values


def entry(asset_type: str, scheduled_kw: float, telemetry: dict, sent: float | None = None) -> dict:
    command = None if sent is None else {"asset_id": telemetry["asset_id"], "ok": True, "status": "confirmed",
                                         "requested": sent, "sent": sent, "unit": "kW", "clamped": False}
    return {"asset_type": asset_type, "site_id": "home", "devices": 1, "setpoint_kind": "exact",
            "scheduled_power_kw": scheduled_kw, "command": command, "telemetry": telemetry, "deviation_kw": None}


def write_rounds(store: Path, *, load_extra_kw: float = 0.0, pv_share: float = 1.0, meter: str = "load",
                 bess_kw: float = 2.0, rounds: int = 4, pv_sent_kw: float | None = None) -> None:
    """One round per interval in the hour before the start: the house draws its forecast plus ``load_extra_kw``,
    the roof gives ``pv_share`` of its forecast, the battery charges at ``bess_kw``. With ``meter: site`` the
    house's meter reads the whole site."""
    folder = dispatch_folder(store, NAME, DAY)
    for k in range(rounds):
        start = START_UTC - (rounds - k) * STEP
        at = start + dt.timedelta(minutes=7)
        index = pd.DatetimeIndex([start])
        load_fc, pv_fc = float(load_forecast_kw(index)[0]), float(pv_forecast_kw(index)[0])
        load_kw, pv_kw = load_fc + load_extra_kw, -pv_share * pv_fc
        house_kw = load_kw + pv_kw + bess_kw if meter == "site" else load_kw
        record = {
            "flexopt_version": "test", "at": at, "interval_start": start, "interval_end": start + STEP,
            "started_utc": at, "finished_utc": at, "settle_s": 0.0,
            "schedule": {"path": "day-ahead/v001", "version": "v001", "kind": "day-ahead", "date": DAY.isoformat()},
            "summary": {"assets": 3, "sent": 1, "confirmed": 1, "failed": 0, "clamped": 0, "skipped": 2,
                        "alarms_critical": 0, "alarms_warning": 0},
            "assets": {
                "house": entry("load", load_fc, tele("house", at, active_power_kw=house_kw)),
                "roof": entry("pv", -pv_fc, tele("roof", at, active_power_kw=pv_kw), sent=pv_sent_kw),
                "bess": entry("battery", bess_kw, tele("bess", at, active_power_kw=bess_kw, soc_pct=50.0),
                              sent=bess_kw),
            },
            "alarms": [],
        }
        write_round(folder, jsonable(record), at)


def invoke(*args: Any):
    return CliRunner().invoke(app, [str(a) for a in args])


def written(result) -> Path:
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("schedule written to "))
    return Path(line.removeprefix("schedule written to ").strip())


@pytest.fixture
def world(tmp_path, db_url) -> dict:
    write_inputs(tmp_path)
    store = tmp_path / "runs"
    return {"dir": tmp_path, "store": store, "db": db_url}


def make_portfolio(world: dict, **kw: Any) -> Path:
    path = world["dir"] / "portfolio.yaml"
    path.write_text(yaml.safe_dump(portfolio_doc(**kw)))
    return path


def stored(world: dict) -> None:
    database = open_db(make_url(world["db"]))
    try:
        result = import_folder(database, NAME, DAY, dispatch_folder(world["store"], NAME, DAY))
        assert not result.problems, result.problems
    finally:
        database.close()


def intraday(world: dict, path: Path, *extra: Any) -> Path:
    return written(invoke("schedule", "intraday", path, "--from", START_LOCAL, "--store", world["store"],
                          "--db", world["db"], "--horizon-h", 12, *extra))


def power(run: Path, asset_id: str) -> pd.Series:
    frame = pd.read_parquet(run / "schedule.parquet")
    rows = frame[frame["asset_id"] == asset_id].sort_values("interval_start")
    return pd.Series(rows["power_kw"].to_numpy(), index=pd.DatetimeIndex(rows["interval_start"]))


def test_measured_load_and_pv_move_the_rest_of_the_horizon(world):
    path = make_portfolio(world)
    write_rounds(world["store"], load_extra_kw=1.5, pv_share=0.5)
    stored(world)
    run = intraday(world, path)
    record = json.loads((run / "run.json").read_text())["forecast_correction"]
    house, roof = record["assets"]["house"], record["assets"]["roof"]
    assert house["corrected"] and house["intervals_measured"] == 4
    assert house["error_kw"] == pytest.approx(1.5, abs=1e-9)
    assert roof["corrected"] and roof["ratio"] == pytest.approx(0.5, abs=1e-9)
    assert record["moved_kwh"] > 0 and "bess" not in record["assets"]
    load = power(run, "house")
    expected = load_forecast_kw(load.index) + 1.5 * np.exp(-(load.index - load.index[0]).total_seconds() / 3600 / 3)
    np.testing.assert_allclose(load.to_numpy(), expected, atol=1e-6)
    pv = power(run, "roof")
    fc = pv_forecast_kw(pv.index)
    fade = np.exp(-(pv.index - pv.index[0]).total_seconds() / 3600 / 3)
    np.testing.assert_allclose(-pv.to_numpy(), fc * (1 - 0.5 * fade), atol=1e-6)
    corrections = pd.read_parquet(run / "corrections.parquet")
    assert set(corrections["asset_id"]) == {"house", "roof"}
    kpis = json.loads((run / "kpis.json").read_text())
    assert kpis["forecast_correction_kwh"] == pytest.approx(record["moved_kwh"])
    assert "correction" in kpis["timings_s"]
    checked = invoke("check", path, run)
    assert checked.exit_code == 0, checked.output


def test_no_correct_keeps_the_forecast(world):
    path = make_portfolio(world)
    write_rounds(world["store"], load_extra_kw=1.5)
    stored(world)
    run = intraday(world, path, "--no-correct")
    assert "forecast_correction" not in json.loads((run / "run.json").read_text())
    assert not (run / "corrections.parquet").exists()
    load = power(run, "house")
    np.testing.assert_allclose(load.to_numpy(), load_forecast_kw(load.index), atol=1e-6)


def test_too_few_intervals_and_curtailed_pv_correct_nothing(world):
    path = make_portfolio(world, curtailable=True)
    write_rounds(world["store"], load_extra_kw=1.5, pv_share=0.5, rounds=1, pv_sent_kw=2.0)
    stored(world)
    run = intraday(world, path)
    record = json.loads((run / "run.json").read_text())["forecast_correction"]
    assert not record["assets"]["house"]["corrected"]
    assert "1 measured interval(s)" in record["assets"]["house"]["reason"]
    assert not record["assets"]["roof"]["corrected"]
    assert "not curtailed" in record["assets"]["roof"]["reason"]  # capped at 2 kW: its output says nothing
    assert record["moved_kwh"] == 0 and not (run / "corrections.parquet").exists()


def test_correct_with_a_curtailment_cap_at_the_peak(world):
    """A cap at the nameplate curtails nothing: those intervals count."""
    path = make_portfolio(world, curtailable=True)
    write_rounds(world["store"], pv_share=0.8, pv_sent_kw=PV_PEAK_KW)
    stored(world)
    run = intraday(world, path)
    roof = json.loads((run / "run.json").read_text())["forecast_correction"]["assets"]["roof"]
    assert roof["corrected"] and roof["ratio"] == pytest.approx(0.8, abs=1e-9)


def test_site_meter_less_the_other_assets_is_the_load(world):
    path = make_portfolio(world, meter="site")
    write_rounds(world["store"], load_extra_kw=-0.75, meter="site", bess_kw=3.0)
    stored(world)
    run = intraday(world, path)
    house = json.loads((run / "run.json").read_text())["forecast_correction"]["assets"]["house"]
    assert house["meter"] == "site"
    assert house["error_kw"] == pytest.approx(-0.75, abs=1e-9)  # the battery and the roof are taken out


def test_without_a_database_the_record_says_why(world):
    path = make_portfolio(world)
    run = written(invoke("schedule", "intraday", path, "--from", START_LOCAL, "--store", world["store"],
                         "--horizon-h", 12))
    record = json.loads((run / "run.json").read_text())["forecast_correction"]
    assert record["assets"]["house"]["corrected"] is False
    assert "telemetry.sqlite3 does not exist" in record["assets"]["house"]["reason"]


def test_check_catches_a_correction_of_another_forecast(world):
    path = make_portfolio(world)
    write_rounds(world["store"], load_extra_kw=1.5)
    stored(world)
    run = intraday(world, path)
    file = run / "corrections.parquet"
    frame = pd.read_parquet(file)
    frame.loc[frame["asset_id"] == "house", "forecast_power_kw"] += 0.5
    frame.to_parquet(file, index=False)
    checked = invoke("check", path, run)
    assert checked.exit_code == 1, checked.output
    assert "forecast_correction" in checked.output


def test_a_site_meter_needs_every_other_asset_measured(tmp_path):
    doc = portfolio_doc(meter="site")
    del doc["sites"][0]["assets"][2]["endpoint"]
    write_inputs(tmp_path)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PortfolioError) as err:
        load_portfolio(path)
    assert "bess have no endpoint" in str(err.value)


def test_dispatch_compares_a_site_meter_by_its_load():
    at = dt.datetime(2024, 6, 25, 12, tzinfo=dt.UTC)
    telemetry = {"house": Telemetry("house", at, True, active_power_kw=4.0),
                 "bess": Telemetry("bess", at, True, active_power_kw=3.0),
                 "roof": Telemetry("roof", at, True, active_power_kw=-1.5)}
    planned = {a: {"site_id": "home"} for a in telemetry}
    assert math.isclose(site_meter_load_kw("house", telemetry, planned), 2.5)
    telemetry["bess"] = Telemetry("bess", at, False)
    assert site_meter_load_kw("house", telemetry, planned) is None


@pytest.fixture
def sqlite_world(tmp_path) -> dict:
    """A world on SQLite alone: the hostile cases are about the numbers, not the backend."""
    write_inputs(tmp_path)
    return {"dir": tmp_path, "store": tmp_path / "runs", "db": f"sqlite:///{tmp_path / 'telemetry.sqlite3'}"}


@pytest.mark.parametrize(("rounds", "asset_id", "measured_kw", "bound_kw"), [
    # the site meter reads 50 MW on a 30 kW connection: 1.25 x (30 + 6 PV + 5 battery) kW is all it can draw
    ({"meter": "site", "load_extra_kw": 50_000.0}, "house", 50_000.0, 51.25),
    # a sub-meter that says the house feeds in 38 kW
    ({"load_extra_kw": -40.0}, "house", -38.0, -0.05 * 51.25),
    # an inverter giving 40 times its forecast, 200 kW from a 6 kW array
    ({"pv_share": 40.0}, "roof", -200.0, -1.1 * PV_PEAK_KW),
], ids=["site-meter-50MW", "load-feeding-in", "pv-40x"])
def test_hostile_telemetry_moves_nothing(sqlite_world, rounds, asset_id, measured_kw, bound_kw):
    world = sqlite_world
    path = make_portfolio(world, meter=rounds.get("meter", "load"))
    write_rounds(world["store"], **rounds)
    stored(world)
    result = invoke("schedule", "intraday", path, "--from", START_LOCAL, "--store", world["store"], "--db",
                    world["db"], "--horizon-h", 12)
    run = written(result)
    record = json.loads((run / "run.json").read_text())["forecast_correction"]
    entry = record["assets"][asset_id]
    assert entry["corrected"] is False and "4 more left out as implausible" in entry["reason"]
    assert record["bounded"] == [asset_id]
    (held,) = entry["bounds"]
    assert held["applies_to"] == "measured" and held["intervals"] == 4 and held["unit"] == "kW"
    assert held["measured"] == pytest.approx(measured_kw, rel=0.05)
    assert held["bound"] == pytest.approx(bound_kw)
    assert f"warning: {asset_id} (" in result.output and "meter fault" in result.output
    if asset_id == "house":
        load = power(run, "house")
        np.testing.assert_allclose(load.to_numpy(), load_forecast_kw(load.index), atol=1e-6)
    else:
        np.testing.assert_allclose(-power(run, "roof").to_numpy(), pv_forecast_kw(power(run, "roof").index),
                                   atol=1e-6)


def test_a_pv_ratio_beyond_the_plausible_is_held(sqlite_world):
    """1.6 times the forecast from a 12 kW array is physically possible, and held at 1.3 all the same."""
    world = sqlite_world
    path = make_portfolio(world, pv_peak_kw=12.0)
    write_rounds(world["store"], pv_share=1.6)
    stored(world)
    result = invoke("schedule", "intraday", path, "--from", START_LOCAL, "--store", world["store"], "--db",
                    world["db"], "--horizon-h", 12)
    run = written(result)
    roof = json.loads((run / "run.json").read_text())["forecast_correction"]["assets"]["roof"]
    assert roof["corrected"] and roof["ratio"] == pytest.approx(1.3)
    assert roof["bounds"] == [{"applies_to": "ratio", "measured": pytest.approx(1.6), "bound": 1.3,
                               "unit": "measured/forecast", "why": roof["bounds"][0]["why"]}]
    assert "warning: roof (pv): measured" in result.output
    pv = power(run, "roof")
    fade = np.exp(-(pv.index - pv.index[0]).total_seconds() / 3600 / 3)
    np.testing.assert_allclose(-pv.to_numpy(), pv_forecast_kw(pv.index) * (1 + 0.3 * fade), atol=1e-6)
    checked = invoke("check", path, run)
    assert checked.exit_code == 0, checked.output


def test_a_correction_that_would_make_the_load_feed_in_is_held_at_zero(sqlite_world):
    """Measured 2 kW below zero (meter noise, plausible) is an error of about -3.5 kW: the corrected load stops
    at 0 kW, and run.json and a warning say so."""
    world = sqlite_world
    path = make_portfolio(world)
    write_rounds(world["store"], load_extra_kw=-3.5)
    stored(world)
    result = invoke("schedule", "intraday", path, "--from", START_LOCAL, "--store", world["store"], "--db",
                    world["db"], "--horizon-h", 12)
    run = written(result)
    house = json.loads((run / "run.json").read_text())["forecast_correction"]["assets"]["house"]
    assert house["corrected"] and house["error_kw"] == pytest.approx(-3.5)
    (held,) = house["bounds"]
    assert held["applies_to"] == "correction" and held["bound"] == 0.0 and held["measured"] < 0
    assert "warning: house (load): the correction" in result.output
    load = power(run, "house")
    assert load.min() >= 0.0 and load.iloc[0] == pytest.approx(0.0, abs=1e-9)
