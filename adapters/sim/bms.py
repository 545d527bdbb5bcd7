"""A simulated building management system on Modbus TCP (pymodbus server).

Each asset (PV inverter, EV charger, climate zone, battery) sits at the unit id and registers of its
ModbusEndpoint. Physics advance whenever a register is read, so a reading right after a write
already shows the effect. Writes outside a device's accepted range answer exception 3.
:class:`ModbusSimulator` is the protocol's simulator for ``flexopt simulate``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from flexopt.adapters.modbus_adapter import field_of
from flexopt.adapters.modbus_codec import decode, encode, from_register, is_bit, is_power, register_count, to_register
from flexopt.adapters.sim.base import ProtocolSimulator
from flexopt.config.endpoints import ModbusEndpoint, ModbusRegister

Kind = Literal["pv", "charger", "climate", "battery", "power"]
_FROM_K = {"W": 1000.0, "var": 1000.0, "Wh": 1000.0, "MW": 0.001, "Mvar": 0.001, "MWh": 0.001}
_TABLES = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
           23: "holding", 4: "input"}


@dataclass
class BmsAsset:
    """State in physical units; ``setpoint`` is in kW (load convention) for a power register (W, kW, MW, % of a
    kW), else in the register's unit (degC, A, on/off). Registers carry their own unit and sign."""

    asset_id: str
    endpoint: ModbusEndpoint
    kind: Kind
    min_value: float
    max_value: float
    setpoint: float = 0.0
    power_kw: float = 0.0
    pv_available_kw: float = 5.0
    ev_plugged: bool = True
    ev_max_kw: float = 11.0
    ev_energy_kwh: float = 0.0
    temp_c: float = 21.0
    outdoor_temp_c: float = 10.0
    soc_pct: float = 50.0
    energy_kwh: float = 10.0
    voltage_v: float = 230.0
    rated_kw: float = 3.0
    available: bool = True
    clock: Callable[[], float] = time.monotonic  # seconds; a replay's simulated clock
    pv_profile: Callable[[float], float] | None = None  # available PV kW at a clock time (a replay's day)
    plug_schedule: Callable[[float], bool] | None = None  # a car plugged in at a clock time (a replay's sessions)
    revert_s: float | None = None  # the failsafe the client armed: back to the default setpoint after this long
    reverted: int = 0  # how often the failsafe fired
    last: float | None = None
    last_setpoint: float | None = None

    def __post_init__(self) -> None:
        self.last = self.last_setpoint = self.clock()

    def default_setpoint(self) -> float:
        """What the device does on its own: a battery idles, a PV inverter or charger runs unlimited."""
        return {"pv": self.max_value, "charger": self.max_value, "climate": 21.0}.get(self.kind, 0.0)

    def advance(self) -> None:
        now = self.clock()
        if self.revert_s is not None and now - self.last_setpoint > self.revert_s:
            self.setpoint, self.revert_s = self.default_setpoint(), None
            self.reverted += 1
        dt_h, self.last = (now - self.last) / 3600.0, now
        if self.kind == "pv":  # setpoint = export limit in kW (curtailment)
            if self.pv_profile is not None:
                self.pv_available_kw = self.pv_profile(now)
            self.power_kw = -min(self.pv_available_kw, max(self.setpoint, 0.0)) if self.available else 0.0
        elif self.kind == "charger":  # setpoint = charging ceiling in kW; a V2G charger (min_value < 0) discharges
            if self.plug_schedule is not None:
                plugged = self.plug_schedule(now)
                if plugged and not self.ev_plugged:
                    self.ev_energy_kwh = 0.0  # a new car, a new session meter
                self.ev_plugged = plugged
            floor = min(self.min_value, 0.0)
            self.power_kw = min(max(self.setpoint, floor), self.ev_max_kw) if self.ev_plugged else 0.0
            self.ev_energy_kwh += self.power_kw * dt_h
        elif self.kind == "climate":  # setpoint in degC; heating only, fast enough to see in a test
            steps = max(1, math.ceil(dt_h * 3600))  # one-second steps: a replay's clock jumps by minutes
            for _ in range(min(steps, 3600)):
                gap = self.setpoint - self.temp_c
                self.power_kw = min(5.0, max(0.0, 0.2 + 1.5 * gap))
                self.temp_c += (self.power_kw * 3.0 - (self.temp_c - self.outdoor_temp_c) * 0.1) * dt_h / steps * 60
        elif self.kind == "power":  # a load that draws its setpoint (kW, or on/off times rated_kw)
            on_off = self.endpoint.registers["setpoint"].table == "coil"
            self.power_kw = self.setpoint * self.rated_kw if on_off else self.setpoint
        else:  # battery: setpoint in kW, load convention; stops at empty/full
            p = self.setpoint
            if (p > 0 and self.soc_pct >= 100.0) or (p < 0 and self.soc_pct <= 0.0):
                p = 0.0
            self.power_kw = p
            self.soc_pct = min(100.0, max(0.0, self.soc_pct + 100.0 * p * dt_h / self.energy_kwh))

    def value(self, name: str, reg: ModbusRegister) -> float | None:
        """The value of a named register in the register's own unit."""
        target = "setpoint" if name == "setpoint" else field_of(name)
        v = {
            "setpoint": self.setpoint,
            "active_power_kw": self.power_kw,
            "reactive_power_kvar": 0.1 * self.power_kw,
            "voltage_v": self.voltage_v,
            "soc_pct": self.soc_pct,
            "temp_c": self.temp_c,
            "available": float(self.available),
            "ev_plugged": float(self.ev_plugged),
            "ev_charging": float(self.power_kw > 0),
            "ev_energy_kwh": self.ev_energy_kwh,
        }.get(target or "")
        if v is None:
            return None
        if name == "setpoint":
            return to_register(reg, v) if is_power(reg) else v
        if reg.unit == "%" and reg.percent_of_kw:
            return to_register(reg, v)
        return v * _FROM_K.get(reg.unit, 1.0) * (-1.0 if reg.power_sign == "generator" else 1.0)


class BmsSimulator:
    """One Modbus TCP server holding any number of assets, at one or more unit ids."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5020) -> None:
        self.host, self.port = host, port
        self.assets: list[BmsAsset] = []
        self.delay_s = 0.0  # > client timeout simulates a device that stops answering
        self.writes: list[tuple[str, float]] = []
        self._server: ModbusTcpServer | None = None

    def add(self, asset_id: str, endpoint: ModbusEndpoint, kind: Kind, min_value: float, max_value: float,
            **state: float) -> BmsAsset:
        asset = BmsAsset(asset_id, endpoint, kind, min_value, max_value, **state)
        self.assets.append(asset)
        return asset

    async def start(self) -> None:
        units = sorted({a.endpoint.device_id for a in self.assets})
        devices = [self._device(u) for u in units]
        self._server = ModbusTcpServer(devices, address=(self.host, self.port))
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    # --- internals ----------------------------------------------------------------------------
    def _device(self, unit: int) -> SimDevice:
        mine = [a for a in self.assets if a.endpoint.device_id == unit]
        top = {t: 16 for t in ("coil", "discrete", "holding", "input")}
        for a in mine:
            for reg in a.endpoint.registers.values():
                top[reg.table] = max(top[reg.table], reg.address + register_count(reg) + 1)
        blocks = tuple(
            [SimData(0, count=top[t] + 16, values=False, datatype=DataType.BITS)]
            if t in ("coil", "discrete")
            else [SimData(0, count=top[t], values=0, datatype=DataType.REGISTERS)]
            for t in ("coil", "discrete", "holding", "input")
        )

        async def action(fc, start, address, count, regs, values):
            return await self._action(mine, fc, start, address, count, regs, values)

        return SimDevice(unit, simdata=blocks, action=action)

    async def _action(self, assets, fc, start, address, count, regs, values):
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        table = _TABLES.get(fc)
        for a in assets:
            a.advance()
        if values:
            return self._write(assets, table, start, address, regs, values)
        for a in assets:
            for name, reg in a.endpoint.registers.items():
                v = a.value(name, reg)
                if reg.table == table and v is not None:
                    self._put(reg, start, regs, v)
        return None

    def _write(self, assets, table, start, address, regs, values):
        for a in assets:
            revert = a.endpoint.registers.get("setpoint_revert")
            if revert is not None and revert.table == table and address <= revert.address < address + len(values):
                n = register_count(revert)
                words = list(regs[revert.address - start: revert.address - start + n])
                for i, w in enumerate(values):
                    if 0 <= address + i - revert.address < n:
                        words[address + i - revert.address] = w
                a.revert_s = decode(revert, words) or None
                a.last_setpoint = a.clock()
            reg = a.endpoint.registers.get("setpoint")
            if reg is None or reg.table != table:
                continue
            n = register_count(reg)
            if not (address < reg.address + n and reg.address < address + len(values)):
                continue
            if is_bit(reg):
                new = float(bool(values[reg.address - address]))
            else:
                words = list(regs[reg.address - start : reg.address - start + n])
                for i, w in enumerate(values):
                    if 0 <= address + i - reg.address < n:
                        words[address + i - reg.address] = w
                new = decode(reg, words)
            if is_power(reg):  # the register's unit and sign, as its map declares
                new = from_register(reg, new)
            if not a.min_value - 1e-9 <= new <= a.max_value + 1e-9 or not a.available:
                return ExcCodes.ILLEGAL_VALUE
            a.setpoint, a.last_setpoint = new, a.clock()
            self.writes.append((a.asset_id, new))
        return None

    @staticmethod
    def _put(reg: ModbusRegister, start: int, regs: list[int], value: float) -> None:
        if is_bit(reg):
            word, bit = divmod(reg.address, 16)
            mask = 1 << bit
            regs[word - start] = (regs[word - start] | mask) if value else (regs[word - start] & ~mask)
            return
        try:
            words = encode(reg, value)
        except ValueError:  # the register cannot carry this value: leave the old one
            return
        regs[reg.address - start : reg.address - start + len(words)] = words


def _sim_state(asset: Any, kind: Kind, options: Mapping[str, Any]) -> dict[str, Any]:
    """What a replay gives a device: its clock, its PV profile, where it starts (configured SoC, temperature)."""
    out: dict[str, Any] = {}
    if options.get("clock") is not None:
        out["clock"] = options["clock"].monotonic
    profile = (options.get("pv_profiles") or {}).get(asset.id)
    if kind == "pv" and profile is not None:
        out["pv_profile"] = profile
    if kind == "battery" and getattr(asset, "initial_soc_pct", None) is not None:
        out |= {"soc_pct": asset.initial_soc_pct, "energy_kwh": getattr(asset, "energy_kwh", 10.0)}
    if kind == "climate" and getattr(asset, "initial_temp_c", None) is not None:
        out["temp_c"] = asset.initial_temp_c
    if kind == "charger":
        out["ev_max_kw"] = getattr(asset, "max_charge_kw", 11.0)
    return out


class ModbusSimulator(ProtocolSimulator):
    """The portfolio's Modbus devices: one BMS server per host:port, each device at its own unit id."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.servers: dict[tuple[str, int], BmsSimulator] = {}

    def add(self, asset: Any, endpoint: Any, name: str, lo: float, hi: float) -> str:
        e = endpoint
        server = self.servers.setdefault((e.host, e.port), BmsSimulator(e.host, e.port))
        kind = self._kind(asset, e)
        state: dict[str, Any] = {"pv_available_kw": 0.6 * asset.peak_kw} if kind == "pv" else {}
        state |= _sim_state(asset, kind, self.options)
        plugs = (self.options.get("ev_plugs") or {}).get(asset.id)
        if kind == "charger" and plugs is not None:
            device = e.device_id - asset.endpoint.device_id  # 0 for the first of a counted group
            state["plug_schedule"] = lambda now, _d=device: plugs(now, _d)
            state["ev_plugged"] = False
        server.add(name, e, kind, min_value=lo, max_value=hi, **state)
        return f"{e.host}:{e.port}"

    @staticmethod
    def _kind(asset: Any, endpoint: ModbusEndpoint) -> Kind:
        kind = {"pv": "pv", "ev_charger": "charger", "battery": "battery"}.get(asset.type)
        return kind or ("climate" if endpoint.device_unit() == "degC" else "power")  # type: ignore[return-value]

    async def start(self) -> None:
        for server in self.servers.values():
            await server.start()

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.stop()
