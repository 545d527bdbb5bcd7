"""OCPP central system + adapter against simulated 1.6 and 2.0.1 charge points over real websockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import ssl
import subprocess

import pytest
from websockets.exceptions import InvalidStatus

from flexopt.adapters.base import Setpoint, SetpointLimits, SetpointPeriod
from flexopt.adapters.ocpp_adapter import OcppAdapter
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.adapters.sim.charge_point import Ev, SimChargePoint
from flexopt.config.endpoints import OcppEndpoint

LIMITS = SetpointLimits(0.0, 11.0, "kW")


def ep(cp_id: str, version: str = "1.6", **kw) -> OcppEndpoint:
    return OcppEndpoint.model_validate(
        {"protocol": "ocpp", "charge_point_id": cp_id, "version": version, "password_env": "CP_PASSWORD", **kw}
    )


@pytest.fixture
async def central(monkeypatch):
    monkeypatch.setenv("CP_PASSWORD", "s3cret-pw")
    cs = CentralSystem(response_timeout_s=1.0)
    await cs.start()
    yield cs
    await cs.stop()


@pytest.fixture
async def pair(central, request):
    """(adapter, simulated charger) for the version in request.param, EV plugged in."""
    version = getattr(request, "param", "1.6")
    cp_id = f"CP-{version}"
    adapter = OcppAdapter("ev1", ep(cp_id, version), LIMITS, central)
    sim = SimChargePoint(cp_id, central.url, version, password="s3cret-pw", ev=Ev(max_w=11_000),
                         meter_interval_s=3600, time_scale=3600.0)
    await sim.start()
    assert await central.wait_for(lambda: central.chargers[cp_id].connector(1).transaction_id is not None, 5)
    yield adapter, sim
    await sim.stop()


both = pytest.mark.parametrize("pair", ["1.6", "2.0.1"], indirect=True)


@both
async def test_boot_state_and_telemetry(central, pair):
    adapter, sim = pair
    assert await adapter.connect()
    state = central.chargers[sim.cp_id]
    assert state.booted and state.version == sim.version and state.model == "SimWallbox"
    await sim.send_meter_values()
    assert await central.wait_for(lambda: "soc_pct" in state.connector(1).readings, 5)
    t = await adapter.read_telemetry()
    assert t.connected and t.quality == "good" and t.available is True
    assert t.ev_plugged is True and t.ev_charging is True
    assert t.voltage_v == pytest.approx(230.0)
    assert t.soc_pct == pytest.approx(sim.ev.soc_pct, abs=0.1)


@both
async def test_limit_goes_out_as_tx_profile_and_ev_follows(central, pair):
    adapter, sim = pair
    res = await adapter.send_setpoint(Setpoint("ev1", 7.4, "kW"))
    assert res.ok and res.status == "confirmed", res.reason
    prof = sim.profile_calls[-1]
    assert prof["charging_profile_purpose"] == "TxProfile"
    assert str(prof["transaction_id"]) == str(sim.transaction_id)
    # the charger reports its new power right after accepting
    conn = central.chargers[sim.cp_id].connector(1)
    assert await central.wait_for(lambda: conn.readings.get("power_w") == pytest.approx(7400.0), 5)
    t = await adapter.read_telemetry()
    assert t.active_power_kw == pytest.approx(7.4)
    await sim.send_meter_values()  # one more report: energy accumulated at 3600x
    assert await central.wait_for(lambda: (conn.session_energy_wh or 0) > 0, 5)
    assert (await adapter.read_telemetry()).ev_energy_kwh > 0


@both
async def test_default_profile_without_transaction_and_periods(central, pair):
    adapter, sim = pair
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sp = Setpoint("ev1", 4.0, "kW", profile="default", valid_until=start + dt.timedelta(hours=1),
                  periods=(SetpointPeriod(start, 4.0), SetpointPeriod(start + dt.timedelta(minutes=15), 20.0),
                           SetpointPeriod(start + dt.timedelta(minutes=30), 0.0)))
    res = await adapter.send_setpoint(sp)
    assert res.ok and res.clamped  # 20 kW is above the 11 kW the asset takes
    prof = sim.profile_calls[-1]
    assert prof["charging_profile_purpose"] == "TxDefaultProfile"
    sched = prof["charging_schedule"]
    sched = sched[0] if isinstance(sched, list) else sched
    assert sched["duration"] == 3600
    assert [(p["start_period"], p["limit"]) for p in sched["charging_schedule_period"]] == [
        (0, 4000.0), (900, 11000.0), (1800, 0.0)]


async def test_amps_rate_unit(central):
    cp = "CP-amps"
    adapter = OcppAdapter("ev2", ep(cp, "2.0.1", charging_rate_unit="A"), LIMITS, central)
    sim = SimChargePoint(cp, central.url, "2.0.1", password="s3cret-pw", meter_interval_s=3600)
    await sim.start()
    try:
        assert await central.wait_for(lambda: central.is_connected(cp), 5)
        res = await adapter.send_setpoint(Setpoint("ev2", 6.9, "kW"))
        assert res.ok
        sched = sim.profile_calls[-1]["charging_schedule"][0]
        assert sched["charging_rate_unit"] == "A"
        assert sched["charging_schedule_period"][0]["limit"] == pytest.approx(10.0)  # 6900 W / (230 V * 3)
        assert sim.power_w == pytest.approx(6900.0)
    finally:
        await sim.stop()


@both
async def test_rejected_status(central, pair):
    adapter, sim = pair
    sim.reject_profiles = True
    res = await adapter.send_setpoint(Setpoint("ev1", 5.0, "kW"))
    assert not res.ok and res.status == "rejected" and "Rejected" in res.reason
    sim.reject_profiles = False
    assert (await adapter.send_setpoint(Setpoint("ev1", 5.0, "kW"))).ok


async def test_tx_profile_rejected_while_the_transaction_starts_is_sent_again(central):
    """1.6: we assign the transaction id; a charger slow to take in our answer rejects a TxProfile for it."""
    adapter = OcppAdapter("ev1", ep("CP-SLOW"), LIMITS, central)
    sim = SimChargePoint("CP-SLOW", central.url, password="s3cret-pw", ev=Ev(max_w=11_000), meter_interval_s=3600)
    sim.start_ack_delay_s = 0.5
    task = asyncio.create_task(sim.start())
    try:
        conn_ready = await central.wait_for(lambda: "CP-SLOW" in central.chargers
                                            and central.chargers["CP-SLOW"].connector(1).transaction_id is not None, 5)
        assert conn_ready and sim.transaction_id is None  # we know the transaction, the charger not yet
        res = await adapter.send_setpoint(Setpoint("ev1", 7.4, "kW"))
        assert res.ok and res.status == "confirmed", res.reason
        assert "sent again" in res.reason
        assert len(sim.profile_calls) == 2  # the first was rejected, the second accepted
        assert sim.book.profiles["TxProfile"]["transaction_id"] == sim.transaction_id
        # a charger that keeps refusing after the grace is still reported as rejecting, with one retry only
        sim.reject_profiles = True
        res = await adapter.send_setpoint(Setpoint("ev1", 5.0, "kW"))
        assert res.status == "rejected" and "sent again" not in res.reason and len(sim.profile_calls) == 3
    finally:
        await task
        await sim.stop()


@both
async def test_call_error(central, pair):
    adapter, sim = pair
    sim.call_error_profiles = True
    res = await adapter.send_setpoint(Setpoint("ev1", 5.0, "kW"))
    assert not res.ok and res.status == "error" and "CallError NotSupported" in res.reason


async def test_silent_charger_times_out(central, pair):
    adapter, sim = pair
    sim.silent_profiles = True
    res = await adapter.send_setpoint(Setpoint("ev1", 5.0, "kW"))
    assert res.status == "timeout" and not res.ok


@both
async def test_dropped_connection_then_back(central, pair):
    adapter, sim = pair
    await sim.drop()
    assert await central.wait_for(lambda: not central.is_connected(sim.cp_id), 5)
    res = await adapter.send_setpoint(Setpoint("ev1", 5.0, "kW"))
    assert res.status == "unreachable"
    t = await adapter.read_telemetry()
    assert not t.connected and t.quality == "unreachable"
    sim.transaction_id = None
    await sim.start()
    assert await central.wait_for(lambda: central.chargers[sim.cp_id].connector(1).transaction_id is not None, 5)
    res = await adapter.send_setpoint(Setpoint("ev1", 5.0, "kW"))
    assert res.ok, res.reason


@both
async def test_clear_profiles(central, pair):
    adapter, sim = pair
    assert (await adapter.send_setpoint(Setpoint("ev1", 3.0, "kW"))).ok
    assert sim.power_w == pytest.approx(3000.0)
    res = await adapter.clear_profiles()
    assert res.ok and sim.book.profiles == {}
    assert sim.power_w == pytest.approx(11_000.0)
    res = await adapter.clear_profiles()
    assert res.status == "rejected" and "Unknown" in res.reason


async def test_basic_auth_and_unknown_charge_points(central):
    OcppAdapter("ev1", ep("CP-auth"), LIMITS, central)
    with pytest.raises(InvalidStatus) as bad:
        await SimChargePoint("CP-auth", central.url, password="wrong").start()
    assert bad.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as unknown:
        await SimChargePoint("CP-stranger", central.url, password="s3cret-pw").start()
    assert unknown.value.response.status_code == 404
    assert not central.is_connected("CP-auth")


async def test_unconnected_charger_is_unreachable(central):
    adapter = OcppAdapter("ev9", ep("CP-never"), LIMITS, central)
    assert not await adapter.connect()
    res = await adapter.send_setpoint(Setpoint("ev9", 5.0, "kW"))
    assert res.status == "unreachable" and "CP-never" in res.reason


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls(tmp_path, monkeypatch):
    monkeypatch.setenv("CP_PASSWORD", "tls-pw")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    async with CentralSystem(ssl_context=server_ctx, response_timeout_s=2.0) as cs:
        assert cs.url.startswith("wss://")
        adapter = OcppAdapter("ev1", ep("CP-tls", "2.0.1"), LIMITS, cs)
        sim = SimChargePoint("CP-tls", cs.url, "2.0.1", password="tls-pw", ssl_context=client_ctx,
                             meter_interval_s=3600)
        await sim.start()
        try:
            assert (await adapter.send_setpoint(Setpoint("ev1", 2.0, "kW"))).ok
        finally:
            await sim.stop()
