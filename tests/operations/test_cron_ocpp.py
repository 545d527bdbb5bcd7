"""Cron-style ``flexopt dispatch --once`` twice against OCPP 1.6 chargers that only reconnect to the second process
(no new BootNotification, their transactions go on, as real chargers do): the second run knows them from the
store, so it neither waits out ``--connect-wait-s`` nor marks them questionable, and their TxProfiles reach the
running transactions. Real websockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import json
import threading
import time
from pathlib import Path

import yaml
from typer.testing import CliRunner

from flexopt.adapters.sim.charge_point import SimChargePoint
from flexopt.adapters.sim.util import free_port
from flexopt.cli import app

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("dispatch_cli_helpers_cron", HERE / "test_dispatch_cli.py")
ops_kit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ops_kit)


class Chargers:
    """Two chargers on their own event loop (the CLI runs its own), reconnecting every 0.2 s without rebooting."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cps = [SimChargePoint(f"OPS-EV-{k}", url, "1.6", password="wallbox-pw", meter_interval_s=3600)
                    for k in (1, 2)]
        self.tasks = [asyncio.run_coroutine_threadsafe(cp.run_forever(retry_s=0.2, reboot=False), self.loop)
                      for cp in self.cps]

    def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        time.sleep(0.2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_a_second_cron_dispatch_knows_the_chargers(tmp_path, monkeypatch):
    monkeypatch.setenv("OPS_TEST_CP_PW", "wallbox-pw")
    ports = {k: free_port() for k in ("iec104", "modbus", "http", "ocpp")}
    doc = ops_kit.portfolio_dict(ports)
    doc["sites"][0]["assets"] = [a for a in doc["sites"][0]["assets"] if a["id"] in ("ev", "site-load")]
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(doc))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = now.replace(minute=now.minute - now.minute % 15, second=0)
    at = now if first + ops_kit.STEP - now > dt.timedelta(minutes=1) else first + ops_kit.STEP
    frame = ops_kit.schedule_frame(first - ops_kit.STEP, 6)
    frame = frame[frame["asset_id"].isin(["ev", "site-load"])]
    store = tmp_path / "runs"
    for day in {at.date(), now.date()}:
        ops_kit.write_run(store / "ops-test" / day.isoformat() / "day-ahead" / "v001", frame, day)
    chargers = Chargers(f"ws://127.0.0.1:{ports['ocpp']}")
    args = ["dispatch", str(path), "--store", str(store), "--once", "--at", at.strftime("%Y-%m-%dT%H:%M:%S"),
            "--settle-s", "0.2", "--connect-wait-s", "15"]
    try:
        t0 = time.monotonic()
        first_run = CliRunner().invoke(app, args)
        first_s = time.monotonic() - t0
        assert first_run.exit_code == 0, first_run.output
        tx = [cp.transaction_id for cp in chargers.cps]
        assert sorted(tx) == [1, 2]
        t0 = time.monotonic()
        second_run = CliRunner().invoke(app, args)
        second_s = time.monotonic() - t0
        assert second_run.exit_code == 0, second_run.output
        assert [cp.transaction_id for cp in chargers.cps] == tx  # the transactions went on
        profiles = [cp.profile_calls[-1] for cp in chargers.cps]
    finally:
        chargers.close()
    assert second_s < 8.0, (first_s, second_s)  # not the 15 s of --connect-wait-s
    records = [json.loads(p.read_text()) for p in sorted(store.glob("ops-test/*/dispatch/[!.]*.json"))]
    assert len(records) == 2
    second = records[-1]["assets"]["ev"]
    assert second["command"]["status"] == "confirmed", second["command"]
    assert [t["quality"] for t in second["device_telemetry"]] == ["good", "good"]
    assert records[-1]["connected_at_start"]["ev"] is True
    assert [p["charging_profile_purpose"] for p in profiles] == ["TxProfile", "TxProfile"]
    assert [p["transaction_id"] for p in profiles] == tx
    state = json.loads((store / "ops-test" / ".state" / "ocpp" / "ocpp_central_state.json").read_text())
    assert state["next_transaction_id"] == 3 and state["chargers"]["OPS-EV-1"]["booted"] is True
