"""`flexopt dispatch` end to end against the real simulators on 127.0.0.1: a battery (IEC 104), 3 water
heaters behind one cloud (HTTP, count 3), a climate zone (Modbus) and 2 chargers (OCPP, count 2)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import socket
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flexopt.adapters.sim.device_cloud import DEFAULT_TOKEN
from flexopt.adapters.sim.portfolio_sim import PortfolioSimulation
from flexopt.adapters.sim.util import free_port
from flexopt.cli import app
from flexopt.config.loader import load_portfolio

STEP = dt.timedelta(minutes=15)


def portfolio_dict(ports: dict[str, int]) -> dict:
    http = f"http://127.0.0.1:{ports['http']}"
    return {
        "portfolio": {"name": "ops-test", "timezone": "UTC", "resolution_min": 15},
        "tariff": {"import_price_eur_per_kwh": 0.2},
        "ocpp_central_system": {"host": "127.0.0.1", "port": ports["ocpp"], "response_timeout_s": 3},
        "sites": [{
            "id": "site1",
            "assets": [
                {"id": "bess", "type": "battery", "power_kw": 50, "energy_kwh": 100,
                 "endpoint": {"protocol": "iec104", "host": "127.0.0.1", "port": ports["iec104"],
                              "command_timeout_ms": 1000,
                              "points": {"setpoint_ioa": 5001, "active_power_ioa": 1001, "soc_ioa": 1004,
                                         "availability_ioa": 2001}}},
                {"id": "heaters", "type": "water_heater", "count": 3, "volume_l": 150, "element_kw": 2.0,
                 "endpoint": {"protocol": "http", "base_url": http, "device_id": "wh", "token_env": "OPS_TEST_TOKEN",
                              "timeout_s": 2, "retries": 0, "setpoint_unit": "kW",
                              "setpoint": {"method": "POST", "path": "/d/{device_id}/power",
                                           "body": {"kw": "{value}"}, "fields": {"status": "status"}},
                              "telemetry": {"path": "/d/{device_id}",
                                            "fields": {"power_w": "p", "temp_c": "t", "online": "ok"}}}},
                {"id": "zone", "type": "climate", "max_electric_kw": 5, "thermal_resistance_k_per_kw": 10,
                 "thermal_capacitance_kwh_per_k": 4, "initial_temp_c": 20, "outdoor_temp_c": 10,
                 "default_min_temp_c": 18, "default_max_temp_c": 26,
                 "endpoint": {"protocol": "modbus", "host": "127.0.0.1", "port": ports["modbus"], "device_id": 31,
                              "timeout_s": 0.5,
                              "registers": {
                                  "setpoint": {"address": 200, "data_type": "int16", "scale": 0.1, "unit": "degC"},
                                  "temperature": {"address": 120, "data_type": "int16", "scale": 0.1,
                                                  "table": "input", "unit": "degC"},
                                  "active_power": {"address": 100, "data_type": "float32", "table": "input",
                                                   "unit": "kW"}}}},
                {"id": "ev", "type": "ev_charger", "count": 2, "max_charge_kw": 11,
                 "endpoint": {"protocol": "ocpp", "charge_point_id": "OPS-EV", "version": "1.6",
                              "password_env": "OPS_TEST_CP_PW"}},
                {"id": "site-load", "type": "load", "power_kw": 5},
            ],
        }],
    }


def schedule_frame(first: dt.datetime, n: int) -> pd.DataFrame:
    """Per-device setpoints: battery -20 kW, heaters 3 kW (above their 2 kW element), zone 21.5 degC,
    chargers 7 kW now then 4 kW; the load has no setpoint."""
    rows = []
    for i in range(n):
        start, end = first + i * STEP, first + (i + 1) * STEP
        ev_kw = 7.0 if i <= 1 else 4.0
        for asset, kind, power, sp, unit in (
            ("bess", "battery", -20.0, -20.0, "kW"),
            ("heaters", "water_heater", 6.0, 3.0, "kW"),
            ("zone", "climate", 1.0, 21.5, "degC"),
            ("ev", "ev_charger", 2 * ev_kw, ev_kw, "kW"),
            ("site-load", "load", 5.0, float("nan"), ""),
        ):
            rows.append({"interval_start": start, "interval_end": end, "site_id": "site1", "asset_id": asset,
                         "asset_type": kind, "power_kw": power, "baseline_kw": 0.0, "setpoint": sp,
                         "setpoint_unit": unit, "state": float("nan"), "state_unit": ""})
    frame = pd.DataFrame(rows)
    for col in ("interval_start", "interval_end"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def write_run(folder: Path, frame: pd.DataFrame, day: dt.date) -> Path:
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "schedule.parquet")
    (folder / "run.json").write_text(json.dumps({"kind": "day-ahead", "date": day.isoformat(),
                                                 "portfolio": {"name": "ops-test"}}))
    return folder


class SimThread:
    """The portfolio's simulators on their own event loop, so the CLI can run its own with asyncio.run."""

    def __init__(self, portfolio, ocpp_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make() -> PortfolioSimulation:
            sim = PortfolioSimulation(portfolio, ocpp_url=ocpp_url, ocpp_retry_s=0.2)
            await sim.start()
            return sim

        self.sim = self.call(make())

    def call(self, coro, timeout_s: float = 20.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.call(self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("OPS_TEST_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("OPS_TEST_CP_PW", "wallbox-pw")
    ports = {k: free_port() for k in ("iec104", "modbus", "http", "ocpp")}
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(portfolio_dict(ports)))
    portfolio = load_portfolio(path).portfolio
    # a time with at least a minute left in its interval, so no setpoint expires during the round
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = now.replace(minute=now.minute - now.minute % 15, second=0)
    at = now if first + STEP - now > dt.timedelta(minutes=1) else first + STEP
    frame = schedule_frame(first - STEP, 6)
    store = tmp_path / "runs"
    for day in {at.date(), now.date()}:  # the continuous test dispatches "now", which may be the day before
        write_run(store / "ops-test" / day.isoformat() / "day-ahead" / "v001", frame, day)
    sims = SimThread(portfolio, f"ws://127.0.0.1:{ports['ocpp']}")
    yield {"path": path, "store": store, "at": at, "sims": sims, "ports": ports, "frame": frame}
    sims.close()


def run_cli(setup, *extra: str):
    args = ["dispatch", str(setup["path"]), "--store", str(setup["store"]), "--once",
            "--at", setup["at"].strftime("%Y-%m-%dT%H:%M:%S"), "--settle-s", "0.5", "--connect-wait-s", "10", *extra]
    return CliRunner().invoke(app, args)


def alarm_keys(record: dict) -> set[tuple[str, str, str]]:
    return {(a["asset_id"], a["kind"], a["severity"]) for a in record["alarms"]}


def test_dispatch_rounds_reach_every_device_and_are_recorded(setup):
    res = run_cli(setup)
    assert res.exit_code == 0, res.output
    folder = setup["store"] / "ops-test" / setup["at"].date().isoformat() / "dispatch"
    files = sorted(folder.glob("*.json"))
    assert [f.name for f in files] == [setup["at"].strftime("%Y%m%dT%H%M%SZ") + "-1.json"]
    first_bytes = files[0].read_bytes()
    rec = json.loads(first_bytes)
    assets = rec["assets"]
    assert rec["schedule"]["version"] == "v001"
    assert set(assets) == {"bess", "heaters", "zone", "ev"}  # the load has no endpoint
    for asset_id in ("bess", "heaters", "zone", "ev"):
        assert assets[asset_id]["command"]["status"] == "confirmed", assets[asset_id]["command"]
    assert rec["summary"]["confirmed"] == 4 and rec["summary"]["failed"] == 0
    assert not [a for a in rec["alarms"] if a["severity"] == "critical"], rec["alarms"]

    # battery: the RTU runs at the setpoint
    bess = assets["bess"]
    assert bess["command"]["sent"] == -20.0
    assert bess["telemetry"]["active_power_kw"] == pytest.approx(-20.0)
    assert bess["deviation_kw"] == pytest.approx(0.0, abs=0.01)

    # heaters: 3 devices, 3 kW asked, clamped to the 2 kW element of each
    heaters = assets["heaters"]
    assert heaters["devices"] == 3
    assert heaters["command"]["clamped"] and heaters["command"]["requested"] == 3.0
    assert heaters["command"]["sent"] == 2.0
    assert [d["device"] for d in heaters["device_results"]] == ["wh-1", "wh-2", "wh-3"]
    assert all(d["status"] == "confirmed" and d["sent"] == 2.0 for d in heaters["device_results"])
    assert ("heaters", "clamped", "warning") in alarm_keys(rec)
    assert heaters["telemetry"]["active_power_kw"] == pytest.approx(6.0)  # 3 x 2 kW, summed
    clouds = list(setup["sims"].sim.simulators["http"].clouds.values())
    assert sorted(d.endpoint.device_id for d, role in clouds[0].devices.values() if role == "setpoint") == [
        "wh-1", "wh-2", "wh-3"]

    # the zone got its temperature setpoint
    assert assets["zone"]["command"]["sent"] == pytest.approx(21.5) and assets["zone"]["command"]["unit"] == "degC"

    # chargers: each holds a profile for the rest of the schedule (7 kW now, then 4 kW)
    ev = assets["ev"]
    assert [d["device"] for d in ev["device_results"]] == ["OPS-EV-1", "OPS-EV-2"]
    rest = setup["frame"][(setup["frame"]["asset_id"] == "ev")
                          & (setup["frame"]["interval_end"] > pd.Timestamp(setup["at"]))]
    expected_w = [1000.0 * kw for kw in rest["setpoint"]]
    assert ev["profile_periods"] == len(expected_w) >= 4
    for cp_id in ("OPS-EV-1", "OPS-EV-2"):
        profile = setup["sims"].sim.simulators["ocpp"].charger(cp_id).profile_calls[-1]
        periods = profile["charging_schedule"]["charging_schedule_period"]
        assert [p["limit"] for p in periods] == expected_w
        assert [p["start_period"] for p in periods] == [900 * i for i in range(len(expected_w))]

    lines = list(csv.reader((folder / "rounds.csv").open()))
    assert lines[0][0] == "file" and len(lines) == 2 and lines[1][0] == files[0].name
    assert "4 confirmed" in res.output

    # the BMS goes down: its zone is an unreachable alarm, everything else still confirmed
    bms = next(iter(setup["sims"].sim.simulators["modbus"].servers.values()))
    setup["sims"].call(bms.stop())
    res = run_cli(setup, "--fail-on-alarm")
    assert res.exit_code == 4, res.output
    files = sorted(folder.glob("*.json"))
    assert len(files) == 2 and files[0].read_bytes() == first_bytes  # the first record is untouched
    rec2 = json.loads(files[1].read_text())
    assert files[1].name.endswith("-2.json")
    assert rec2["assets"]["zone"]["command"]["status"] == "unreachable"
    assert ("zone", "unreachable", "critical") in alarm_keys(rec2)
    assert rec2["assets"]["zone"]["telemetry"]["connected"] is False
    for asset_id in ("bess", "heaters", "ev"):
        assert rec2["assets"][asset_id]["command"]["status"] == "confirmed", rec2["assets"][asset_id]["command"]
    assert {a["asset_id"] for a in rec2["alarms"] if a["severity"] == "critical"} == {"zone"}
    lines = list(csv.reader((folder / "rounds.csv").open()))
    assert len(lines) == 3 and lines[1][0] == files[0].name and lines[2][0] == files[1].name


def test_no_schedule_for_the_day_is_exit_2(setup):
    other_day = (setup["at"] + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    res = CliRunner().invoke(app, ["dispatch", str(setup["path"]), "--store", str(setup["store"]), "--once",
                                   "--at", other_day])
    assert res.exit_code == 2
    assert "no schedule for ops-test on" in res.output
    assert not (setup["store"] / "ops-test" / other_day[:10]).exists()  # nothing touched, nothing written


def test_at_needs_once(setup):
    res = CliRunner().invoke(app, ["dispatch", str(setup["path"]), "--store", str(setup["store"]),
                                   "--at", "2024-06-25T12:00"])
    assert res.exit_code == 2 and "--at needs --once" in res.output


def test_continuous_dispatch_follows_the_clock_until_duration(setup):
    res = CliRunner().invoke(app, ["dispatch", str(setup["path"]), "--store", str(setup["store"]),
                                   "--duration", "1", "--settle-s", "0.2", "--connect-wait-s", "10"])
    assert res.exit_code == 0, res.output
    day = dt.datetime.now(dt.UTC).date().isoformat()
    records = [json.loads(p.read_text()) for p in (setup["store"] / "ops-test").glob("*/dispatch/*.json")]
    assert records and all(r["schedule"]["version"] == "v001" for r in records)
    assert records[0]["at"][:10] in (day, setup["at"].date().isoformat())
    assert records[0]["summary"]["sent"] == 4


def test_ocpp_port_taken_is_an_alarm_not_a_crash(setup):
    with socket.socket() as blocker:  # someone else listens where the central system should
        blocker.bind(("127.0.0.1", setup["ports"]["ocpp"]))
        blocker.listen()
        res = run_cli(setup)
    assert res.exit_code == 0, res.output
    (path,) = (setup["store"] / "ops-test").glob("*/dispatch/*.json")
    rec = json.loads(path.read_text())
    assert ("*", "central_system", "critical") in alarm_keys(rec)
    assert rec["assets"]["ev"]["command"]["status"] == "unreachable"
    assert "OPS-EV-1 (unreachable" in rec["assets"]["ev"]["command"]["reason"]
    assert {a: rec["assets"][a]["command"]["status"] for a in ("bess", "heaters", "zone")} == dict.fromkeys(
        ("bess", "heaters", "zone"), "confirmed")
