"""By hand (mbpoll is a Debian package, not installed by ``make install``, so this is no test of the suite):
mbpoll, an independent Modbus client (C, libmodbus), against flexopt's simulated BMS with a battery map in W
(int32) and a PV limit in % of 10 kW. ``apt-get install mbpoll``, then ``.venv/bin/python tests/peers/mbpoll_check.py``;
it exits 1 on the first difference.

Seen with mbpoll 1.4.11: -20000 written to the W register is -20 kW, -60000 (-60 kW, beyond 50) answers "Illegal
data value", 400 (40.0 %) is a 4 kW limit and the PV reads -4000 W."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from flexopt.adapters.sim.bms import BmsSimulator
from flexopt.adapters.sim.util import free_port
from flexopt.config.endpoints import ModbusEndpoint


def mbpoll(port: int, unit: int, register: int, kind: str, *values: str) -> subprocess.CompletedProcess:
    cmd = ["mbpoll", "-m", "tcp", "-p", str(port), "-0", "-1", "-a", str(unit), "-r", str(register), "-t", kind,
           "-B", "--", "127.0.0.1", *values]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20)


async def main() -> int:
    sim = BmsSimulator(port=free_port())
    base = {"protocol": "modbus", "host": "127.0.0.1", "port": sim.port}
    battery = sim.add("bess", ModbusEndpoint.model_validate(base | {"device_id": 1, "registers": {
        "setpoint": {"address": 10, "data_type": "int32", "unit": "W"},
        "active_power": {"address": 12, "data_type": "int32", "unit": "W"}}}), "battery", -50, 50)
    pv = sim.add("pv", ModbusEndpoint.model_validate(base | {"device_id": 2, "registers": {
        "setpoint": {"address": 40, "data_type": "uint16", "scale": 0.1, "unit": "%", "percent_of_kw": 10.0},
        "active_power": {"address": 41, "data_type": "int16", "unit": "W"}}}), "pv", 0, 10, pv_available_kw=6.0)
    await sim.start()
    try:
        checks = []
        r = await asyncio.to_thread(mbpoll, sim.port, 1, 10, "4:int", "-20000")
        checks.append(("write -20000 W", r.returncode == 0 and battery.setpoint == -20.0))
        r = await asyncio.to_thread(mbpoll, sim.port, 1, 12, "4:int")
        checks.append(("read P -20000 W", r.returncode == 0 and "-20000" in r.stdout))
        r = await asyncio.to_thread(mbpoll, sim.port, 1, 10, "4:int", "-60000")
        checks.append(("-60 kW refused", r.returncode != 0 and "Illegal data value" in r.stderr))
        r = await asyncio.to_thread(mbpoll, sim.port, 2, 40, "4", "400")
        checks.append(("40.0 % is 4 kW", r.returncode == 0 and pv.setpoint == 4.0))
        r = await asyncio.to_thread(mbpoll, sim.port, 2, 41, "4")
        checks.append(("PV -4000 W", r.returncode == 0 and "(-4000)" in r.stdout))
    finally:
        await sim.stop()
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
