"""Soak: a continuous dispatch of at least 200 rounds on a compressed clock (each round dispatches the next
15-minute interval, a fraction of a second later) while a fault injector, a TCP proxy in front of every device, and
the simulators themselves make the devices of every protocol misbehave: delay, blackhole (accept and never answer),
reset (RST), accept-and-close (FIN), garbage bytes, a closed port, a device restart. A battery on IEC 104 (c104 in
its child process), a climate zone on Modbus, three water heaters behind one HTTP cloud and two OCPP 1.6 chargers,
over real sockets on 127.0.0.1.

Asserted: the loop never crashes; every round is recorded (a record file and a rounds.csv line each); every fault is
an alarm of the affected asset in the round it was injected; every device confirms again once its fault is lifted;
the last round confirms everywhere.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import importlib.util
import json
import time
from pathlib import Path

import pytest
import yaml

import flexopt.operations as ops
from flexopt.adapters.sim.charge_point import SimChargePoint
from flexopt.adapters.sim.device_cloud import DEFAULT_TOKEN
from flexopt.adapters.sim.portfolio_sim import PortfolioSimulation
from flexopt.adapters.sim.util import free_port
from flexopt.config.loader import load_portfolio

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ops_kit = _load("dispatch_cli_helpers_soak", HERE / "test_dispatch_cli.py")
faults = _load("peers_faults_soak", HERE.parent / "peers" / "faults.py")

ROUNDS = 200
MIN_ROUND_S = 0.12  # the injected interval: a round at most this often (the clock advances 15 min per round)
KINDS = ("delay", "blackhole", "reset", "close", "garbage", "refuse", "restart")
ASSET = {"iec104": "bess", "modbus": "zone", "http": "heaters", "ocpp": "ev"}
RECOVERY_ROUNDS = 60  # at most this many rounds for every device to confirm again after a fault


def fast_portfolio(ports: dict[str, int]) -> dict:
    """The dispatch test's portfolio with short timeouts, so a fault round costs about a second, not ten."""
    doc = ops_kit.portfolio_dict(ports)
    doc["ocpp_central_system"]["response_timeout_s"] = 0.5
    for asset in doc["sites"][0]["assets"]:
        e = asset.get("endpoint") or {}
        if e.get("protocol") == "iec104":
            e["command_timeout_ms"] = 300
        elif e.get("protocol") == "modbus":
            e["timeout_s"] = 0.25
        elif e.get("protocol") == "http":
            e["timeout_s"] = 0.3
    return doc


class Devices:
    """The real devices (on their own ports) and a fault proxy in front of each, on the ports dispatch uses."""

    def __init__(self, tmp_path: Path) -> None:
        self.front = {k: free_port() for k in ("iec104", "modbus", "http", "ocpp")}  # dispatch's view
        self.back = {k: free_port() for k in ("iec104", "modbus", "http")}
        self.path = tmp_path / "pf.yaml"
        self.path.write_text(yaml.safe_dump(fast_portfolio(self.front)))
        devices = fast_portfolio(self.back | {"ocpp": self.front["ocpp"]})
        devices["sites"][0]["assets"] = [a for a in devices["sites"][0]["assets"] if a["id"] != "ev"]
        (tmp_path / "devices.yaml").write_text(yaml.safe_dump(devices))
        self.portfolio = load_portfolio(self.path).portfolio
        self.sim = PortfolioSimulation(load_portfolio(tmp_path / "devices.yaml").portfolio)
        self.proxies: dict[str, faults.FaultProxy] = {}
        self.chargers: list[SimChargePoint] = []
        self._charger_tasks: list[asyncio.Task] = []
        self.ocpp_back = 0

    async def start(self) -> None:
        await self.sim.start()
        for protocol, port in self.back.items():
            self.proxies[protocol] = await faults.FaultProxy(port, self.front[protocol]).start()
        # chargers connect through a proxy to the central system dispatch runs (and keep trying until it listens)
        self.proxies["ocpp"] = await faults.FaultProxy(self.front["ocpp"]).start()
        url = f"ws://127.0.0.1:{self.proxies['ocpp'].port}"
        self.chargers = [SimChargePoint(f"OPS-EV-{k}", url, "1.6", password="wallbox-pw", meter_interval_s=3600,
                                        response_timeout_s=1.0) for k in (1, 2)]
        self.start_chargers()

    def start_chargers(self) -> None:
        self._charger_tasks = [asyncio.create_task(cp.run_forever(retry_s=0.1)) for cp in self.chargers]

    async def stop_chargers(self) -> None:
        for t in self._charger_tasks:
            t.cancel()
        await asyncio.gather(*self._charger_tasks, return_exceptions=True)
        self._charger_tasks = []

    async def stop(self) -> None:
        await self.stop_chargers()
        for proxy in self.proxies.values():
            await proxy.stop()
        await self.sim.stop()

    # --- faults -----------------------------------------------------------------------------------
    async def inject(self, kind: str) -> None:
        """The same kind of fault on every protocol at once (a round costs its slowest device)."""
        if kind == "restart":
            await self._devices_down()
            return
        for proxy in self.proxies.values():
            await proxy.set_mode(kind)  # type: ignore[arg-type]

    async def lift(self, kind: str) -> None:
        if kind == "restart":
            await self._devices_up()
            return
        for proxy in self.proxies.values():
            await proxy.set_mode("pass")

    async def _devices_down(self) -> None:
        """Every device stops (its server or charger process ends): a restart, down for this round."""
        s = self.sim.simulators
        for rtu in s["iec104"].rtus.values():
            await asyncio.to_thread(rtu.stop)
        for server in s["modbus"].servers.values():
            await server.stop()
        for cloud in s["http"].clouds.values():
            await cloud.stop()
        await self.stop_chargers()
        for cp in self.chargers:
            cp.transaction_id = None  # a charger that restarts boots again and starts a new transaction
        for proxy in self.proxies.values():  # the connections to the devices that went away end with them
            proxy.cut("fin")

    async def _devices_up(self) -> None:
        s = self.sim.simulators
        for rtu in s["iec104"].rtus.values():
            await asyncio.to_thread(rtu.start)
        for server in s["modbus"].servers.values():
            await server.start()
        for cloud in s["http"].clouds.values():
            await cloud.start()
        self.start_chargers()


def alarmed(record: dict, asset_id: str) -> bool:
    return any(a["asset_id"] == asset_id and a["kind"] != "deviation" for a in record["alarms"])


def confirmed(record: dict, asset_id: str) -> bool:
    command = record["assets"][asset_id]["command"]
    return command is not None and command["status"] == "confirmed"


@pytest.mark.slow
async def test_soak_200_rounds_under_faults_of_every_protocol(tmp_path, monkeypatch):
    monkeypatch.setenv("OPS_TEST_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("OPS_TEST_CP_PW", "wallbox-pw")
    t_start = time.monotonic()
    devices = Devices(tmp_path)
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    first = now.replace(minute=now.minute - now.minute % 15) + ops_kit.STEP  # intervals ahead: none expires
    store = tmp_path / "runs"
    run = ops_kit.write_run(store / "ops-test" / first.date().isoformat() / "day-ahead" / "v001",
                            ops_kit.schedule_frame(first, ROUNDS + 2 * RECOVERY_ROUNDS), first.date())
    schedule = ops.load_schedule_run(run)
    session = ops.DispatchSession(devices.portfolio, connect_wait_s=5.0, state_dir=ops.state_folder(store, "ops-test"))
    options = ops.RoundOptions(settle_s=0.0)
    records: list[dict] = []
    injected: list[tuple[int, str]] = []  # (round, kind)
    recovered_after: list[int] = []  # rounds each fault took to confirm everywhere again
    try:
        await devices.start()
        await session.start()  # the central system, then the adapters; the chargers connect through their proxy

        async def one_round(i: int) -> dict:
            t0 = time.monotonic()
            at = first + i * ops_kit.STEP + dt.timedelta(minutes=1)
            record = await session.round(schedule, at, options)
            folder = ops.dispatch_folder(store, "ops-test", at.date())
            ops.append_summary(folder, record, ops.write_round(folder, record, at))
            records.append(record)
            await asyncio.sleep(max(0.0, MIN_ROUND_S - (time.monotonic() - t0)))
            return record

        i = 0
        while i < 3:  # settle: every device confirms before the first fault
            await one_round(i)
            i += 1
        k = 0
        while i < ROUNDS or k < len(KINDS):
            kind = KINDS[k % len(KINDS)]
            await devices.inject(kind)
            injected.append((i, kind))
            record = await one_round(i)
            i += 1
            await devices.lift(kind)
            missing = [a for a in ASSET.values() if not alarmed(record, a)]
            assert not missing, (i - 1, kind, missing, record["alarms"])
            waited = 0
            while True:  # the device is back: rounds until every device confirms again, then two more
                record = await one_round(i)
                i += 1
                waited += 1
                if all(confirmed(record, a) for a in ASSET.values()):
                    break
                assert waited < RECOVERY_ROUNDS, (kind, {a: record["assets"][a]["command"] for a in ASSET.values()})
            recovered_after.append(waited)
            for _ in range(2):
                await one_round(i)
                i += 1
            k += 1
    finally:
        await session.close()
        await devices.stop()
    wall_s = time.monotonic() - t_start

    assert len(records) >= ROUNDS
    files = sorted(store.glob("ops-test/*/dispatch/[!.]*.json"))
    assert len(files) == len(records)  # every round recorded ...
    rows = [row for p in store.glob("ops-test/*/dispatch/rounds.csv") for row in csv.DictReader(p.open())]
    assert len(rows) == len(records)  # ... and summarised
    assert all(set(ASSET.values()) <= set(json.loads(p.read_text())["assets"]) for p in files[:: 25])
    assert all(confirmed(records[-1], a) for a in ASSET.values()), records[-1]["alarms"]
    kinds_seen = {kind for _, kind in injected}
    assert kinds_seen == set(KINDS)
    crashes = [a for r in records for a in r["alarms"] if a["kind"] == "client_crashed"]
    assert all(a["asset_id"] == "bess" for a in crashes)
    print(f"\nsoak: {len(records)} rounds, {len(injected)} fault rounds x 4 protocols = {4 * len(injected)} faults "
          f"({', '.join(KINDS)}), {len(crashes)} c104 client crashes contained, recovery within "
          f"{max(recovered_after)} rounds (median {sorted(recovered_after)[len(recovered_after) // 2]}), "
          f"{wall_s:.1f} s wall")
