"""No device can take ``flexopt dispatch`` down: a continuous dispatch (a real process, ``--every``) runs rounds for
a battery on IEC 104, water heaters on HTTP and a climate zone on Modbus while the battery's port holds a device
that accepts every TCP connection and closes it, first with a FIN, then with an RST (c104 2.2.1 dies with SIGSEGV
there; dispatch used to die with it, writing nothing). Every round is recorded, the other devices confirm in every
one, the battery is a critical alarm in every one until a real RTU is back on its port, then it confirms again."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from flexopt.adapters.sim.bess_rtu import BessRtu
from flexopt.adapters.sim.device_cloud import DEFAULT_TOKEN
from flexopt.adapters.sim.util import free_port
from flexopt.config.loader import load_portfolio

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ops_kit = _load("dispatch_cli_helpers", HERE / "test_dispatch_cli.py")
faults = _load("peers_faults", HERE.parent / "peers" / "faults.py")
FLEXOPT = str(Path(sys.executable).with_name("flexopt"))


class Dispatch:
    """``flexopt dispatch`` running in its own process; its records read as they appear."""

    def __init__(self, path: Path, store: Path, *extra: str) -> None:
        self.store = store
        env = os.environ | {"OPS_TEST_TOKEN": DEFAULT_TOKEN}
        self.proc = subprocess.Popen([FLEXOPT, "dispatch", str(path), "--store", str(store), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def records(self) -> list[dict]:
        files = sorted(self.store.glob("*/*/dispatch/[!.]*.json"), key=lambda p: p.name)
        return [json.loads(p.read_text()) for p in files]

    def wait_for(self, predicate, what: str, timeout_s: float = 120.0) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"dispatch ended with {self.proc.returncode} while waiting for {what}\n"
                                     f"{out.decode()[-3000:]}\n{err.decode()[-3000:]}")
            records = self.records()
            if predicate(records):
                return records
            time.sleep(0.2)
        raise AssertionError(f"no {what} within {timeout_s:g} s")

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, out.decode(), err.decode()


def critical(record: dict, asset_id: str) -> list[dict]:
    return [a for a in record["alarms"] if a["asset_id"] == asset_id and a["severity"] == "critical"]


def test_devices_that_accept_and_close_never_stop_dispatch(tmp_path):
    ports = {k: free_port() for k in ("iec104", "modbus", "http", "ocpp")}
    doc = ops_kit.portfolio_dict(ports)
    doc["sites"][0]["assets"] = [a for a in doc["sites"][0]["assets"] if a["id"] != "ev"]  # no OCPP: no waiting
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(doc))
    others = tmp_path / "others.yaml"  # the devices simulated for real: all but the battery
    doc["sites"][0]["assets"] = [a for a in doc["sites"][0]["assets"] if a["id"] != "bess"]
    others.write_text(yaml.safe_dump(doc))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = now.replace(minute=now.minute - now.minute % 15, second=0)
    frame = ops_kit.schedule_frame(first - ops_kit.STEP, 8)
    frame = frame[frame["asset_id"] != "ev"]
    store = tmp_path / "runs"
    for day in {now.date(), (now + dt.timedelta(hours=1)).date()}:  # rounds may run past midnight
        ops_kit.write_run(store / "ops-test" / day.isoformat() / "day-ahead" / "v001", frame, day)
    sims = ops_kit.SimThread(load_portfolio(others).portfolio, f"ws://127.0.0.1:{ports['ocpp']}")
    device = faults.AcceptAndClose(ports["iec104"], "fin").start()
    rtu = None
    dispatch = Dispatch(path, store, "--every", "0.5", "--settle-s", "0", "--connect-wait-s", "0", "--fail-on-alarm")
    try:
        dispatch.wait_for(lambda r: len(r) >= 3 and device.accepted >= 3, "three rounds against a FIN device")
        fin_rounds = len(dispatch.records())
        device.mode, at_switch = "rst", device.accepted
        dispatch.wait_for(lambda r: len(r) >= fin_rounds + 3 and device.accepted >= at_switch + 3,
                          "three rounds against an RST device")
        device.stop()
        rtu = BessRtu(port=ports["iec104"])
        bess = next(a for a in ops_kit.portfolio_dict(ports)["sites"][0]["assets"] if a["id"] == "bess")
        rtu.add("bess", load_portfolio(path).portfolio.sites[0].assets[0].endpoint.points,
                common_address=bess["endpoint"].get("common_address", 1), energy_kwh=100.0, max_power_kw=50.0)
        rtu.start()
        dispatch.wait_for(lambda r: r and r[-1]["assets"]["bess"]["command"]["status"] == "confirmed",
                          "a round with the RTU back")
        code, out, err = dispatch.stop()
    finally:
        if dispatch.proc.poll() is None:
            dispatch.proc.kill()
        device.stop()
        if rtu is not None:
            rtu.stop()
        sims.close()

    assert code == 4, (code, out[-2000:], err[-2000:])  # --fail-on-alarm: critical alarms were raised, no crash
    records = dispatch.records()
    assert len(records) >= 7
    assert out.count("record: ") == len(records)  # every round that ran was recorded
    csv_lines = sum(len(p.read_text().splitlines()) - 1 for p in store.glob("*/*/dispatch/rounds.csv"))
    assert csv_lines == len(records)
    for record in records:  # the other devices never noticed
        for asset_id in ("heaters", "zone"):
            assert record["assets"][asset_id]["command"]["status"] == "confirmed", record["assets"][asset_id]
    recovered = next(i for i, r in enumerate(records) if r["assets"]["bess"]["command"]["status"] == "confirmed")
    assert recovered >= 6
    for record in records[:recovered]:  # the battery is an alarm in every round while its port misbehaves
        assert record["assets"]["bess"]["command"]["status"] == "unreachable", record["assets"]["bess"]["command"]
        assert critical(record, "bess"), record["alarms"]
    crashes = [a for r in records for a in r["alarms"] if a["kind"] == "client_crashed"]
    assert crashes and any("SIGSEGV" in a["reason"] for a in crashes), [r["alarms"] for r in records]
    assert all(a["asset_id"] == "bess" and a["severity"] == "critical" for a in crashes)
    last = records[-1]["assets"]["bess"]
    assert last["telemetry"]["connected"] and last["command"]["sent"] == -20.0
