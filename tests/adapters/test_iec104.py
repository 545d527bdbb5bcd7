"""IEC 104 adapter against the simulated BESS RTU (c104 server and client on 127.0.0.1), and against devices that
accept the TCP connection and close it (which crash c104's client process, never the adapter's)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

from flexopt.adapters.base import Setpoint, SetpointLimits
from flexopt.adapters.iec104_adapter import Iec104Adapter
from flexopt.adapters.iec104_link import parse_actcon
from flexopt.adapters.sim.bess_rtu import BessRtu
from flexopt.adapters.sim.util import free_port, wait_until
from flexopt.config.endpoints import Iec104Endpoint

CA = 7

_spec = importlib.util.spec_from_file_location("peers_faults", Path(__file__).resolve().parents[1] / "peers" /
                                               "faults.py")
faults = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(faults)


def endpoint(port: int, **kw) -> Iec104Endpoint:
    return Iec104Endpoint.model_validate(
        {
            "protocol": "iec104",
            "host": "127.0.0.1",
            "port": port,
            "common_address": CA,
            "command_timeout_ms": 500,
            "points": {"setpoint_ioa": 100, "active_power_ioa": 11, "reactive_power_ioa": 12,
                       "voltage_ioa": 13, "soc_ioa": 14, "availability_ioa": 15},
            **kw,
        }
    )


@pytest.fixture
def rtu():
    port = free_port()
    sim = BessRtu(port=port)
    sim.add("bess1", endpoint(port).points, common_address=CA, energy_kwh=10.0, max_power_kw=50.0,
            soc_pct=50.0, time_scale=360.0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
async def bess(rtu):
    ad = Iec104Adapter("bess1", endpoint(rtu.port), SetpointLimits(-20.0, 20.0, "kW"), link_wait_s=1.0)
    assert await ad.connect(), ad.last_error
    yield ad
    await ad.close()


async def test_setpoint_and_soc_follows(rtu, bess):
    t0 = await bess.read_telemetry()
    assert t0.quality == "good", t0.notes
    assert t0.voltage_v == pytest.approx(400.0) and t0.available is True and t0.active_power_kw == 0.0
    res = await bess.send_setpoint(Setpoint("bess1", 10.0, "kW"))
    assert res.ok and res.status == "confirmed", res.reason
    assert rtu.commands == [("bess1", 10.0)]
    # charging 10 kW into 10 kWh at 360x: SoC rises by ~1 %/s
    t = await wait_until(lambda: _soc_above(bess, t0.soc_pct + 0.5), timeout_s=10)
    assert t.active_power_kw == pytest.approx(10.0)
    res = await bess.send_setpoint(Setpoint("bess1", -5.0, "kW"))  # discharge: negative
    assert res.ok
    t = await bess.read_telemetry()
    assert t.active_power_kw == pytest.approx(-5.0)


async def _soc_above(adapter, threshold):
    t = await adapter.read_telemetry()
    return t if t.soc_pct is not None and t.soc_pct > threshold else None


async def test_clamped_before_it_leaves(rtu, bess):
    res = await bess.send_setpoint(Setpoint("bess1", 80_000.0, "W"))
    assert res.ok and res.clamped and res.sent == 20.0
    assert rtu.commands[-1] == ("bess1", 20.0)


async def test_negative_confirmation_is_rejected_then_recovers(rtu, bess):
    rtu.reject = True
    res = await bess.send_setpoint(Setpoint("bess1", 5.0, "kW"))
    assert not res.ok and res.status == "rejected" and "negative" in res.reason
    rtu.reject = False
    assert (await bess.send_setpoint(Setpoint("bess1", 5.0, "kW"))).ok


async def test_slow_rtu_times_out(rtu, bess):
    rtu.delay_s = 1.5  # command timeout is 500 ms
    res = await bess.send_setpoint(Setpoint("bess1", 5.0, "kW"))
    assert not res.ok and res.status == "timeout", res


async def test_unavailable_battery(rtu, bess):
    rtu.set_available("bess1", False)
    t = await bess.read_telemetry()
    assert t.available is False
    res = await bess.send_setpoint(Setpoint("bess1", 5.0, "kW"))
    assert res.status == "rejected"


async def test_rtu_down_then_back(rtu, bess):
    rtu.stop()
    await wait_until(lambda: not bess.is_open, timeout_s=5)
    res = await bess.send_setpoint(Setpoint("bess1", 5.0, "kW"))
    assert res.status == "unreachable" and not res.ok
    t = await bess.read_telemetry()
    assert not t.connected and t.quality == "unreachable"
    rtu.start()  # same port; c104 reconnects by itself
    await wait_until(lambda: bess.is_open, timeout_s=10)
    res = await bess.send_setpoint(Setpoint("bess1", 5.0, "kW"))
    assert res.ok, res.reason


async def test_connect_to_nothing_fails_then_connects_when_rtu_appears():
    port = free_port()
    ad = Iec104Adapter("bess1", endpoint(port), link_wait_s=0.5)
    assert not await ad.connect()
    assert "not open" in ad.last_error
    sim = BessRtu(port=port)
    sim.add("bess1", endpoint(port).points, common_address=CA)
    sim.start()
    try:
        await wait_until(lambda: ad.is_open, timeout_s=10)
        assert (await ad.read_telemetry()).soc_pct == pytest.approx(50.0, abs=0.5)
    finally:
        await ad.close()
        sim.stop()


def test_parse_actcon():
    # I-frame: 68 len, 4 control bytes, ASDU type 50, VSQ 1, COT 0x47 (ACTCON|negative), OA 0, CA 7, IOA 100
    frame = bytes([0x68, 0x12, 0, 0, 0, 0, 50, 1, 0x47, 0, 7, 0, 100, 0, 0, 0, 0, 0x20, 0x41, 0])
    assert parse_actcon(frame) == (7, 100, True, 7)
    assert parse_actcon(frame[:8] + bytes([0x07]) + frame[9:]) == (7, 100, False, 7)
    # cause 47 (unknown IOA) and 46 (unknown common address): negative with or without the P/N bit
    assert parse_actcon(frame[:8] + bytes([0x2F]) + frame[9:]) == (7, 100, True, 47)
    assert parse_actcon(frame[:8] + bytes([0x6E]) + frame[9:]) == (7, 100, True, 46)
    assert parse_actcon(bytes([0x68, 4, 0x43, 0, 0, 0])) is None  # TESTFR act


@pytest.mark.parametrize("mode", ["fin", "rst"])
async def test_device_that_accepts_and_closes_is_an_alarm_then_recovers(mode):
    """c104 2.2.1 dies with SIGSEGV when the device closes right after accepting (FIN always, RST often): only the
    adapter's client process dies; every call still answers, each death is reported once, and a real RTU on the port
    is reached again."""
    port = free_port()
    device = faults.AcceptAndClose(port, mode).start()
    adapter = Iec104Adapter("bess1", endpoint(port), SetpointLimits(-20.0, 20.0, "kW"), link_wait_s=0.5)
    crashes = []
    try:
        assert not await adapter.connect()

        async def many_connections():
            res = await adapter.send_setpoint(Setpoint("bess1", 5.0, "kW"))
            assert not res.ok and res.status == "unreachable", res
            t = await adapter.read_telemetry()
            assert not t.connected and t.quality == "unreachable"
            crashes.extend(adapter.take_events())
            # one child may be connected to several times before it dies: wait for a restart too
            return device.accepted >= 4 and (mode == "rst" or (crashes and adapter.worker.starts >= 2))

        await wait_until(many_connections, timeout_s=90, interval_s=0.2)
        for event in crashes:
            assert event.severity == "critical" and event.kind == "client_crashed"
            assert "IEC 104 client for 127.0.0.1" in event.reason and "died" in event.reason
        if mode == "fin":
            assert any("SIGSEGV" in e.reason for e in crashes), crashes
        assert adapter.worker.starts >= 2 or mode == "rst"
    finally:
        device.stop()
    rtu = BessRtu(port=port)
    rtu.add("bess1", endpoint(port).points, common_address=CA, energy_kwh=10.0, max_power_kw=50.0)
    rtu.start()
    try:
        async def confirmed():
            return (await adapter.send_setpoint(Setpoint("bess1", 5.0, "kW"))).ok

        await wait_until(confirmed, timeout_s=60, interval_s=0.2)
        assert rtu.commands[-1] == ("bess1", 5.0)
        t = await adapter.read_telemetry()
        assert t.connected and t.quality == "good" and t.active_power_kw == pytest.approx(5.0)
    finally:
        await adapter.close()
        rtu.stop()


@pytest.mark.parametrize(("wrong", "cause"), [({"common_address": CA + 1}, "cause 46 (unknown common address"),
                                              ({"setpoint_ioa": 999}, "cause 47 (unknown information object")])
async def test_an_unknown_address_is_rejected_with_its_cause(rtu, wrong, cause):
    """The RTU answers a command to an address it does not have with cause 46/47 (and the P/N bit); c104's
    transmit() says True to some of those: the frame on the wire decides."""
    e = endpoint(rtu.port)
    if "setpoint_ioa" in wrong:
        e = e.model_copy(update={"points": e.points.model_copy(update=wrong)})
    else:
        e = e.model_copy(update=wrong)
    ad = Iec104Adapter("bess1", e, SetpointLimits(-20.0, 20.0, "kW"), link_wait_s=1.0)
    try:
        res = await ad.send_setpoint(Setpoint("bess1", 5.0, "kW"))
        assert res.status == "rejected" and cause in res.reason, res
        assert rtu.commands == []
    finally:
        await ad.close()


async def test_scaled_measured_values_are_read():
    """An RTU that sends P, V and SoC as scaled values (M_ME_NB_1): read with the endpoint's point type and scale."""
    port = free_port()
    scale = {"active_power": 0.1, "voltage": 0.1, "soc": 0.01}
    e = endpoint(port, measured_type="scaled", measured_scale=scale)
    sim = BessRtu(port=port)
    sim.add("bess1", e.points, common_address=CA, max_power_kw=50.0, soc_pct=55.5, voltage_v=401.2,
            measured_type="scaled", measured_scale=scale)
    sim.start()
    ad = Iec104Adapter("bess1", e, SetpointLimits(-20.0, 20.0, "kW"), link_wait_s=1.0)
    try:
        res = await ad.send_setpoint(Setpoint("bess1", -12.3, "kW"))
        assert res.ok, res.reason
        t = await ad.read_telemetry()
        assert t.quality == "good", t.notes
        assert t.active_power_kw == pytest.approx(-12.3, abs=0.051)
        assert t.voltage_v == pytest.approx(401.2, abs=0.051) and t.soc_pct == pytest.approx(55.5, abs=0.01)
    finally:
        await ad.close()
        sim.stop()
    with pytest.raises(ValueError, match="measured_scale of active_power, voltage, soc: that quantity is a short"):
        endpoint(port, measured_scale=scale)


async def test_stations_behind_one_rtu_share_one_connection():
    """Two batteries at common addresses 7 and 8 of one RTU: one TCP connection (counted by a proxy in front of
    it) and one child process; each station gets its own setpoint and readings."""
    port = free_port()
    sim = BessRtu(port=port)
    sim.add("b7", endpoint(port).points, common_address=CA, max_power_kw=50.0)
    sim.add("b8", endpoint(port).points, common_address=CA + 1, max_power_kw=50.0)
    sim.start()
    proxy = await faults.FaultProxy(port).start()
    limits = SetpointLimits(-20.0, 20.0, "kW")
    ad7 = Iec104Adapter("b7", endpoint(proxy.port), limits, link_wait_s=1.0)
    ad8 = Iec104Adapter("b8", endpoint(proxy.port, common_address=CA + 1), limits, link_wait_s=1.0)
    try:
        r7, r8 = await asyncio.gather(ad7.send_setpoint(Setpoint("b7", -5.0)), ad8.send_setpoint(Setpoint("b8", 8.0)))
        assert r7.ok and r8.ok, (r7.reason, r8.reason)
        t7, t8 = await asyncio.gather(ad7.read_telemetry(), ad8.read_telemetry())
        assert t7.active_power_kw == pytest.approx(-5.0) and t8.active_power_kw == pytest.approx(8.0)
        assert sorted(sim.commands) == [("b7", -5.0), ("b8", 8.0)]
        assert ad7.worker is ad8.worker and ad7.worker.starts == 1, ad7.worker.starts
        assert proxy.accepted == 1, proxy.accepted
        await ad7.close()
        assert (await ad8.send_setpoint(Setpoint("b8", 2.0))).ok and proxy.accepted == 1
    finally:
        await ad7.close()
        await ad8.close()
        await proxy.stop()
        sim.stop()


_server_spec = importlib.util.spec_from_file_location("peers_iec104_server", Path(__file__).resolve().parents[1] /
                                                      "peers" / "iec104_server.py")
iec104_server = importlib.util.module_from_spec(_server_spec)
sys.modules[_server_spec.name] = iec104_server  # its dataclasses look themselves up there
_server_spec.loader.exec_module(iec104_server)


async def test_against_an_rtu_that_is_not_lib60870():
    """A server written from the standard (tests/peers/iec104_server.py): scaled and short-float values, a setpoint
    confirmed, and refusals that are one negative mirror with cause 46 or 47 and no ACTCON."""
    station = iec104_server.Station(CA, setpoint_ioa=100, power_ioa=11,
                                    measured={11: 0.0, 13: 398.7, 14: 61.5}, scaled={11: 0.1, 13: 0.1})
    server = await iec104_server.Iec104Server([station]).start()
    points = {"setpoint_ioa": 100, "active_power_ioa": 11, "voltage_ioa": 13, "soc_ioa": 14}
    e = Iec104Endpoint.model_validate({"protocol": "iec104", "host": "127.0.0.1", "port": server.port,
                                       "common_address": CA, "command_timeout_ms": 500, "points": points,
                                       "measured_type": "scaled", "measured_scale": {"active_power": 0.1,
                                                                                     "voltage": 0.1}})
    mixed = e.model_copy(update={"point_types": {"soc": "short_float"}})
    ad = Iec104Adapter("bess1", e, SetpointLimits(-20.0, 20.0, "kW"), link_wait_s=1.0)
    try:
        res = await ad.send_setpoint(Setpoint("bess1", -12.5, "kW"))
        assert res.ok, res.reason
        assert station.commands == [-12.5]
        t = await ad.read_telemetry()
        assert t.active_power_kw == pytest.approx(-12.5) and t.voltage_v == pytest.approx(398.7)
        assert t.quality == "questionable" and "soc_pct" in t.notes  # SoC comes as a short float: not this type
    finally:
        await ad.close()
    ad = Iec104Adapter("bess1", mixed, SetpointLimits(-20.0, 20.0, "kW"), link_wait_s=1.0)
    try:  # with the SoC's own type: every point read
        t = await ad.read_telemetry()
        assert t.quality == "good", t.notes
        assert t.soc_pct == pytest.approx(61.5) and t.active_power_kw == pytest.approx(-12.5)
    finally:
        await ad.close()
    for wrong, cause in (({"common_address": CA + 1}, "cause 46"), ({"setpoint_ioa": 999}, "cause 47")):
        bad = e.model_copy(update={"points": e.points.model_copy(update=wrong)}) if "setpoint_ioa" in wrong \
            else e.model_copy(update=wrong)
        ad = Iec104Adapter("bess1", bad, SetpointLimits(-20.0, 20.0, "kW"), link_wait_s=1.0)
        try:
            res = await ad.send_setpoint(Setpoint("bess1", 3.0, "kW"))
            assert res.status == "rejected" and cause in res.reason, res
        finally:
            await ad.close()
    assert station.commands == [-12.5]
    await server.stop()
