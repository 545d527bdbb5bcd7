"""The central system's state survives its process: a second one (cron's next ``dispatch --once``) started on the
same store knows the chargers' boot and transactions, over real websockets."""

from __future__ import annotations

import asyncio
import json
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


async def test_an_unusable_state_file_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / STATE_FILE).write_text("{not json")
    central = CentralSystem()
    central.use_state_dir(tmp_path)
    problems = await central.open()
    assert len(problems) == 1 and "unusable" in problems[0] and STATE_FILE in problems[0]
    await central.close()
    assert json.loads((tmp_path / STATE_FILE).read_text())["next_transaction_id"] == 1
    await asyncio.sleep(0)


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
