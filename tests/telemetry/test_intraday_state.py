"""``flexopt schedule intraday`` from measured state, on SQLite and on PostgreSQL: each asset starts from fresh,
plausible telemetry, else from the newest stored schedule, else from its configuration with a warning; run.json says
where every state came from and why an asset fell back; cars measured plugged in or absent change the EV sessions;
every run passes ``flexopt check``.

Telemetry comes from round records shaped as dispatch writes them, written with dispatch's own audit writer and
stored with the importer dispatch uses; the first test takes them from a real ``flexopt dispatch --once`` against the
simulated devices instead."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from flexopt.adapters.sim.device_cloud import DEFAULT_TOKEN
from flexopt.adapters.sim.util import free_port
from flexopt.cli import app
from flexopt.config.loader import load_portfolio
from flexopt.runs.files import jsonable
from flexopt.telemetry import import_folder, open_db

_spec = importlib.util.spec_from_file_location(
    "dispatch_cli_helpers_intraday", Path(__file__).resolve().parents[1] / "operations" / "test_dispatch_cli.py")
ops_kit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ops_kit)  # the dispatch tests' portfolio, schedule and simulator thread

NAME = "live-state"
DAY = dt.date(2024, 6, 25)
TZ = "Europe/Madrid"
START = "2024-06-25T14:00"  # local; 12:00 UTC
START_UTC = dt.datetime(2024, 6, 25, 12, 0, tzinfo=dt.UTC)
FIELDS = ("available", "voltage_v", "active_power_kw", "reactive_power_kvar", "soc_pct", "temp_c", "ev_plugged",
          "ev_charging", "ev_energy_kwh", "setpoint")


def _iec104(ca: int) -> dict:
    return {"protocol": "iec104", "host": "127.0.0.1", "port": 2404, "common_address": ca,
            "points": {"setpoint_ioa": 5001, "active_power_ioa": 1001, "soc_ioa": 1004}}


def _modbus(device_id: int) -> dict:
    return {"protocol": "modbus", "host": "127.0.0.1", "port": 5020, "device_id": device_id,
            "registers": {"setpoint": {"address": 200, "data_type": "float32", "unit": "kW"},
                          "temperature": {"address": 120, "data_type": "int16", "scale": 0.1, "table": "input",
                                          "unit": "degC"}}}


def _http(device_id: str) -> dict:
    return {"protocol": "http", "base_url": "http://127.0.0.1:8080", "device_id": device_id, "setpoint_unit": "kW",
            "setpoint": {"method": "POST", "path": "/d/{device_id}/power", "body": {"kw": "{value}"}},
            "telemetry": {"path": "/d/{device_id}", "fields": {"power_w": "p", "temp_c": "t"}}}


def portfolio_doc() -> dict:
    zone = {"max_electric_kw": 3, "thermal_resistance_k_per_kw": 5, "thermal_capacitance_kwh_per_k": 10,
            "initial_temp_c": 20, "outdoor_temp_c": 15, "default_min_temp_c": 18, "default_max_temp_c": 25}
    heater = {"type": "water_heater", "volume_l": 150, "element_kw": 2.0, "initial_temp_c": 60}
    return {
        "portfolio": {"name": NAME, "timezone": TZ, "resolution_min": 15},
        "data_sources": {"prices": {"path": "prices.csv", "column": "price", "unit": "EUR/kWh"}},
        "tariff": {"import_price_eur_per_kwh": {"source": "prices"}},
        "ocpp_central_system": {"host": "127.0.0.1", "port": 9300},
        "sites": [{"id": "home", "assets": [
            {"id": "bess", "type": "battery", "power_kw": 5, "energy_kwh": 10, "endpoint": _iec104(1)},
            {"id": "bess-2", "type": "battery", "power_kw": 5, "energy_kwh": 10, "endpoint": _iec104(2)},
            {"id": "zone", "type": "climate", **zone, "endpoint": _modbus(3)},
            {"id": "hp", "type": "heat_pump", **zone, "endpoint": _modbus(4)},
            {"id": "boiler", **heater, "endpoint": _http("boiler")},
            {"id": "heaters", **heater, "count": 3, "endpoint": _http("wh")},
            {"id": "tanks", **heater, "count": 2, "endpoint": _http("tank")},
            {"id": "ev", "type": "ev_charger", "max_charge_kw": 11, "endpoint": {  # intraday never connects to it
                "protocol": "ocpp", "charge_point_id": "CP-EV", "security_profile": 0},
             "sessions": [{"arrival_local": "18:00", "departure_local": "23:00", "energy_kwh": 10}]},
            {"id": "evs", "type": "ev_charger", "count": 2, "max_charge_kw": 11, "current_type": "dc",
             "endpoint": {"protocol": "ocpp", "charge_point_id": "CP-EVS", "security_profile": 0},
             "sessions": [{"arrival_local": "08:00", "departure_local": "20:00", "energy_kwh": 8, "units": 1},
                          {"arrival_local": "21:00", "departure_local": "23:00", "energy_kwh": 5, "units": 1}]},
            {"id": "house", "type": "load", "power_kw": 1},
        ]}],
    }


def write_prices(path: Path) -> None:
    """Hourly, cheap from 15:00 to 16:00 local: a car plugged in early charges then, before its 18:00 arrival."""
    index = pd.date_range("2024-06-24T00:00Z", periods=72, freq="1h")
    local = index.tz_convert(TZ).hour
    price = np.where(local == 15, 0.05, np.where(local < 7, 0.15, 0.30))
    pd.DataFrame({"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": price}).to_csv(path, index=False)


def invoke(*args: Any):
    return CliRunner().invoke(app, [str(a) for a in args])


def written(result) -> Path:
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("schedule written to "))
    return Path(line.removeprefix("schedule written to ").strip())


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict:
    """The portfolio and a store holding its day-ahead run (copied for each test)."""
    folder = tmp_path_factory.mktemp("live")
    write_prices(folder / "prices.csv")
    path = folder / "portfolio.yaml"
    path.write_text(yaml.safe_dump(portfolio_doc()))
    store = folder / "runs"
    day_ahead = written(invoke("schedule", "day-ahead", path, "--date", DAY, "--store", store))
    return {"path": path, "store": store, "day_ahead": day_ahead}


@pytest.fixture
def world(template, tmp_path, db_url) -> dict:
    store = tmp_path / "runs"
    shutil.copytree(template["store"], store)
    day_ahead = store / template["day_ahead"].relative_to(template["store"])
    return {"path": template["path"], "store": store, "day_ahead": day_ahead, "db": db_url}


# --- round records as dispatch writes them ---------------------------------------------------------------------


def tele(asset_id: str, at: dt.datetime, **values: Any) -> dict:
    """A Telemetry as dispatch records it: every field, None unless given; connected and good unless told."""
    return {"asset_id": asset_id, "at": at, "connected": True, **dict.fromkeys(FIELDS), "quality": "good",
            "notes": "", "extra": {}} | values


def group(asset_id: str, at: dt.datetime, devices: dict[str, dict]) -> tuple[dict, list[dict]]:
    """A group's aggregate reading (as adapters/group.py forms it) and its device readings."""
    rows = [tele(f"{asset_id}/{name}", at, **values) | {"device": name} for name, values in devices.items()]
    up = [r for r in rows if r["connected"]]

    def vals(key: str) -> list:
        return [r[key] for r in up if r[key] is not None]

    temps, energies, plugged = vals("temp_c"), vals("ev_energy_kwh"), vals("ev_plugged")
    aggregate = tele(asset_id, at, temp_c=sum(temps) / len(temps) if temps else None,
                     ev_energy_kwh=sum(energies) if energies else None, ev_plugged=any(plugged) if plugged else None,
                     quality="good" if len(up) == len(rows) else "questionable",
                     extra={"devices": float(len(rows)), "devices_answering": float(len(up))})
    return aggregate, rows


def record(at: dt.datetime, readings: dict[str, tuple[str, dict, list[dict] | None]]) -> dict:
    """A round record: asset -> (asset type, its reading, its device readings or None)."""
    assets = {}
    for asset_id, (asset_type, reading, devices) in readings.items():
        entry = {"asset_type": asset_type, "site_id": "home", "devices": len(devices) if devices else 1,
                 "setpoint_kind": "exact", "scheduled_power_kw": 0.0, "telemetry": reading, "deviation_kw": None}
        if devices:
            entry["device_telemetry"] = devices
        assets[asset_id] = entry
    start = at.replace(minute=at.minute - at.minute % 15, second=0)
    return jsonable({
        "flexopt_version": "0.1.0", "at": at, "interval_start": start, "interval_end": start + dt.timedelta(minutes=15),
        "started_utc": at, "finished_utc": at, "settle_s": 1.0,
        "schedule": {"path": "runs/x", "version": "v001", "kind": "day-ahead", "date": DAY.isoformat()},
        "summary": {"assets": len(assets), "sent": 0, "confirmed": 0, "failed": 0, "clamped": 0, "skipped": 0,
                    "alarms_critical": 0, "alarms_warning": 0},
        "assets": assets, "alarms": []})


def store_rounds(world: dict, kit, *records: dict) -> None:
    """Write the records where dispatch does and store them in the test's database, as dispatch would."""
    for rec in records:
        kit.write(world["store"], rec, DAY, NAME)
    db = open_db(make_url(world["db"]))
    try:
        result = import_folder(db, NAME, DAY, kit.folder(world["store"], DAY, NAME))
        assert not result.problems and len(result.added) == len(records)
    finally:
        db.close()


def every_asset(at: dt.datetime) -> dict:
    """Fresh, plausible readings of every asset (the tests spoil some)."""
    heaters = group("heaters", at, {"wh-1": {"temp_c": 50.0}, "wh-2": {"temp_c": 55.0}, "wh-3": {"temp_c": 62.0}})
    tanks = group("tanks", at, {"tank-1": {"temp_c": 58.0}, "tank-2": {"temp_c": 57.0}})
    evs = group("evs", at, {"CP-EVS-1": {"ev_plugged": False, "ev_energy_kwh": 0.0},
                            "CP-EVS-2": {"ev_plugged": False, "ev_energy_kwh": 0.0}})
    return {
        "bess": ("battery", tele("bess", at, soc_pct=61.0), None),
        "bess-2": ("battery", tele("bess-2", at, soc_pct=42.5), None),
        "zone": ("climate", tele("zone", at, temp_c=21.5), None),
        "hp": ("heat_pump", tele("hp", at, temp_c=22.0), None),
        "boiler": ("water_heater", tele("boiler", at, temp_c=64.0), None),
        "heaters": ("water_heater", *heaters),
        "tanks": ("water_heater", *tanks),
        "ev": ("ev_charger", tele("ev", at, ev_plugged=True, ev_charging=True, ev_energy_kwh=4.0), None),
        "evs": ("ev_charger", *evs),
    }


def intraday(world: dict, start: str = START, *extra: Any) -> tuple[Path, dict, str]:
    result = invoke("schedule", "intraday", world["path"], "--from", start, "--store", world["store"],
                    "--db", world["db"], *extra)
    run = written(result)
    return run, json.loads((run / "run.json").read_text()), result.output


def checked(world: dict, run: Path) -> None:
    result = invoke("check", world["path"], run)
    assert result.exit_code == 0, result.output


def power(run: Path, asset_id: str, start_h: float, end_h: float) -> pd.Series:
    """An asset's power in the intervals starting from start_h to end_h local time."""
    schedule = pd.read_parquet(run / "schedule.parquet")
    rows = schedule[schedule.asset_id == asset_id].set_index("interval_start")
    local = rows.index.tz_convert(TZ)
    hours = local.hour + local.minute / 60
    return rows["power_kw"][(hours >= start_h) & (hours < end_h)]


# --- the tests ---------------------------------------------------------------------------------------------------


def test_intraday_starts_from_what_a_real_dispatch_read_from_the_simulated_devices(tmp_path, monkeypatch, db_url):
    """The dispatch tests' battery (IEC 104), 3 water heaters at different temperatures (HTTP, one group) and zone
    (Modbus) on their simulators: one ``flexopt dispatch --once``, then intraday from the next interval."""
    monkeypatch.setenv("OPS_TEST_TOKEN", DEFAULT_TOKEN)
    ports = {k: free_port() for k in ("iec104", "modbus", "http", "ocpp")}
    doc = ops_kit.portfolio_dict(ports)
    doc["portfolio"]["name"] = "live-dispatch"
    doc["sites"][0]["assets"] = [a for a in doc["sites"][0]["assets"] if a["id"] != "ev"]  # no OCPP: no waiting
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(doc))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = now.replace(minute=now.minute - now.minute % 15, second=0)
    at = now if first + ops_kit.STEP - now > dt.timedelta(minutes=1) else first + ops_kit.STEP
    store = tmp_path / "runs"
    frame = ops_kit.schedule_frame(first - ops_kit.STEP, 6)
    ops_kit.write_run(store / "live-dispatch" / at.date().isoformat() / "day-ahead" / "v001",
                      frame[frame["asset_id"] != "ev"], at.date())
    sims = ops_kit.SimThread(load_portfolio(path).portfolio, f"ws://127.0.0.1:{ports['ocpp']}")
    try:
        (cloud,) = sims.sim.simulators["http"].clouds.values()
        for device, _role in cloud.devices.values():
            device.temp_c = {"heaters/wh-1": 50.0, "heaters/wh-2": 55.0, "heaters/wh-3": 62.0}[device.asset_id]
        dispatched = invoke("dispatch", path, "--store", store, "--once", "--at", at.strftime("%Y-%m-%dT%H:%M:%S"),
                            "--settle-s", "0.5", "--db", db_url)
        assert dispatched.exit_code == 0, dispatched.output
    finally:
        sims.close()
    (record_path,) = (store / "live-dispatch" / at.date().isoformat() / "dispatch").glob("*.json")
    measured = json.loads(record_path.read_text())["assets"]
    start = at.replace(minute=at.minute - at.minute % 15, second=0) + ops_kit.STEP
    run = written(invoke("schedule", "intraday", path, "--from", start.strftime("%Y-%m-%dT%H:%M"), "--store", store,
                         "--db", db_url))
    state = json.loads((run / "run.json").read_text())["initial_state"]
    assert {a: e["source"] for a, e in state.items()} == {"bess": "telemetry", "heaters": "telemetry",
                                                          "zone": "telemetry"}
    assert state["bess"]["soc_pct"] == pytest.approx(measured["bess"]["telemetry"]["soc_pct"])
    read_at = dt.datetime.fromisoformat(measured["bess"]["telemetry"]["at"].replace("Z", "+00:00"))
    assert dt.datetime.fromisoformat(state["bess"]["at"].replace("Z", "+00:00")) == read_at.replace(microsecond=0)
    assert state["zone"]["temp_c"] == pytest.approx(measured["zone"]["telemetry"]["temp_c"])
    tanks = [d["temp_c"] for d in measured["heaters"]["device_telemetry"]]
    assert len(tanks) == 3 and state["heaters"]["temp_c"] == pytest.approx(sum(tanks) / 3)
    assert state["heaters"]["temp_c"] == pytest.approx((50 + 55 + 62) / 3, abs=1.0)  # heated a little meanwhile
    checked({"path": path}, run)



def test_fresh_telemetry_starts_every_asset_and_groups_average_their_devices(world, kit):
    at = START_UTC - dt.timedelta(minutes=10)
    store_rounds(world, kit, record(at, every_asset(at)))
    run, rec, output = intraday(world)
    state = rec["initial_state"]
    assert {a: e["source"] for a, e in state.items()} == dict.fromkeys(
        ("bess", "bess-2", "zone", "hp", "boiler", "heaters", "tanks", "ev", "evs"), "telemetry")
    assert state["bess"] == {"source": "telemetry", "at": "2024-06-25T11:50:00Z", "soc_pct": 61.0}
    assert state["heaters"]["temp_c"] == pytest.approx((50 + 55 + 62) / 3) and state["heaters"]["devices"] == 3
    assert state["zone"]["temp_c"] == 21.5 and state["boiler"]["temp_c"] == 64.0
    # the car in the charger: 4 kWh through the meter, 95 % of it in the battery
    assert state["ev"]["vehicles_plugged"] == 1 and state["ev"]["energy_delivered_kwh"] == pytest.approx(3.8)
    assert state["evs"]["vehicles_plugged"] == 0
    assert rec["initial_state_warnings"] == [] and rec["initial_state_source"] == ""
    assert rec["initial_state_telemetry"] == {"db": make_url(world["db"]).render_as_string(hide_password=True),
                                              "max_age_min": 30.0}
    assert "9 from telemetry" in output
    soc = pd.read_parquet(run / "schedule.parquet").query("asset_id == 'bess'")["state"].iloc[0]
    assert abs(soc - 6.1) <= 5 * 0.25  # the first interval moves on from the measured 6.1 kWh
    checked(world, run)


def test_implausible_stale_offline_or_incomplete_telemetry_falls_back_to_the_schedule(world, kit):
    old = START_UTC - dt.timedelta(minutes=50)
    fresh = START_UTC - dt.timedelta(minutes=5)
    readings = every_asset(fresh)
    readings["bess"] = ("battery", tele("bess", fresh, soc_pct=104.0), None)
    readings["hp"] = ("heat_pump", tele("hp", fresh, temp_c=22.0, quality="questionable"), None)
    readings["boiler"] = ("water_heater", tele("boiler", fresh, temp_c=float("nan")), None)
    readings["tanks"] = ("water_heater", *group("tanks", fresh, {"tank-1": {"temp_c": 58.0},
                                                                 "tank-2": {"connected": False,
                                                                            "quality": "unreachable"}}))
    readings["evs"] = ("ev_charger", *group("evs", fresh, {"CP-EVS-1": {"ev_plugged": True, "ev_energy_kwh": 2.0}}))
    readings["ev"] = ("ev_charger", tele("ev", fresh, ev_plugged=True, ev_energy_kwh=None), None)
    stale_zone = {"zone": ("climate", tele("zone", old, temp_c=21.5), None)}
    del readings["zone"]
    store_rounds(world, kit, record(old, stale_zone), record(fresh, readings))
    run, rec, output = intraday(world)
    state = rec["initial_state"]
    reasons = {a: e.get("reason", "") for a, e in state.items()}
    assert {a for a, e in state.items() if e["source"] == "telemetry"} == {"bess-2", "heaters"}
    assert {a for a, e in state.items() if e["source"] == "schedule"} == {
        "bess", "zone", "hp", "boiler", "tanks", "evs", "ev"}
    assert "implausible soc_pct: 104 % is outside 0..100 %" in reasons["bess"]
    assert "(2024-06-25T11:10:00Z) is 50 min old (limit 30 min)" in reasons["zone"]
    assert "reported questionable data" in reasons["hp"]
    assert "reports no temp_c" in reasons["boiler"]  # NaN is stored as no value
    assert "device tank-2 did not answer" in reasons["tanks"]
    assert "1 of 2 devices have no reading" in reasons["evs"]
    assert "has a car plugged in but reports no session energy" in reasons["ev"]
    expected = pd.read_parquet(world["day_ahead"] / "states.parquet")
    at_start = expected[expected.interval_end == pd.Timestamp(START_UTC)].set_index(["asset_id", "key"])["value"]
    assert state["bess"]["soc_pct"] == pytest.approx(at_start[("bess", "soc_pct")])
    assert state["bess"]["run"] == str(world["day_ahead"]) and state["bess"]["at"] == "2024-06-25T12:00:00Z"
    assert rec["initial_state_source"] == str(world["day_ahead"])
    assert "note: bess starts from the schedule" in output
    checked(world, run)


def test_without_telemetry_or_schedule_an_asset_starts_from_its_configuration_with_a_warning(world, kit, tmp_path):
    old = START_UTC - dt.timedelta(hours=3)
    store_rounds(world, kit, record(old, every_asset(old)))
    shutil.rmtree(world["day_ahead"])
    run, rec, output = intraday(world)
    state = rec["initial_state"]
    assert {e["source"] for e in state.values()} == {"config"}
    assert state["bess"]["soc_pct"] == 50.0 and state["bess"]["at"] is None
    assert state["bess"]["reason"].startswith("telemetry: the device's newest reading (2024-06-25T09:00:00Z) is "
                                              "180 min old (limit 30 min); schedule: no stored schedule")
    assert "warning: bess (battery): no stored schedule of 2024-06-25 holds its state at 2024-06-25T14:00+02:00" \
        in output
    warned = {w.split(" ")[0] for w in rec["initial_state_warnings"]}
    assert warned == {"bess", "bess-2", "zone", "hp", "boiler", "heaters", "tanks", "evs"}  # ev: no car due at 14:00
    checked(world, run)
    # a longer age limit takes the same readings
    _run, rec_60, _out = intraday(world, START, "--max-age-min", "200")
    assert rec_60["initial_state"]["bess"]["source"] == "telemetry"
    assert rec_60["initial_state_telemetry"]["max_age_min"] == 200.0


def test_a_car_plugged_in_early_charges_from_now_and_an_absent_car_is_not_charged(world, kit):
    at = START_UTC - dt.timedelta(minutes=10)
    store_rounds(world, kit, record(at, every_asset(at)))
    run, _rec, _output = intraday(world)
    # ev: its 18:00-23:00 car is there at 14:00 with 3.8 kWh; it takes the rest in the cheap 15:00 hour
    ev = power(run, "ev", 14, 24)
    assert power(run, "ev", 15, 16).sum() * 0.25 * 0.95 == pytest.approx(10 - 3.8, abs=1e-4)
    assert ev.drop(power(run, "ev", 15, 16).index).abs().max() < 1e-6
    schedule = pd.read_parquet(run / "schedule.parquet").query("asset_id == 'ev'").set_index("interval_end")
    assert schedule["state"][pd.Timestamp("2024-06-25T23:00+02:00")] == pytest.approx(10.0, abs=1e-4)
    # evs: the 08:00-20:00 car was expected but is absent: nothing until 20:00; the 21:00 car is charged
    assert power(run, "evs", 14, 21).abs().max() < 1e-6
    assert power(run, "evs", 21, 23).sum() * 0.25 * 0.95 == pytest.approx(5.0, abs=1e-4)
    kpis = json.loads((run / "kpis.json").read_text())
    assert not [v for v in kpis["violations"]["list"] if v["asset_id"] in ("ev", "evs")]
    checked(world, run)

    # an hour later without new telemetry the run continues from this one: the early car is still there, the absent
    # one still absent (until it is measured again)
    later, rec_later, _out = intraday(world, "2024-06-25T15:00")
    assert rec_later["initial_state"]["evs"]["source"] == "schedule"
    assert rec_later["initial_state"]["evs"]["vehicles_plugged"] == 0
    assert rec_later["initial_state"]["ev"]["vehicles_plugged"] == 1
    assert power(later, "evs", 15, 21).abs().max() < 1e-6
    checked(world, later)


@pytest.mark.parametrize("second_plugged", [False, True])
def test_a_counted_charger_counts_its_plugged_devices(world, kit, second_plugged):
    """evs (2 DC chargers): one car measured on CP-EVS-1 is the 08:00-20:00 session's; a second one, on CP-EVS-2,
    is the 21:00-23:00 session's car plugged in early."""
    at = START_UTC - dt.timedelta(minutes=10)
    readings = every_asset(at)
    readings["evs"] = ("ev_charger", *group("evs", at, {
        "CP-EVS-1": {"ev_plugged": True, "ev_energy_kwh": 2.0},
        "CP-EVS-2": {"ev_plugged": second_plugged, "ev_energy_kwh": 1.0 if second_plugged else 0.0}}))
    store_rounds(world, kit, record(at, readings))
    run, rec, _output = intraday(world)
    evs = rec["initial_state"]["evs"]
    assert (evs["source"], evs["vehicles_plugged"], evs["devices"]) == ("telemetry", 1 + second_plugged, 2)
    assert evs["energy_delivered_kwh"] == pytest.approx(0.95 * (2.0 + second_plugged))
    got = power(run, "evs", 14, 24).sum() * 0.25 * 0.95  # into the cars, from the start to midnight
    assert got == pytest.approx(8.0 + 5.0 - evs["energy_delivered_kwh"], abs=1e-4)  # both sessions' needs met
    late = power(run, "evs", 20, 24).sum() * 0.25 * 0.95
    if second_plugged:  # the early car is there for the cheap 15:00 hour: nothing is left for the evening
        assert late == pytest.approx(0.0, abs=1e-6)
    else:  # the 21:00 car arrives as configured and gets its 5 kWh then
        assert late == pytest.approx(5.0, abs=1e-4) and power(run, "evs", 20, 21).abs().max() < 1e-6
    kpis = json.loads((run / "kpis.json").read_text())
    assert not [v for v in kpis["violations"]["list"] if v["asset_id"] == "evs"]
    checked(world, run)


def test_the_check_holds_a_run_to_the_measured_cars(world, kit, tmp_path):
    """The checker reads the plugged cars from run.json: power for a car measured absent is a breach, and a car
    measured plugged in owes its energy from the start."""
    at = START_UTC - dt.timedelta(minutes=10)
    store_rounds(world, kit, record(at, every_asset(at)))
    run, _rec, _out = intraday(world)
    tampered = shutil.copytree(run, tmp_path / "tampered")
    schedule = pd.read_parquet(tampered / "schedule.parquet")
    evs = schedule.index[(schedule.asset_id == "evs")][8]  # 16:00 local: the absent car's session
    schedule.loc[evs, "power_kw"] = 3.0
    schedule.to_parquet(tampered / "schedule.parquet", index=False)
    result = invoke("check", world["path"], tampered, "--json")
    found = {(b["kind"], b["asset_id"]) for b in json.loads(result.output)["breaches"] if not b["reported"]}
    assert ("ev_unplugged", "evs") in found
    # the same run read as if nobody had been measured: the configured 08:00 car would be owed 8 kWh
    record_ = json.loads((tampered / "run.json").read_text())
    record_["initial_state"]["evs"] = {"source": "config", "at": None, "energy_delivered_kwh": 0.0}
    (tampered / "run.json").write_text(json.dumps(record_))
    result = invoke("check", world["path"], tampered, "--json")
    found = {(b["kind"], b["asset_id"]) for b in json.loads(result.output)["breaches"] if not b["reported"]}
    assert ("ev_energy", "evs") in found


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_telemetry_options_are_refused_before_anything_runs(world, tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"bess": {"soc_pct": 40}}))
    both = invoke("schedule", "intraday", world["path"], "--from", START, "--store", world["store"], "--state", state,
                  "--db", world["db"])
    assert both.exit_code == 2 and "--state gives the states itself" in both.output
    nowhere = f"sqlite:///{tmp_path / 'missing' / 'telemetry.sqlite3'}"
    bad = invoke("schedule", "intraday", world["path"], "--from", START, "--store", world["store"], "--db", nowhere)
    assert bad.exit_code == 2 and "no telemetry database at" in bad.output
    assert invoke("schedule", "intraday", world["path"], "--from", START, "--store", world["store"],
                  "--max-age-min", "-5").exit_code == 2
    for cars, message in ((3, "evs.vehicles_plugged: 3 must be a finite whole number from 0 to 2 (1)"),
                          (1.5, "evs.vehicles_plugged: 1.5 must be a finite whole number from 0 to 2 (1)")):
        state.write_text(json.dumps({"evs": {"vehicles_plugged": cars}}))
        refused = invoke("schedule", "intraday", world["path"], "--from", START, "--store", world["store"], "--state",
                         state)
        assert refused.exit_code == 2 and message in refused.output, refused.output
    assert len(list((world["store"] / NAME / DAY.isoformat()).glob("intraday/v*"))) == 0
    # no database in the store (and none named): no telemetry, said so in the record
    run = written(invoke("schedule", "intraday", world["path"], "--from", START, "--store", world["store"]))
    rec = json.loads((run / "run.json").read_text())
    assert rec["initial_state_telemetry"]["db"] is None
    assert "no telemetry database" in rec["initial_state"]["bess"]["reason"]
    assert rec["initial_state"]["bess"]["source"] == "schedule"
    checked(world, run)
