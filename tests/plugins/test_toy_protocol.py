"""A protocol defined here, in tests/, and registered from here: validate, schedule, simulate and dispatch find it
without a file of the package knowing it (tests/plugins/toy_jsonl.py: a line-based JSON-over-TCP device).

``flexopt simulate`` runs in a second process that finds the toy through the ``flexopt.plugins`` entry point of a
distribution on its path, as a plug-in installed with pip would be found; validate, schedule and dispatch run here,
with the toy registered in this process. Everything talks over real sockets on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flexopt.adapters.factory import adapter_for
from flexopt.adapters.sim.portfolio_sim import PortfolioSimulation
from flexopt.adapters.sim.util import free_port
from flexopt.cli import app
from flexopt.config.loader import load_portfolio
from flexopt.config.protocols import Protocol, ProtocolError, register, registered, unregister

HERE = Path(__file__).resolve().parent
STEP = dt.timedelta(minutes=15)


def _import_toy():
    spec = importlib.util.spec_from_file_location("toy_jsonl", HERE / "toy_jsonl.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["toy_jsonl"] = module
    spec.loader.exec_module(module)
    return module


toy = _import_toy()


@pytest.fixture
def jsonl():
    """The toy protocol registered in this process for one test."""
    register(toy.PROTOCOL)
    yield toy.PROTOCOL
    unregister("jsonl")


def portfolio_doc(port: int, assets: list[dict] | None = None) -> dict:
    """A battery of two toy devices (10 kW, 20 kWh each) beside a 15 kW load; prices from prices.csv."""
    return {
        "portfolio": {"name": "toy", "timezone": "UTC", "resolution_min": 15},
        "data_sources": {"prices": {"path": "prices.csv", "column": "price", "unit": "EUR/kWh"}},
        "tariff": {"import_price_eur_per_kwh": {"source": "prices"}},
        "sites": [{"id": "site", "assets": assets or [
            {"id": "bess", "type": "battery", "count": 2, "power_kw": 10, "energy_kwh": 20,
             "endpoint": {"protocol": "jsonl", "host": "127.0.0.1", "port": port, "unit": "bess"}},
            {"id": "house", "type": "load", "power_kw": 15},
        ]}],
    }


def write_portfolio(folder: Path, doc: dict, cheap: dt.datetime) -> Path:
    """The portfolio and a day of prices in which the interval starting at ``cheap`` costs almost nothing."""
    day = pd.date_range(cheap.replace(hour=0, minute=0), periods=96, freq="15min")
    price = [0.01 if t == pd.Timestamp(cheap) else 0.40 for t in day]
    pd.DataFrame({"timestamp": day.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": price}).to_csv(
        folder / "prices.csv", index=False)
    path = folder / "toy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def dispatch_time() -> tuple[dt.datetime, dt.datetime]:
    """A time with at least a minute left in its interval (no setpoint expires during the round), and that
    interval's start."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now.replace(minute=now.minute - now.minute % 15, second=0)
    if start + STEP - now > dt.timedelta(minutes=1):
        return now, start
    return start + STEP, start + STEP


class Simulate:
    """``flexopt simulate`` in its own process, the toy found through an entry point; its lines in a queue."""

    def __init__(self, path: Path, site: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(HERE)])}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from flexopt.cli import app; app()", "simulate", str(path), "--duration", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line.rstrip()) for line in self.proc.stdout],
                         daemon=True).start()

    def wait_for(self, text: str, timeout_s: float = 60.0) -> str:
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout_s)
        while dt.datetime.now() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, "flexopt simulate ended:\n" + "\n".join(self.seen)
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} from flexopt simulate within {timeout_s} s:\n" + "\n".join(self.seen))

    def stop(self) -> int:
        self.proc.terminate()  # SIGTERM: simulate stops its simulators and exits 0
        return self.proc.wait(20)


def plugin_distribution(site: Path, entry_point: str = "jsonl = toy_jsonl:PROTOCOL") -> Path:
    """A distribution on ``site`` whose entry point in ``flexopt.plugins`` names the toy protocol."""
    info = site / "toy_jsonl_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-jsonl-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[flexopt.plugins]\n{entry_point}\n")
    return site


def round_record(store: Path, day: dt.date) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / "toy" / day.isoformat() / "dispatch").glob("*.json"))]


def test_a_protocol_from_tests_is_validated_scheduled_simulated_and_dispatched(jsonl, tmp_path):
    at, cheap = dispatch_time()
    port = free_port()
    path = write_portfolio(tmp_path, portfolio_doc(port), cheap)
    runner = CliRunner()

    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    assert "protocols: jsonl (2)" in res.output

    store = tmp_path / "runs"
    res = runner.invoke(app, ["schedule", "day-ahead", str(path), "--date", at.date().isoformat(),
                              "--store", str(store)])
    assert res.exit_code == 0, res.output
    (run,) = (store / "toy" / at.date().isoformat() / "day-ahead").iterdir()
    frame = pd.read_parquet(run / "schedule.parquet")
    now_row = frame[(frame.asset_id == "bess") & (frame.interval_start == pd.Timestamp(cheap))].iloc[0]
    assert now_row.setpoint == pytest.approx(10.0) and now_row.setpoint_unit == "kW"  # each device charges fully

    sim = Simulate(path, plugin_distribution(tmp_path / "site"))
    try:
        sim.wait_for("running for 120 s")
        (line,) = [line for line in sim.seen if f"127.0.0.1:{port}" in line]  # its summary line
        assert "jsonl" in line and "bess" in line and "2 devices" in line

        at_text = at.strftime("%Y-%m-%dT%H:%M:%S")
        res = runner.invoke(app, ["dispatch", str(path), "--store", str(store), "--once", "--at", at_text,
                                  "--settle-s", "0.2"])
        assert res.exit_code == 0, res.output
        for unit in ("bess-1", "bess-2"):
            sim.wait_for(f"jsonl-sim: {unit} set {now_row.setpoint}")
        (record,) = round_record(store, at.date())
        bess = record["assets"]["bess"]
        assert bess["command"]["status"] == "confirmed" and not bess["command"]["clamped"]
        assert [d["device"] for d in bess["device_results"]] == ["bess-1", "bess-2"]
        assert bess["telemetry"]["active_power_kw"] == pytest.approx(20.0)  # two devices at 10 kW, read back
        assert [t["setpoint"] for t in bess["device_telemetry"]] == [10.0, 10.0]
        assert not [a for a in record["alarms"] if a["severity"] == "critical"], record["alarms"]

        # a schedule asking for more than a device can do: the device gets the clamped value
        greedy = tmp_path / "greedy-run"
        shutil.copytree(run, greedy)
        frame.loc[frame.asset_id == "bess", "setpoint"] = -25.0
        frame.to_parquet(greedy / "schedule.parquet")
        res = runner.invoke(app, ["dispatch", str(path), "--store", str(store), "--run", str(greedy), "--once",
                                  "--at", at_text, "--settle-s", "0.2"])
        assert res.exit_code == 0, res.output
        for unit in ("bess-1", "bess-2"):
            sim.wait_for(f"jsonl-sim: {unit} set -10.0")
        record = round_record(store, at.date())[-1]
        command = record["assets"]["bess"]["command"]
        assert command["clamped"] and command["requested"] == -25.0 and command["sent"] == -10.0
        assert command["status"] == "confirmed"
        assert record["assets"]["bess"]["telemetry"]["active_power_kw"] == pytest.approx(-20.0)
        assert ("bess", "clamped") in {(a["asset_id"], a["kind"]) for a in record["alarms"]}
        assert not any("-25" in line for line in sim.seen)  # the unclamped value never left flexopt
    finally:
        code = sim.stop()
    assert code == 0, "\n".join(sim.seen)


def test_validate_catches_two_toy_devices_at_one_address(jsonl, tmp_path):
    endpoint = {"protocol": "jsonl", "host": "127.0.0.1", "port": 7000}
    assets = [
        {"id": "pair", "type": "battery", "count": 2, "power_kw": 5, "energy_kwh": 10,
         "endpoint": {**endpoint, "unit": "b"}},
        {"id": "single", "type": "battery", "power_kw": 5, "energy_kwh": 10, "endpoint": {**endpoint, "unit": "b-2"}},
    ]
    path = write_portfolio(tmp_path, portfolio_doc(7000, assets), dt.datetime(2024, 6, 25, tzinfo=dt.UTC))
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2
    assert "sites[0].assets[1].endpoint: device 1 (b-2) has the address of pair device 2: jsonl 127.0.0.1 7000 b-2" \
        in res.output


def test_an_unknown_protocol_is_a_clear_exit_2(jsonl, tmp_path):
    doc = portfolio_doc(7000)
    doc["sites"][0]["assets"][0]["endpoint"]["protocol"] = "jsonll"
    path = write_portfolio(tmp_path, doc, dt.datetime(2024, 6, 25, tzinfo=dt.UTC))
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2
    assert "sites[0].assets[0].endpoint: protocol: unknown value 'jsonll' (did you mean 'jsonl'?); allowed: " \
           "'iec104', 'modbus', 'ocpp', 'http', 'jsonl'" in res.output
    doc["sites"][0]["assets"][0]["endpoint"] |= {"protocol": "jsonl", "unti": "x"}
    path.write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2
    assert "endpoint.unti: unknown key (did you mean 'unit'?); allowed keys: protocol, host, port, unit" in res.output


def test_the_schema_has_the_toy_while_it_is_registered(jsonl):
    res = CliRunner().invoke(app, ["schema"])
    assert res.exit_code == 0
    assert "JsonlEndpoint" in json.loads(res.output)["$defs"]
    unregister("jsonl")
    try:
        assert "JsonlEndpoint" not in json.loads(CliRunner().invoke(app, ["schema"]).output)["$defs"]
    finally:
        register(toy.PROTOCOL)


def test_an_unregistered_protocol_is_an_error_everywhere_never_another_protocols_branch(jsonl, tmp_path):
    path = write_portfolio(tmp_path, portfolio_doc(7000), dt.datetime(2024, 6, 25, tzinfo=dt.UTC))
    portfolio = load_portfolio(path).portfolio
    endpoint = portfolio.sites[0].assets[0].endpoint
    unregister("jsonl")
    try:
        with pytest.raises(ProtocolError, match="unknown protocol 'jsonl'; registered: iec104, modbus, ocpp, http"):
            adapter_for("bess", endpoint)
        with pytest.raises(ValueError, match="unknown protocol 'jsonl'"):
            PortfolioSimulation(portfolio)
        res = CliRunner().invoke(app, ["validate", str(path)])
        assert res.exit_code == 2 and "unknown value 'jsonl'" in res.output
    finally:
        register(toy.PROTOCOL)


def test_a_spec_that_does_not_fit_is_refused(jsonl):
    with pytest.raises(ProtocolError, match="registered already"):
        register(Protocol("jsonl", toy.JsonlEndpoint, adapter=toy.JsonlAdapter, simulator=toy.JsonlSimulator,
                          stores_profiles=True))
    with pytest.raises(ProtocolError, match=r"JsonlEndpoint.protocol must be Literal\['jsonl2'\]"):
        register(Protocol("jsonl2", toy.JsonlEndpoint, adapter=toy.JsonlAdapter, simulator=toy.JsonlSimulator))
    assert list(registered()) == ["iec104", "modbus", "ocpp", "http", "jsonl"]


def test_a_plugin_that_cannot_be_loaded_is_a_clear_exit_2(tmp_path):
    site = plugin_distribution(tmp_path / "site", "broken = no_such_module:PROTOCOL")
    path = write_portfolio(tmp_path, portfolio_doc(7000), dt.datetime(2024, 6, 25, tzinfo=dt.UTC))
    env = {**os.environ, "PYTHONPATH": str(site)}
    for args in (["validate", str(path)], ["schema"]):
        res = subprocess.run([sys.executable, "-c", "from flexopt.cli import app; app()", *args], env=env,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 2, res.stderr
        assert "plug-in 'broken' = no_such_module:PROTOCOL (entry point group flexopt.plugins) cannot be loaded: " \
               "ModuleNotFoundError" in res.stderr
        assert "Traceback" not in res.stderr
