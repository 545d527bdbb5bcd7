"""flexopt's Modbus adapter against a server flexopt did not write: pyModbusTCP's ModbusServer (its own framing and
data bank), over real sockets on 127.0.0.1. What the adapter writes is read from the server's registers directly."""

from __future__ import annotations

import pytest
from pyModbusTCP.server import DataBank, ModbusServer

from flexopt.adapters.base import Setpoint, SetpointLimits
from flexopt.adapters.modbus_adapter import ModbusAdapter
from flexopt.adapters.modbus_codec import decode, encode
from flexopt.adapters.sim.util import free_port
from flexopt.config.endpoints import ModbusEndpoint


@pytest.fixture
def server():
    bank = DataBank()
    srv = ModbusServer(host="127.0.0.1", port=free_port(), no_block=True, data_bank=bank)
    srv.start()
    yield srv, bank
    srv.stop()


def endpoint(port: int, registers: dict, **kw) -> ModbusEndpoint:
    return ModbusEndpoint.model_validate({"protocol": "modbus", "host": "127.0.0.1", "port": port, "device_id": 1,
                                          "timeout_s": 0.5, "registers": registers, **kw})


async def test_units_signs_and_percent_against_pymodbustcp(server):
    srv, bank = server
    registers = {
        "setpoint": {"address": 10, "data_type": "int32", "unit": "W", "power_sign": "generator"},
        "active_power": {"address": 12, "data_type": "int32", "unit": "W", "power_sign": "generator"},
        "soc": {"address": 14, "data_type": "uint16", "scale": 0.1, "unit": "%"},
        "setpoint_revert": {"address": 20, "data_type": "uint16", "unit": "s"},
    }
    e = endpoint(srv.port, registers, setpoint_revert_s=900)
    bank.set_holding_registers(12, encode(e.registers["active_power"], 20000.0))  # the device feeds in 20 kW
    bank.set_holding_registers(14, [615])
    ad = ModbusAdapter("bess", e, SetpointLimits(-50.0, 50.0, "kW"))
    res = await ad.send_setpoint(Setpoint("bess", -20.0, "kW"))  # discharge 20 kW: +20000 W for a generator
    assert res.ok, res.reason
    assert decode(e.registers["setpoint"], bank.get_holding_registers(10, 2)) == 20000
    assert bank.get_holding_registers(20, 1) == [900]
    t = await ad.read_telemetry()
    assert t.active_power_kw == pytest.approx(-20.0) and t.soc_pct == pytest.approx(61.5)
    assert t.setpoint == pytest.approx(-20.0)
    await ad.close()

    pv = endpoint(srv.port, {"setpoint": {"address": 40, "data_type": "uint16", "scale": 0.1, "unit": "%",
                                          "percent_of_kw": 8.0}})
    ad = ModbusAdapter("pv", pv, SetpointLimits(0.0, 8.0, "kW"))
    assert (await ad.send_setpoint(Setpoint("pv", 6.0, "kW"))).ok
    assert bank.get_holding_registers(40, 1) == [750]  # 75.0 % of 8 kW
    await ad.close()


async def test_a_stopped_pymodbustcp_server_is_unreachable(server):
    srv, _bank = server
    e = endpoint(srv.port, {"setpoint": {"address": 10, "data_type": "int32", "unit": "W"}})
    ad = ModbusAdapter("bess", e, SetpointLimits(-50.0, 50.0, "kW"))
    assert (await ad.send_setpoint(Setpoint("bess", 5.0, "kW"))).ok
    srv.stop()
    res = await ad.send_setpoint(Setpoint("bess", 6.0, "kW"))
    assert res.status == "unreachable", res
    srv.start()
    res = await ad.send_setpoint(Setpoint("bess", 7.0, "kW"))
    assert res.ok, res.reason
    await ad.close()
