"""Modbus adapter against the simulated BMS (real pymodbus server and client on 127.0.0.1)."""

from __future__ import annotations

import pytest
from pymodbus.client import AsyncModbusTcpClient

from flexopt.adapters.base import Setpoint, SetpointLimits
from flexopt.adapters.modbus_adapter import ModbusAdapter
from flexopt.adapters.modbus_codec import decode, encode
from flexopt.adapters.sim.bms import BmsSimulator
from flexopt.adapters.sim.util import free_port
from flexopt.config.endpoints import ModbusEndpoint, ModbusRegister


def endpoint(port: int, unit: int, registers: dict, timeout_s: float = 0.5) -> ModbusEndpoint:
    return ModbusEndpoint.model_validate(
        {"protocol": "modbus", "host": "127.0.0.1", "port": port, "device_id": unit, "timeout_s": timeout_s,
         "registers": registers}
    )


def pv_map(port: int) -> ModbusEndpoint:
    return endpoint(port, 1, {
        "setpoint": {"address": 100, "data_type": "uint16", "scale": 0.1, "unit": "kW"},
        "active_power": {"address": 102, "data_type": "int32", "unit": "W"},
        "voltage": {"address": 104, "data_type": "uint16", "scale": 0.1, "table": "input", "unit": "V"},
        "availability": {"address": 3, "table": "discrete"},
    })


def charger_map(port: int) -> ModbusEndpoint:
    return endpoint(port, 2, {
        "setpoint": {"address": 10, "data_type": "float32", "word_order": "little", "unit": "kW"},
        "active_power": {"address": 12, "data_type": "float32", "word_order": "little", "unit": "kW"},
        "ev_energy": {"address": 14, "data_type": "uint32", "unit": "Wh"},
        "ev_plugged": {"address": 0, "table": "discrete"},
        "ev_charging": {"address": 1, "table": "discrete"},
    })


def climate_map(port: int) -> ModbusEndpoint:
    return endpoint(port, 2, {
        "setpoint": {"address": 200, "data_type": "int16", "scale": 0.1, "unit": "degC"},
        "temperature": {"address": 201, "data_type": "int16", "scale": 0.1, "offset": -40.0, "unit": "degC"},
        "active_power": {"address": 202, "data_type": "int16", "unit": "W"},
    })


@pytest.fixture
async def bms():
    sim = BmsSimulator(port=free_port())
    sim.add("pv1", pv_map(sim.port), "pv", min_value=0, max_value=6, pv_available_kw=4.0, voltage_v=231.4)
    sim.add("ev1", charger_map(sim.port), "charger", min_value=0, max_value=22, ev_max_kw=7.4)
    sim.add("zone1", climate_map(sim.port), "climate", min_value=5, max_value=30, temp_c=19.0)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def raw(bms):
    c = AsyncModbusTcpClient("127.0.0.1", port=bms.port, timeout=1, retries=0)
    assert await c.connect()
    yield c
    c.close()


def asset(bms, asset_id):
    return next(a for a in bms.assets if a.asset_id == asset_id)


async def test_pv_curtailment_round_trip_with_scaling(bms, raw):
    ad = ModbusAdapter("pv1", asset(bms, "pv1").endpoint, SetpointLimits(0.0, 6.0, "kW"))
    assert await ad.connect()
    res = await ad.send_setpoint(Setpoint("pv1", 2.5, "kW"))
    assert res.ok and res.status == "confirmed"
    # on the wire: uint16 with scale 0.1 -> 25
    assert (await raw.read_holding_registers(100, count=1, device_id=1)).registers == [25]
    t = await ad.read_telemetry()
    assert t.connected and t.available is True
    assert t.active_power_kw == pytest.approx(-2.5)  # curtailed to 2.5 kW, fed in: negative
    assert t.voltage_v == pytest.approx(231.4)
    assert t.setpoint == pytest.approx(2.5)
    # the int32 W register holds -2500 as two big-endian words
    assert (await raw.read_holding_registers(102, count=2, device_id=1)).registers == [0xFFFF, 0xF63C]
    await ad.close()


async def test_charger_float32_little_endian_and_energy(bms, raw):
    ad = ModbusAdapter("ev1", asset(bms, "ev1").endpoint, SetpointLimits(0.0, 11.0, "kW"))
    res = await ad.send_setpoint(Setpoint("ev1", 11.0, "kW"))
    assert res.ok
    # 11.0 as float32 is 0x41300000; little word order puts the low word first
    assert (await raw.read_holding_registers(10, count=2, device_id=2)).registers == [0x0000, 0x4130]
    t = await ad.read_telemetry()
    assert t.ev_plugged is True and t.ev_charging is True
    assert t.active_power_kw == pytest.approx(7.4)  # the car takes 7.4 kW at most
    assert t.ev_energy_kwh is not None and t.ev_energy_kwh >= 0
    await ad.close()


async def test_climate_offset_and_setpoint(bms, raw):
    ad = ModbusAdapter("zone1", asset(bms, "zone1").endpoint, SetpointLimits(16.0, 26.0, "degC"))
    res = await ad.send_setpoint(Setpoint("zone1", 21.5, "degC"))
    assert res.ok and asset(bms, "zone1").setpoint == pytest.approx(21.5)
    words = (await raw.read_holding_registers(200, count=3, device_id=2)).registers
    assert words[0] == 215
    t = await ad.read_telemetry()
    # raw = (T + 40) / 0.1
    assert t.temp_c == pytest.approx(words[1] * 0.1 - 40.0, abs=0.11)
    assert 18.9 <= t.temp_c <= 21.5
    assert t.active_power_kw > 0
    await ad.close()


async def test_out_of_range_is_clamped(bms):
    ad = ModbusAdapter("ev1", asset(bms, "ev1").endpoint, SetpointLimits(0.0, 11.0, "kW"))
    res = await ad.send_setpoint(Setpoint("ev1", 50_000, "W"))
    assert res.ok and res.clamped and res.sent == 11.0 and res.unit == "kW"
    assert asset(bms, "ev1").setpoint == pytest.approx(11.0)
    await ad.close()


async def test_exception_response_illegal_value_is_rejected(bms):
    ad = ModbusAdapter("pv1", asset(bms, "pv1").endpoint, SetpointLimits(0.0, 10.0, "kW"))
    res = await ad.send_setpoint(Setpoint("pv1", 8.0, "kW"))  # the inverter takes at most 6
    assert res.status == "rejected" and "exception 3" in res.reason and "illegal data value" in res.reason
    assert asset(bms, "pv1").setpoint == 0.0
    await ad.close()


async def test_illegal_address_is_an_error(bms):
    ep = endpoint(bms.port, 1, {"setpoint": {"address": 100}, "voltage": {"address": 4000}})
    ad = ModbusAdapter("pv1", ep)
    t = await ad.read_telemetry()
    assert not t.connected and "exception 2" in t.notes and "illegal data address" in t.notes
    await ad.close()


async def test_device_down_then_back(bms):
    ad = ModbusAdapter("pv1", asset(bms, "pv1").endpoint, SetpointLimits(0.0, 6.0, "kW"))
    assert (await ad.send_setpoint(Setpoint("pv1", 3.0, "kW"))).ok
    await bms.stop()
    res = await ad.send_setpoint(Setpoint("pv1", 4.0, "kW"))
    # the first call may race the FIN of the dropped connection: still unreachable, never a timeout
    assert res.status == "unreachable" and not res.ok, res
    res = await ad.send_setpoint(Setpoint("pv1", 4.0, "kW"))
    assert res.status == "unreachable" and "no Modbus server" in res.reason
    assert (await ad.read_telemetry()).quality == "unreachable"
    await bms.start()
    res = await ad.send_setpoint(Setpoint("pv1", 4.0, "kW"))
    assert res.ok, res.reason
    assert (await ad.read_telemetry()).active_power_kw == pytest.approx(-4.0)
    await ad.close()


async def test_unreachable_at_connect():
    ad = ModbusAdapter("x", endpoint(free_port(), 1, {"setpoint": {"address": 1}}))
    assert not await ad.connect()
    assert "no Modbus server" in ad.last_error


async def test_silent_device_times_out_then_recovers(bms):
    ad = ModbusAdapter("pv1", asset(bms, "pv1").endpoint.model_copy(update={"timeout_s": 0.2}),
                       SetpointLimits(0.0, 6.0, "kW"))
    assert await ad.connect()
    bms.delay_s = 0.6
    res = await ad.send_setpoint(Setpoint("pv1", 1.0, "kW"))
    assert res.status in ("timeout", "unreachable") and not res.ok
    bms.delay_s = 0.0
    res = await ad.send_setpoint(Setpoint("pv1", 1.5, "kW"))
    assert res.ok, res.reason
    await ad.close()


def test_codec_types_and_ranges():
    r = ModbusRegister(address=0, data_type="int16", scale=0.1)
    assert encode(r, -12.3) == [0xFF85]
    assert decode(r, [0xFF85]) == pytest.approx(-12.3)
    r32 = ModbusRegister(address=0, data_type="uint32", word_order="little")
    assert encode(r32, 0x12345678) == [0x5678, 0x1234]
    with pytest.raises(ValueError, match="outside uint16"):
        encode(ModbusRegister(address=0, data_type="uint16"), -1)


async def test_a_setpoint_at_the_rating_stays_within_it_in_a_float32_register():
    """float32(7.4) is 7.4000001: written as is, a device that checks its 7.4 kW rating refuses it (the
    simulated BMS answers exception 3, as such a device does). The adapter rounds a power toward zero."""
    sim = BmsSimulator(port=free_port())
    sim.add("v2g", charger_map(sim.port), "charger", min_value=-7.2, max_value=7.4, ev_max_kw=7.4)
    await sim.start()
    try:
        ad = ModbusAdapter("v2g", asset(sim, "v2g").endpoint, SetpointLimits(-7.2, 7.4, "kW"))
        assert await ad.connect()
        for value in (7.4, 9.0, -7.2, -8.0):  # at and beyond the rating, both ways
            res = await ad.send_setpoint(Setpoint("v2g", value, "kW"))
            assert res.ok and res.status == "confirmed", (value, res)
            written = asset(sim, "v2g").setpoint
            assert -7.2 <= written <= 7.4 and written == pytest.approx(max(-7.2, min(7.4, value)), abs=1e-5)
        await ad.close()
    finally:
        await sim.stop()
