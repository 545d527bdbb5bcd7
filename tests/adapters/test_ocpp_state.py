"""The central system's state survives its process: a second one (cron's next ``dispatch --once``) started on the
same store knows the chargers' boot and transactions, over real websockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from flexopt.adapters.base import Setpoint, SetpointLimits
from flexopt.adapters.ocpp_adapter import OcppAdapter
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.adapters.ocpp_state import STATE_FILE
from flexopt.adapters.sim.charge_point import Ev, SimChargePoint
from flexopt.config.endpoints import OcppEndpoint

LIMITS = SetpointLimits(0.0, 11.0, "kW")


def ep(cp_id: str, version: str) -> OcppEndpoint:
    return OcppEndpoint.model_validate({"protocol": "ocpp", "charge_point_id": cp_id, "version": version,
                                        "password_env": "CP_PASSWORD"})


async def central_on(folder, port: int = 0) -> CentralSystem:
    cs = CentralSystem(port=port, response_timeout_s=2.0)
    cs.use_state_dir(folder)
    assert await cs.open() == []
    return cs


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_second_process_knows_boot_and_transactions(tmp_path, monkeypatch, version):
    monkeypatch.setenv("CP_PASSWORD", "pw-state-test")
    first = await central_on(tmp_path)
    OcppAdapter("ev1", ep("CP-A", version), LIMITS, first)
    sim = SimChargePoint("CP-A", first.url, version, password="pw-state-test", ev=Ev(), meter_interval_s=3600)
    await sim.start()
    assert await first.wait_for(lambda: first.chargers["CP-A"].connector(1).transaction_id is not None, 5)
    tx = first.chargers["CP-A"].connector(1).transaction_id
    await first.close()  # the first dispatch process ends
    await sim.stop()
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["chargers"]["CP-A"]["booted"] is True

    second = await central_on(tmp_path)
    adapter = OcppAdapter("ev1", ep("CP-A", version), LIMITS, second)
    sim.url = second.url
    await sim.start(boot=False)  # it only reconnects: no BootNotification, the transaction goes on
    t0 = time.monotonic()
    await second.wait_for_devices([adapter.endpoint], 10.0)
    assert time.monotonic() - t0 < 2.0  # not the whole --connect-wait-s
    reading = await adapter.read_telemetry()
    assert reading.quality == "good", reading.notes
    assert second.chargers["CP-A"].connector(1).transaction_id == tx
    res = await adapter.send_setpoint(Setpoint("ev1", 5.0, "kW"))
    assert res.ok, res.reason
    assert sim.profile_calls[-1]["charging_profile_purpose"] == "TxProfile"
    if version == "1.6":  # a new transaction continues the ids, it never restarts at 1
        OcppAdapter("ev2", ep("CP-B", version), LIMITS, second)
        other = SimChargePoint("CP-B", second.url, version, password="pw-state-test", meter_interval_s=3600)
        await other.start()
        assert await second.wait_for(lambda: other.transaction_id is not None, 5)
        assert other.transaction_id == tx + 1
        await other.stop()
    await sim.stop()
    await second.close()


async def test_a_reconnect_without_boot_and_without_a_store_is_good_once_it_talks(monkeypatch):
    """No store at all: the charger that reconnects is questionable only until its first message."""
    monkeypatch.setenv("CP_PASSWORD", "pw-state-test")
    central = CentralSystem(response_timeout_s=2.0)
    await central.start()
    adapter = OcppAdapter("ev1", ep("CP-C", "2.0.1"), LIMITS, central)
    sim = SimChargePoint("CP-C", central.url, "2.0.1", password="pw-state-test", meter_interval_s=3600)
    sim.transaction_id = "tx-running-1"  # a transaction that began before this central system
    await sim.start(boot=False)
    assert await central.wait_for(lambda: central.is_connected("CP-C"), 5)
    await sim.send_meter_values()  # TransactionEvent Updated: the running transaction is adopted
    assert await central.wait_for(lambda: central.chargers["CP-C"].connector(1).transaction_id == "tx-running-1", 5)
    assert (await adapter.read_telemetry()).quality == "good"
    res = await adapter.send_setpoint(Setpoint("ev1", 3.0, "kW"))
    assert res.ok and sim.profile_calls[-1]["transaction_id"] == "tx-running-1", res.reason
    await sim.stop()
    await central.stop()


def state_doc(next_tx: object = 7, **charger: object) -> dict:
    """A state file as the central system writes it, with a 1.6 charger whose fields ``charger`` replaces."""
    connector = {"status": "Charging", "error_code": "NoError", "transaction_id": 6, "charging_state": None,
                 "meter_start_wh": 1000.0, "session_energy_wh": 250.0, "readings": {"energy_wh": 1250.0},
                 "updated_at": "2024-06-25T12:00:00+00:00"}
    cp = {"version": "1.6", "booted": True, "vendor": "V", "model": "M", "last_seen": "2024-06-25T12:00:00+00:00",
          "max_periods": 24, "connectors": {"1": connector}}
    for key, value in charger.items():
        if key.startswith("connector_"):
            connector[key.removeprefix("connector_")] = value
        else:
            cp[key] = value
    return {"format": 1, "next_transaction_id": next_tx, "chargers": {"CP-A": cp}}


def dumped(doc: object) -> bytes:
    return json.dumps(doc).encode()


HOSTILE = {
    "truncated": dumped(state_doc())[:90],
    "not-json": b"{not json",
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "nul-bytes": b"\x00" * 64,
    "a-list": b"[1, 2, 3]",
    "a-number": b"42",
    "deeply-nested": b"[" * 100_000,
    "old-format": dumped(state_doc() | {"format": 0}),
    "chargers-a-list": dumped(state_doc() | {"chargers": []}),
    "charger-a-string": dumped(state_doc() | {"chargers": {"CP-A": "booted"}}),
    "booted-text": dumped(state_doc(booted="yes")),
    "version-unknown": dumped(state_doc(version="3.0")),
    "last-seen-not-a-time": dumped(state_doc(last_seen="yesterday")),
    "last-seen-naive": dumped(state_doc(last_seen="2024-06-25T12:00:00")),
    "max-periods-negative": dumped(state_doc(max_periods=-3)),
    "connectors-a-list": dumped(state_doc(connectors=[1])),
    "connector-key-text": dumped(state_doc(connectors={"one": {}})),
    "reading-text": dumped(state_doc(connector_readings={"energy_wh": "lots"})),
    "energy-infinite": b'{"format": 1, "next_transaction_id": 7, "chargers": {"CP-A": {"connectors": {"1": '
                       b'{"session_energy_wh": Infinity}}}}}',
    "next-tx-negative": dumped(state_doc(next_tx=-5)),
    "next-tx-zero": dumped(state_doc(next_tx=0)),
    "next-tx-huge": dumped(state_doc(next_tx=10**40)),
    "next-tx-overflow": b'{"format": 1, "next_transaction_id": 1e999, "chargers": {}}',
    "next-tx-text": dumped(state_doc(next_tx="7")),
    "next-tx-bool": dumped(state_doc(next_tx=True)),
    "next-tx-float": dumped(state_doc(next_tx=7.5)),
    "tx-negative": dumped(state_doc(connector_transaction_id=-1)),
    "tx-huge": dumped(state_doc(connector_transaction_id=2**63)),
    "tx-text-in-1.6": dumped(state_doc(connector_transaction_id="abc")),
    "tx-number-in-2.0.1": dumped(state_doc(version="2.0.1", connector_transaction_id=5)),
    "tx-too-long-in-2.0.1": dumped(state_doc(version="2.0.1", connector_transaction_id="x" * 37)),
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_a_damaged_state_file_is_kept_aside_and_the_central_system_starts_fresh(tmp_path, caplog, name):
    """Whatever the file holds, the central system starts: the problem names the file and what is wrong with it,
    the file is renamed aside (byte for byte, never deleted) and a fresh one is written."""
    content = HOSTILE[name]
    (tmp_path / STATE_FILE).write_bytes(content)
    central = CentralSystem()
    central.use_state_dir(tmp_path)
    problems = await central.open()
    assert len(problems) == 1, problems
    assert f"OCPP state file {tmp_path / STATE_FILE} is damaged (" in problems[0]
    (aside,) = tmp_path.glob(f"{STATE_FILE}.damaged-*")
    assert f"kept as {aside.name}" in problems[0] and aside.read_bytes() == content
    assert problems[0] in caplog.text  # warned in the log too
    assert central.chargers == {}
    await central.close()
    fresh = json.loads((tmp_path / STATE_FILE).read_text())
    assert fresh == {"format": 1, "next_transaction_id": 1, "chargers": {}}
    again = CentralSystem()
    again.use_state_dir(tmp_path)  # the fresh file reads back without a problem
    assert await again.open() == []
    await again.close()


def test_the_reference_state_file_is_not_damaged(tmp_path):
    """The hostile cases above differ from a good file in the one field they name."""
    (tmp_path / STATE_FILE).write_bytes(dumped(state_doc()))
    central = CentralSystem()
    central.use_state_dir(tmp_path)
    assert central._notes == [] and central.chargers["CP-A"].connector(1).transaction_id == 6
    assert central._next_transaction_id() == 7


HAMMER = """
import json, sys, time
from pathlib import Path
from flexopt.adapters.ocpp_central import CentralSystem, ChargerState

folder, name, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
while not (folder / "go").exists():
    time.sleep(0.001)
central = CentralSystem()
central.use_state_dir(folder)
ids = []
for k in range(rounds):
    state = central.chargers.setdefault(f"{name}-{k % 3}", ChargerState(f"{name}-{k % 3}", "1.6"))
    state.booted = True
    state.touch()
    state.connector(1).session_energy_wh = float(k)
    central.save_state()
    ids.append(central._next_transaction_id())
print(json.dumps(ids))
"""


def test_two_processes_sharing_the_state_file_lose_nothing(tmp_path):
    """Two central-system processes update the same file at once: every charger of each is in it with its last
    value, and no 1.6 transaction id was handed out twice."""
    rounds = 150
    procs = [subprocess.Popen([sys.executable, "-c", HAMMER, str(tmp_path), name, str(rounds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("A", "B")]
    time.sleep(0.5)  # both imported and waiting
    (tmp_path / "go").touch()
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids += json.loads(out)
    assert len(ids) == len(set(ids)) == 2 * rounds, "a transaction id was handed out twice"
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["next_transaction_id"] == max(ids) + 1
    assert sorted(saved["chargers"]) == sorted(f"{n}-{k}" for n in "AB" for k in range(3))
    for name in "AB":
        last = {f"{name}-{(rounds - 1 - j) % 3}": float(rounds - 1 - j) for j in range(3)}
        for cp_id, energy in last.items():
            assert saved["chargers"][cp_id]["connectors"]["1"]["session_energy_wh"] == energy, cp_id
    assert not list(tmp_path.glob(f"{STATE_FILE}.damaged-*"))


async def test_a_state_file_that_cannot_be_written_is_logged_not_raised(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    central = CentralSystem()
    central.use_state_dir(blocker / "ocpp")
    problems = await central.open()  # a problem of the first round, and the central system serves all the same
    assert len(problems) == 1 and "cannot read the OCPP state file" in problems[0]
    central.save_state()
    await central.close()
    assert "cannot write the OCPP state file" in caplog.text


async def test_a_fleet_booting_at_once_is_one_write(tmp_path, monkeypatch):
    """Boots and status changes within SAVE_DELAY_S are written once; power readings are not carried over."""
    monkeypatch.setenv("CP_PASSWORD", "pw-state-test")
    central = await central_on(tmp_path)
    sims = []
    for k in range(5):
        OcppAdapter(f"ev{k}", ep(f"CP-F{k}", "2.0.1"), LIMITS, central)
        sims.append(SimChargePoint(f"CP-F{k}", central.url, "2.0.1", password="pw-state-test",
                                   meter_interval_s=3600))
    writes = []
    real = central.save_state
    monkeypatch.setattr(central, "save_state", lambda: (writes.append(1), real()))
    await asyncio.gather(*(s.start() for s in sims))
    await asyncio.sleep(0.8)
    assert 1 <= len(writes) <= 3, len(writes)
    await asyncio.gather(*(s.stop() for s in sims))
    await central.close()
    again = CentralSystem()
    again.use_state_dir(tmp_path)
    readings = again.chargers["CP-F0"].connector(1).readings
    assert "power_w" not in readings and "energy_wh" in readings


@pytest.mark.parametrize("reported", [-1, 2**31])
async def test_a_transaction_id_out_of_range_is_not_adopted_and_the_state_file_stays_readable(
        tmp_path, monkeypatch, reported):
    """A 1.6 charger's MeterValues naming a transaction we did not know is adopted, unless its id cannot be one:
    kept, it would make the next process set the whole state file aside."""
    monkeypatch.setenv("CP_PASSWORD", "pw-state-test")
    first = await central_on(tmp_path)
    OcppAdapter("ev1", ep("CP-A", "1.6"), LIMITS, first)
    sim = SimChargePoint("CP-A", first.url, "1.6", password="pw-state-test", ev=Ev(), meter_interval_s=3600)
    await sim.start()
    connector = first.chargers["CP-A"].connector(1)
    assert await first.wait_for(lambda: connector.transaction_id is not None, 5)
    connector.transaction_id = None  # as if the start had been missed
    sim.transaction_id = reported
    await sim.send_meter_values()
    assert await first.wait_for(lambda: "energy_wh" in connector.readings, 5)
    assert connector.transaction_id is None
    sim.transaction_id = 4242
    await sim.send_meter_values()
    assert await first.wait_for(lambda: connector.transaction_id == 4242, 5)  # a plausible one still is
    await sim.stop()
    await first.close()
    second = await central_on(tmp_path)
    assert not list(tmp_path.glob("*.damaged-*"))
    assert second.chargers["CP-A"].connector(1).transaction_id == 4242
    await second.close()
