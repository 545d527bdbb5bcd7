"""A plug-in asset type defined only here (``buffered_heat_pump.py``: two states, its own formulation and physics
check) goes through validate, schema, schedule day-ahead, schedule intraday (twice from the same interval), check,
simulate and dispatch without a change to the flexopt package; and installed plug-ins load from entry points."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib.util
import json
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flexopt.adapters.sim.portfolio_sim import PortfolioSimulation
from flexopt.adapters.sim.util import free_port
from flexopt.check.registry import CHECKS
from flexopt.cli import app
from flexopt.config import plugins
from flexopt.config.asset_types import ASSET_TYPES, register_asset_type
from flexopt.config.loader import PortfolioError, load_portfolio
from flexopt.data.summary import summarise
from flexopt.models.registry import formulation_for

HERE = Path(__file__).resolve().parent
# today (UTC, the portfolio's zone): dispatch sends setpoints of the interval now, which must not have expired
DAY = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).date()
START = f"{DAY}T12:00"  # intraday start
STEP = dt.timedelta(minutes=15)
runner = CliRunner()


def _load_plugin():
    """Import the plug-in once, as an installed distribution's module would be: importing it registers it."""
    name = "flexopt_test_buffered_heat_pump"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "buffered_heat_pump.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


toy = _load_plugin()


def modbus(port: int, device_id: int, setpoint: dict) -> dict:
    return {"protocol": "modbus", "host": "127.0.0.1", "port": port, "device_id": device_id, "timeout_s": 1.0,
            "registers": {"setpoint": setpoint,
                          "active_power": {"address": 100, "data_type": "float32", "table": "input", "unit": "kW"}}}


def portfolio_doc(port: int) -> dict:
    heat_pump = {"type": toy.TYPE, "max_heat_to_room_kw": 8, "tank_litres": 300, "room_resistance_k_per_kw": 5,
                 "room_capacitance_kwh_per_k": 5, "outdoor_temp_c": 5}
    return {
        "portfolio": {"name": "toy-plugin", "timezone": "UTC", "resolution_min": 15},
        "data_sources": {"prices": {"path": "prices.csv", "column": "price", "unit": "EUR/kWh"}},
        "tariff": {"import_price_eur_per_kwh": {"source": "prices"}},
        "sites": [{"id": "house", "assets": [
            {"id": "hp", **heat_pump, "compressor_kw": 5,
             "endpoint": modbus(port, 11, {"address": 200, "data_type": "float32", "unit": "kW"})},
            {"id": "hp-relay", **heat_pump, "count": 2, "compressor_kw": 4,  # behind relays: on/off
             "endpoint": modbus(port, 21, {"address": 5, "table": "coil"})},
            {"id": "house-load", "type": "load", "power_kw": 0.5},
        ]}],
    }


def write_prices(path: Path) -> None:
    """Cheap at night, dear in the evening: the tank is worth charging early."""
    index = pd.date_range(f"{DAY}T00:00Z", periods=96, freq="15min")
    hour = index.hour
    price = np.where(hour < 6, 0.05, np.where((hour >= 17) & (hour < 21), 0.40, 0.20))
    pd.DataFrame({"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": price}).to_csv(path, index=False)


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """The toy portfolio validated, scheduled day-ahead and re-optimised intraday twice from 12:00 in one store."""
    folder = tmp_path_factory.mktemp("toy")
    port = free_port()
    write_prices(folder / "prices.csv")
    path = folder / "portfolio.yaml"
    path.write_text(yaml.safe_dump(portfolio_doc(port)))
    store = folder / "runs"
    validate = invoke("validate", path)
    runs = []
    for args in (("day-ahead", path, "--date", DAY.isoformat()), ("intraday", path, "--from", START),
                 ("intraday", path, "--from", START)):
        result = invoke("schedule", *args, "--store", store)
        assert result.exit_code == 0, result.output
        runs.append(Path(result.output.strip().splitlines()[-1].removeprefix("schedule written to ").strip()))
    return {"folder": folder, "path": path, "port": port, "store": store, "validate": validate, "runs": runs}


def states_at(run: Path, when: str) -> dict:
    states = pd.read_parquet(run / "states.parquet")
    rows = states[states["interval_end"] == pd.Timestamp(when, tz="UTC")]
    return {a: dict(zip(g["key"], g["value"], strict=True)) for a, g in rows.groupby("asset_id")}


def test_the_plugin_is_registered_everywhere_from_its_own_module():
    assert ASSET_TYPES[toy.TYPE] is toy.BufferedHeatPump
    assert formulation_for(toy.TYPE) is toy.BufferedHeatPumpFormulation
    assert CHECKS[toy.TYPE] is toy.check_buffered_heat_pump
    assert set(CHECKS) == set(ASSET_TYPES)
    register_asset_type(toy.BufferedHeatPump)  # registering the same class again changes nothing
    with pytest.raises(ValueError, match="registered twice"):
        register_asset_type(type("Impostor", (toy.BufferedHeatPump,), {"__module__": __name__}))
    assert ASSET_TYPES[toy.TYPE] is toy.BufferedHeatPump


def test_validate_knows_the_type_its_rated_power_and_its_storage(world):
    result = world["validate"]
    assert result.exit_code == 0, result.output
    summary = summarise(load_portfolio(world["path"]), read_data=False)
    assert summary.devices_by_type[toy.TYPE] == 3
    assert summary.power_kw_by_type[toy.TYPE] == pytest.approx(5 + 2 * 4)  # compressors, per device x count
    tank_kwh = 300 * 4.186 / 3600 * (60 - 30)
    assert summary.storage_kwh == pytest.approx(3 * tank_kwh)
    line = next(ln for ln in result.output.splitlines() if toy.TYPE in ln)
    assert "3" in line and "13.0" in line
    assert "valid" in result.output


def test_schema_and_readable_errors_cover_the_plugin_type(world, tmp_path):
    schema = json.loads(invoke("schema").output)
    assert "BufferedHeatPump" in schema["$defs"]
    assert set(schema["$defs"]["BufferedHeatPump"]["properties"]) >= {"compressor_kw", "tank_litres", "endpoint"}
    doc = portfolio_doc(world["port"])
    hp = doc["sites"][0]["assets"][0]
    hp["tank_litre"] = hp.pop("tank_litres")
    hp["cop"] = 50
    (tmp_path / "prices.csv").write_text((world["folder"] / "prices.csv").read_text())
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(PortfolioError) as err:
        load_portfolio(tmp_path / "p.yaml")
    found = {(p.path, p.message.split(";")[0]) for p in err.value.problems}
    assert ("sites[0].assets[0].tank_litre", "unknown key (did you mean 'tank_litres'?)") in found
    assert ("sites[0].assets[0].tank_litres", "required field is missing") in found
    assert any(p.path == "sites[0].assets[0].cop" for p in err.value.problems)  # the type's tag is not in the path


def test_day_ahead_writes_both_states_and_passes_the_check(world):
    run = world["runs"][0]
    states = pd.read_parquet(run / "states.parquet")
    mine = states[states["asset_id"].isin(["hp", "hp-relay"])]
    assert set(zip(mine.asset_id, mine.key, mine.unit, strict=True)) == {
        (a, k, "degC") for a in ("hp", "hp-relay") for k in ("room_temp_c", "tank_temp_c")}
    assert len(mine) == 2 * 2 * 96 and mine["value"].notna().all()
    schedule = pd.read_parquet(run / "schedule.parquet")
    hp = schedule[schedule.asset_id == "hp"]
    room = mine[(mine.asset_id == "hp") & (mine.key == "room_temp_c")]["value"].to_numpy()
    assert hp["state"].to_numpy() == pytest.approx(room) and set(hp["state_unit"]) == {"degC"}  # primary: room
    # the tank is charged in the cheap night and spent in the dear evening
    tank = mine[(mine.asset_id == "hp") & (mine.key == "tank_temp_c")].set_index("interval_end")["value"]
    assert tank[pd.Timestamp(f"{DAY}T06:00Z")] > tank[pd.Timestamp(f"{DAY}T21:00Z")] + 5
    assert hp["power_kw"].max() <= 5 + 1e-6
    result = invoke("check", world["path"], run)
    assert result.exit_code == 0, result.output


def test_intraday_restarts_both_states_from_the_stored_run_also_when_re_run(world):
    day_ahead, first, second = world["runs"]
    expected = states_at(day_ahead, START)
    assert set(expected["hp"]) == {"room_temp_c", "tank_temp_c"}
    assert expected["hp"]["tank_temp_c"] != pytest.approx(40.0)  # not the configured tank: the restart matters
    for run in (first, second):  # the re-run from the same interval finds the day-ahead run before it
        record = json.loads((run / "run.json").read_text())
        for asset_id in ("hp", "hp-relay"):  # both states and where they came from (no telemetry in this store yet)
            entry = record["initial_state"][asset_id]
            assert {k: entry[k] for k in ("room_temp_c", "tank_temp_c")} == expected[asset_id]
            assert (entry["source"], entry["run"], entry["at"]) == ("schedule", str(day_ahead), f"{START}:00Z")
        assert record["initial_state_source"] == str(day_ahead)
        assert record["horizon"]["start_utc"].startswith(f"{DAY}T12:00")
        result = invoke("check", world["path"], run)
        assert result.exit_code == 0, result.output  # the toy's physics from both start states, and start_state


def test_the_check_catches_a_wrong_tank_start_and_a_broken_tank_state(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world["runs"][1], run)
    record = json.loads((run / "run.json").read_text())
    record["initial_state"]["hp"]["tank_temp_c"] += 3.0
    (run / "run.json").write_text(json.dumps(record))
    states = pd.read_parquet(run / "states.parquet")
    at = (states.asset_id == "hp-relay") & (states.key == "tank_temp_c")
    states.loc[states.index[at][10], "value"] += 2.0
    states.to_parquet(run / "states.parquet")
    result = invoke("check", world["path"], run, "--json")
    assert result.exit_code == 1
    breaches = json.loads(result.output)["breaches"]
    found = {(b["kind"], b["asset_id"]) for b in breaches if not b["reported"]}
    assert ("start_state", "hp") in found
    # 2 K more in the tank that the power did not put there: less heat went to the room than the room shows
    assert ("buffer_room", "hp-relay") in found
    assert {k for k, a in found} <= {"start_state", "buffer_room", "buffer_flow", "cost", "site_balance"}


def test_measured_states_are_validated_against_the_types_keys_and_ranges(world, tmp_path):
    state = tmp_path / "state.json"
    for doc, message in (({"hp": {"tank_temp_c": 150}}, "hp.tank_temp_c: 150 must be a finite number from 0 to 100"),
                         ({"hp": {"soc_pct": 50}}, "allowed: room_temp_c, tank_temp_c")):
        state.write_text(json.dumps(doc))
        result = invoke("schedule", "intraday", world["path"], "--from", START, "--state", state,
                        "--out", tmp_path / "never")
        assert result.exit_code == 2 and message in result.output, result.output
    state.write_text(json.dumps({"hp": {"room_temp_c": 19.0, "tank_temp_c": 55.0}}))
    out = tmp_path / "measured"
    result = invoke("schedule", "intraday", world["path"], "--from", START, "--state", state, "--out", out)
    assert result.exit_code == 0, result.output
    recorded = json.loads((out / "run.json").read_text())["initial_state"]
    assert recorded["hp"] == {"source": "file", "at": None, "room_temp_c": 19.0, "tank_temp_c": 55.0}
    assert recorded["hp-relay"]["source"] == "config"  # not in the file
    assert invoke("check", world["path"], out).exit_code == 0


def test_intraday_reads_the_plugins_states_from_telemetry_by_their_names(world):
    """The type does not override ``state_from_readings``: each state comes from the reading's ``extra`` entry of its
    name (what a device reports beyond the common fields), a group's mean; a missing or implausible one falls back."""
    from flexopt.runs.measured import judge
    from flexopt.telemetry import Reading

    at = dt.datetime(2024, 1, 1, 11, 55, tzinfo=dt.UTC)
    empty = dict.fromkeys(f.name for f in dataclasses.fields(Reading))

    def reading(device: str, **extra: float) -> Reading:
        return Reading(**empty | {"asset_id": "hp-relay", "device": device, "at": at, "connected": True,
                                  "quality": "good", "extra": extra})

    hp = {a.id: a for _, a in load_portfolio(world["path"]).portfolio.assets()}["hp-relay"]  # count 2
    start, limit = at + dt.timedelta(minutes=5), dt.timedelta(minutes=30)
    found = judge(hp, [reading("d1", room_temp_c=20.0, tank_temp_c=45.0),
                       reading("d2", room_temp_c=21.0, tank_temp_c=47.0)], start, limit)
    assert found.usable and found.values == {"room_temp_c": 20.5, "tank_temp_c": 46.0} and found.devices == 2
    missing = judge(hp, [reading("d1", room_temp_c=20.0), reading("d2", room_temp_c=21.0, tank_temp_c=47.0)], start,
                    limit)
    assert missing.reason == "device d1 reports no tank_temp_c"
    boiling = judge(hp, [reading("d1", room_temp_c=20.0, tank_temp_c=140.0),
                         reading("d2", room_temp_c=21.0, tank_temp_c=140.0)], start, limit)
    assert boiling.reason == "implausible tank_temp_c: 140 degC is outside 0..100 degC"


def dispatch_time() -> dt.datetime:
    """Now, or the next interval when less than a minute of this one is left (so no setpoint expires on the way)."""
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    first = now.replace(minute=now.minute - now.minute % 15)
    return now if first + STEP - now > dt.timedelta(minutes=1) else first + STEP


def _dispatch(world, at: dt.datetime, *extra: str) -> dict:
    result = invoke("dispatch", world["path"], "--store", world["store"], "--once", "--at",
                    at.strftime("%Y-%m-%dT%H:%M"), "--settle-s", "0.2", *extra)
    assert result.exit_code == 0, result.output
    records = sorted((world["store"] / "toy-plugin" / DAY.isoformat() / "dispatch").glob("*.json"))
    return json.loads(records[-1].read_text())


@contextlib.contextmanager
def simulators(portfolio):
    """The portfolio's simulated devices on their own event loop, so the CLI can run its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sim = PortfolioSimulation(portfolio)
    asyncio.run_coroutine_threadsafe(sim.start(), loop).result(20)
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_simulate_and_dispatch_carry_the_setpoints_clamped_and_converted_by_the_type(world, tmp_path):
    result = invoke("simulate", world["path"], "--duration", "0.3")
    assert result.exit_code == 0, result.output
    assert "hp, hp-relay" in result.output and "simulators stopped" in result.output
    at = dispatch_time()
    assert at.date() == DAY
    # the newest run of the day whose intervals hold `at`: an intraday run from 12:00, else the day-ahead run
    newest = world["runs"][2] if at.hour >= 12 else world["runs"][0]
    frame = pd.read_parquet(newest / "schedule.parquet")
    ts = pd.Timestamp(at)
    now = frame[(frame.interval_start <= ts) & (frame.interval_end > ts)].set_index("asset_id")
    with simulators(load_portfolio(world["path"]).portfolio) as sim:
        record = _dispatch(world, at)
        assert record["schedule"]["path"] == str(newest)
        hp = record["assets"]["hp"]["command"]
        assert (hp["status"], hp["unit"], hp["clamped"]) == ("confirmed", "kW", False)
        assert hp["sent"] == pytest.approx(now.loc["hp", "setpoint"])
        (device,) = [a for bms in sim.simulators["modbus"].servers.values() for a in bms.assets if a.asset_id == "hp"]
        assert (device.min_value, device.max_value) == (0.0, 5.0)  # the simulator accepts what the type says
        assert device.setpoint == pytest.approx(hp["sent"], abs=1e-4)
        # behind relays the type turns kW into on/off: on for at least half the compressor
        relay = record["assets"]["hp-relay"]
        assert relay["devices"] == 2 and relay["command"]["unit"] == "on_off"
        want = float(now.loc["hp-relay", "setpoint"] >= 0.5 * 4)
        assert [d["sent"] for d in relay["device_results"]] == [want, want]
        assert all(d["status"] == "confirmed" for d in relay["device_results"])

        # a schedule asking for more than the compressor gives leaves clamped to the type's limits
        tampered = tmp_path / "run"
        shutil.copytree(newest, tampered)
        edited = frame.copy()
        edited.loc[edited.asset_id == "hp", "setpoint"] = 99.0
        edited.to_parquet(tampered / "schedule.parquet")
        record = _dispatch(world, at, "--run", str(tampered))
        hp = record["assets"]["hp"]["command"]
        assert (hp["status"], hp["clamped"], hp["requested"], hp["sent"]) == ("confirmed", True, 99.0, 5.0)
        assert ("hp", "clamped") in {(a["asset_id"], a["kind"]) for a in record["alarms"]}
        assert device.setpoint == pytest.approx(5.0, abs=1e-4)


def test_installed_plugins_load_once_from_their_entry_point(tmp_path, monkeypatch):
    """A distribution declaring an entry point in the group flexopt.plugins is imported before validation."""
    dist = tmp_path / "toy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[flexopt.plugins]\ntoy = toy_plugin_module\n")
    (tmp_path / "toy_plugin_module.py").write_text("import builtins\nbuiltins.TOY_PLUGIN_LOADS = "
                                                   "getattr(builtins, 'TOY_PLUGIN_LOADS', 0) + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "_error", None)
    monkeypatch.delitem(sys.modules, "toy_plugin_module", raising=False)
    import builtins

    monkeypatch.setattr(builtins, "TOY_PLUGIN_LOADS", 0, raising=False)
    plugins.load_plugins()
    plugins.load_plugins()
    assert builtins.TOY_PLUGIN_LOADS == 1


def test_a_broken_plugin_is_a_problem_naming_it_not_a_traceback(tmp_path, monkeypatch, world):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[flexopt.plugins]\nbroken = broken_plugin_module\n")
    (tmp_path / "broken_plugin_module.py").write_text("raise ImportError('needs a library that is not there')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "_error", None)
    result = invoke("validate", world["path"])
    assert result.exit_code == 2
    assert "plug-in 'broken'" in result.output and "needs a library that is not there" in result.output
