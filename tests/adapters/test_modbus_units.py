"""Modbus register maps as devices declare them: a battery setpoint in W (int32), a PV limit in % of the rated
power, generators that count feed-in positive; and a server that is killed. flexopt's adapter against flexopt's
simulated BMS and a raw pymodbus client, real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from pymodbus.client import AsyncModbusTcpClient

from flexopt.adapters.base import Setpoint, SetpointLimits
from flexopt.adapters.modbus_adapter import ModbusAdapter
from flexopt.adapters.modbus_codec import decode, encode
from flexopt.adapters.sim.bms import BmsSimulator
from flexopt.adapters.sim.util import free_port
from flexopt.config.endpoints import ModbusEndpoint

PEERS = Path(__file__).resolve().parents[1] / "peers"
_spec = importlib.util.spec_from_file_location("peers_modbus_process", PEERS / "modbus_process.py")
modbus_process = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = modbus_process
_spec.loader.exec_module(modbus_process)

BATTERY_W = {
    "setpoint": {"address": 10, "data_type": "int32", "unit": "W"},
    "active_power": {"address": 12, "data_type": "int32", "unit": "W"},
    "soc": {"address": 14, "data_type": "uint16", "scale": 0.1, "unit": "%"},
}


def endpoint(port: int, registers: dict, unit: int = 1) -> ModbusEndpoint:
    return ModbusEndpoint.model_validate({"protocol": "modbus", "host": "127.0.0.1", "port": port,
                                          "device_id": unit, "timeout_s": 0.5, "registers": registers})


async def test_a_battery_register_in_watts_takes_minus_20000_for_minus_20_kw():
    sim = BmsSimulator(port=free_port())
    battery = sim.add("bess", endpoint(sim.port, BATTERY_W), "battery", min_value=-50, max_value=50, soc_pct=60.0)
    await sim.start()
    try:
        ad = ModbusAdapter("bess", battery.endpoint, SetpointLimits(-50.0, 50.0, "kW"))
        res = await ad.send_setpoint(Setpoint("bess", -20.0, "kW"))
        assert res.ok, res.reason
        assert battery.setpoint == pytest.approx(-20.0) and battery.power_kw == pytest.approx(-20.0)
        t = await ad.read_telemetry()
        assert t.active_power_kw == pytest.approx(-20.0) and t.setpoint == pytest.approx(-20.0)
        raw = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0)
        assert await raw.connect()
        reg = battery.endpoint.registers["setpoint"]
        assert decode(reg, (await raw.read_holding_registers(10, count=2, device_id=1)).registers) == -20000
        # another client writing the register map's own unit is understood the same way
        assert not (await raw.write_registers(10, encode(reg, 15000), device_id=1)).isError()
        assert battery.setpoint == pytest.approx(15.0)
        assert (await raw.write_registers(10, encode(reg, -60000), device_id=1)).isError()  # -60 kW: beyond 50
        raw.close()
        await ad.close()
    finally:
        await sim.stop()


async def test_a_pv_limit_in_percent_driven_in_kw():
    pv_map = {"setpoint": {"address": 40, "data_type": "uint16", "scale": 0.1, "unit": "%", "percent_of_kw": 10.0},
              "active_power": {"address": 41, "data_type": "int16", "unit": "W"}}
    sim = BmsSimulator(port=free_port())
    pv = sim.add("pv", endpoint(sim.port, pv_map), "pv", min_value=0, max_value=10, pv_available_kw=6.0)
    await sim.start()
    try:
        ad = ModbusAdapter("pv", pv.endpoint, SetpointLimits(0.0, 10.0, "kW"))
        res = await ad.send_setpoint(Setpoint("pv", 4.0, "kW"))
        assert res.ok, res.reason
        raw = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0)
        assert await raw.connect()
        assert (await raw.read_holding_registers(40, count=1, device_id=1)).registers == [400]  # 40.0 %
        raw.close()
        t = await ad.read_telemetry()
        assert t.setpoint == pytest.approx(4.0) and t.active_power_kw == pytest.approx(-4.0)
        await ad.close()
    finally:
        await sim.stop()
    with pytest.raises(ValidationError, match="percent_of_kw"):
        endpoint(1502, {"setpoint": {"address": 40, "unit": "%"}})


async def test_a_generator_sign_register():
    """The device counts feed-in positive: discharging 20 kW is +20 in its registers, -20 in flexopt."""
    gen = {"setpoint": {"address": 10, "data_type": "int32", "unit": "W", "power_sign": "generator"},
           "active_power": {"address": 12, "data_type": "float32", "unit": "kW", "power_sign": "generator"}}
    sim = BmsSimulator(port=free_port())
    battery = sim.add("bess", endpoint(sim.port, gen), "battery", min_value=-50, max_value=50)
    await sim.start()
    try:
        ad = ModbusAdapter("bess", battery.endpoint, SetpointLimits(-50.0, 50.0, "kW"))
        assert (await ad.send_setpoint(Setpoint("bess", -20.0, "kW"))).ok
        raw = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0)
        assert await raw.connect()
        regs = (await raw.read_holding_registers(10, count=4, device_id=1)).registers
        assert decode(gen_reg := battery.endpoint.registers["setpoint"], regs[:2]) == 20000, gen_reg
        assert decode(battery.endpoint.registers["active_power"], regs[2:]) == pytest.approx(20.0)
        raw.close()
        t = await ad.read_telemetry()
        assert t.active_power_kw == pytest.approx(-20.0) and t.setpoint == pytest.approx(-20.0)
        await ad.close()
    finally:
        await sim.stop()


async def test_a_killed_server_is_unreachable_not_a_timeout():
    port = free_port()
    spec = {"unit": 1, "kind": "battery", "lo": -50, "hi": 50, "registers": BATTERY_W}
    server = modbus_process.ModbusProcess(port, spec).start()
    try:
        ad = ModbusAdapter("bess", endpoint(port, BATTERY_W), SetpointLimits(-50.0, 50.0, "kW"))
        assert (await ad.send_setpoint(Setpoint("bess", 5.0, "kW"))).ok
        server.kill()
        res = await ad.send_setpoint(Setpoint("bess", 6.0, "kW"))
        assert res.status == "unreachable", res
        assert (await ad.read_telemetry()).quality == "unreachable"
        server.start()
        res = await ad.send_setpoint(Setpoint("bess", 7.0, "kW"))
        assert res.ok, res.reason
        await ad.close()
    finally:
        server.kill()


_faults_spec = importlib.util.spec_from_file_location("peers_faults_modbus", PEERS / "faults.py")
faults = importlib.util.module_from_spec(_faults_spec)
_faults_spec.loader.exec_module(faults)


async def test_units_behind_one_gateway_share_one_connection():
    """Two unit ids at one host:port: one TCP connection (counted by a proxy in front of the server), requests
    taking turns; closing one adapter keeps the other's link, closing both closes it."""
    sim = BmsSimulator(port=free_port())
    proxy = await faults.FaultProxy(sim.port).start()
    a = sim.add("b1", endpoint(proxy.port, BATTERY_W, unit=1), "battery", min_value=-50, max_value=50)
    b = sim.add("b2", endpoint(proxy.port, BATTERY_W, unit=2), "battery", min_value=-50, max_value=50)
    await sim.start()
    try:
        ad1 = ModbusAdapter("b1", a.endpoint, SetpointLimits(-50.0, 50.0, "kW"))
        ad2 = ModbusAdapter("b2", b.endpoint, SetpointLimits(-50.0, 50.0, "kW"))
        r1, r2 = await asyncio.gather(ad1.send_setpoint(Setpoint("b1", -7.0)), ad2.send_setpoint(Setpoint("b2", 9.0)))
        assert r1.ok and r2.ok, (r1.reason, r2.reason)
        t1, t2 = await asyncio.gather(ad1.read_telemetry(), ad2.read_telemetry())
        assert t1.active_power_kw == pytest.approx(-7.0) and t2.active_power_kw == pytest.approx(9.0)
        assert proxy.accepted == 1 and ad1.link is ad2.link
        await ad1.close()
        assert (await ad2.send_setpoint(Setpoint("b2", 3.0))).ok and proxy.accepted == 1
        await ad2.close()
        assert ad2._link is None
    finally:
        await proxy.stop()
        await sim.stop()


async def test_the_revert_register_is_armed_with_every_setpoint_and_the_device_falls_back():
    """The failsafe: with every setpoint the device's revert timeout is written; when flexopt stops sending, the
    simulated battery goes back to idle once it has passed."""
    registers = BATTERY_W | {"setpoint_revert": {"address": 20, "data_type": "uint16", "unit": "s"}}
    sim = BmsSimulator(port=free_port())
    e = ModbusEndpoint.model_validate({"protocol": "modbus", "host": "127.0.0.1", "port": sim.port, "device_id": 1,
                                       "timeout_s": 0.5, "registers": registers, "setpoint_revert_s": 1})
    battery = sim.add("bess", e, "battery", min_value=-50, max_value=50)
    await sim.start()
    try:
        ad = ModbusAdapter("bess", e, SetpointLimits(-50.0, 50.0, "kW"))
        assert (await ad.send_setpoint(Setpoint("bess", -20.0, "kW"))).ok
        t = await ad.read_telemetry()
        assert t.active_power_kw == pytest.approx(-20.0) and t.extra["setpoint_revert"] == 1.0
        await asyncio.sleep(0.6)
        assert (await ad.send_setpoint(Setpoint("bess", -10.0, "kW"))).ok  # renewed in time: no fallback
        await asyncio.sleep(0.6)
        assert (await ad.read_telemetry()).active_power_kw == pytest.approx(-10.0) and battery.reverted == 0
        await asyncio.sleep(0.6)  # flexopt stopped: 1.2 s since the last setpoint
        t = await ad.read_telemetry()
        assert t.active_power_kw == pytest.approx(0.0) and battery.reverted == 1
        await ad.close()
    finally:
        await sim.stop()
    with pytest.raises(ValidationError, match="setpoint_revert_s needs a register named setpoint_revert"):
        ModbusEndpoint.model_validate({"protocol": "modbus", "host": "h", "registers": BATTERY_W,
                                       "setpoint_revert_s": 60})
