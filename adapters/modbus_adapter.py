"""Modbus TCP (pymodbus client): register maps with type, scale, offset, word order and unit id.

Register names in the endpoint map say what a value is: ``setpoint`` (written), ``active_power``,
``reactive_power``, ``voltage``, ``soc``, ``temperature``, ``availability``, ``ev_plugged``,
``ev_charging``, ``ev_energy`` (read); other names are reported in ``Telemetry.extra``.
A register's ``unit`` (W, kW, var, Wh, ...) is converted to the unit in the Telemetry field name.
"""

from __future__ import annotations

import contextlib

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from flexopt.adapters.base import (
    BOOL_FIELDS,
    TELEMETRY_FIELDS,
    AdapterError,
    CommandStatus,
    DeviceAdapter,
    Setpoint,
    SetpointLimits,
    Telemetry,
    convert,
    utcnow,
)
from flexopt.adapters.modbus_codec import (
    decode,
    encode,
    encode_toward_zero,
    from_register,
    is_bit,
    is_power,
    register_count,
    step,
    to_register,
)
from flexopt.adapters.modbus_link import ModbusLink, acquire, release
from flexopt.config.endpoints import ModbusEndpoint, ModbusRegister

POINTS = {
    "active_power": "active_power_kw",
    "reactive_power": "reactive_power_kvar",
    "voltage": "voltage_v",
    "soc": "soc_pct",
    "temperature": "temp_c",
    "availability": "available",
    "ev_plugged": "ev_plugged",
    "ev_charging": "ev_charging",
    "ev_energy": "ev_energy_kwh",
}
_TO_K = {"W": 0.001, "var": 0.001, "Wh": 0.001, "MW": 1000.0, "Mvar": 1000.0, "MWh": 1000.0}
EXCEPTION_CODES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


def field_of(name: str) -> str | None:
    """The Telemetry field a register name fills, or None for extras."""
    if name in POINTS:
        return POINTS[name]
    return name if name in TELEMETRY_FIELDS else None


class ModbusAdapter(DeviceAdapter):
    protocol = "modbus"

    def __init__(self, asset_id: str, endpoint: ModbusEndpoint, limits: SetpointLimits | None = None) -> None:
        super().__init__(asset_id, limits, call_timeout_s=max(3.0, 4 * endpoint.timeout_s + 2.0))
        self.endpoint = endpoint
        self._link: ModbusLink | None = None  # shared with the other units behind the same host:port

    # --- plumbing -----------------------------------------------------------------------------
    @property
    def link(self) -> ModbusLink:
        if self._link is None:
            self._link = acquire(self.endpoint.host, self.endpoint.port, self.endpoint.timeout_s, self)
        return self._link

    async def _ensure(self) -> AsyncModbusTcpClient:
        """Connect if needed (call with the link's lock held); this is also how the adapter reconnects."""
        return await self.link.ensure()

    async def _call(self, what: str, fn, *args, **kwargs):
        """Run one request; exception responses and transport failures become AdapterErrors."""
        try:
            rr = await fn(*args, device_id=self.endpoint.device_id, **kwargs)
        except ConnectionException as exc:
            raise AdapterError("unreachable", f"{what}: connection lost ({exc})") from exc
        except ModbusIOException as exc:
            if not await self._still_there():
                raise AdapterError("unreachable", f"{what}: the connection was lost and "
                                   f"{self.endpoint.host}:{self.endpoint.port} no longer accepts one") from exc
            raise AdapterError("timeout", f"{what}: no answer within {self.endpoint.timeout_s:g} s") from exc
        except ModbusException as exc:
            raise AdapterError("error", f"{what}: {exc}") from exc
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            text = EXCEPTION_CODES.get(code, "unknown") if code is not None else str(rr)
            status: CommandStatus = "rejected" if code == 3 else "error"
            raise AdapterError(status, f"{what}: exception {code} ({text})")
        return rr

    async def _still_there(self) -> bool:
        """After a request got no answer: is the server there at all? A killed server is unreachable, a slow one a
        timeout. A fresh connection tells (the old one may hold a late answer)."""
        self.link.drop()
        try:
            await self._ensure()
        except AdapterError:
            return False
        return True

    async def _arm_revert(self, client: AsyncModbusTcpClient) -> None:
        """The failsafe, before every setpoint: the device's revert timeout (``setpoint_revert_s``), so it falls
        back to its own default when flexopt stops sending."""
        reg = self.endpoint.registers.get("setpoint_revert")
        if reg is None or self.endpoint.setpoint_revert_s is None:
            return
        what = f"write setpoint_revert@{reg.table}:{reg.address}"
        try:
            words = encode(reg, self.endpoint.setpoint_revert_s)
        except ValueError as exc:
            raise AdapterError("invalid", f"setpoint_revert_s: {exc}") from exc
        if len(words) == 1:
            await self._call(what, client.write_register, reg.address, words[0])
        else:
            await self._call(what, client.write_registers, reg.address, words)

    async def _read_register(self, client: AsyncModbusTcpClient, name: str, reg: ModbusRegister) -> float:
        n = register_count(reg)
        what = f"read {name}@{reg.table}:{reg.address}"
        if reg.table == "coil":
            return float((await self._call(what, client.read_coils, reg.address, count=1)).bits[0])
        if reg.table == "discrete":
            return float((await self._call(what, client.read_discrete_inputs, reg.address, count=1)).bits[0])
        fn = client.read_holding_registers if reg.table == "holding" else client.read_input_registers
        rr = await self._call(what, fn, reg.address, count=n)
        return decode(reg, rr.registers)

    # --- DeviceAdapter --------------------------------------------------------------------------
    async def _connect(self) -> None:
        async with self.link.lock:
            await self._ensure()

    async def _close(self) -> None:
        if self._link is not None:
            release(self._link, self)
            self._link = None

    async def _send(self, command: Setpoint) -> tuple[CommandStatus, str]:
        reg = self.endpoint.registers.get("setpoint")
        if reg is None:
            raise AdapterError("invalid", "the register map has no 'setpoint'")
        if reg.table in ("input", "discrete"):
            raise AdapterError("invalid", f"setpoint register is in the read-only {reg.table} table")
        value = command.value
        if command.unit in ("kW", "W") and is_power(reg):  # W/kW/MW, % of a rated kW, generator sign
            value = to_register(reg, convert(value, command.unit, "kW"))
        elif reg.unit and reg.unit != command.unit:
            try:
                value = convert(value, command.unit, reg.unit)
            except ValueError as exc:
                raise AdapterError("invalid", f"setpoint in {command.unit}, register in {reg.unit}") from exc
        async with self.link.lock:
            client = await self._ensure()
            await self._arm_revert(client)
            what = f"write setpoint@{reg.table}:{reg.address}"
            if reg.table == "coil":
                await self._call(what, client.write_coil, reg.address, value >= 0.5)
            else:
                try:  # a power rounds toward zero in the register, so it stays within the clamped limits
                    words = encode_toward_zero(reg, value) if is_power(reg) else encode(reg, value)
                except ValueError as exc:
                    raise AdapterError("invalid", str(exc)) from exc
                if len(words) == 1:
                    await self._call(what, client.write_register, reg.address, words[0])
                else:
                    await self._call(what, client.write_registers, reg.address, words)
            echoed = await self._read_register(client, "setpoint", reg)
        want = (1.0 if value >= 0.5 else 0.0) if is_bit(reg) else value
        if abs(echoed - want) > step(reg) / 2 + 1e-6 * max(1.0, abs(want)):
            return "unconfirmed", f"wrote {want:g} but read back {echoed:g}"
        return "confirmed", ""

    async def _read(self) -> Telemetry:
        data: dict[str, float | bool] = {}
        extra: dict[str, float] = {}
        async with self.link.lock:
            client = await self._ensure()
            for name, reg in self.endpoint.registers.items():
                value = await self._read_register(client, name, reg)
                if name == "setpoint":
                    if self.limits is not None and self.limits.unit in ("kW", "W") and is_power(reg):
                        value = convert(from_register(reg, value), "kW", self.limits.unit)
                    elif reg.unit and self.limits is not None:
                        with contextlib.suppress(ValueError):  # e.g. a degC register with on_off limits
                            value = convert(value, reg.unit, self.limits.unit)
                    data["setpoint"] = value
                    continue
                target = field_of(name)
                if target is None:
                    extra[name] = value
                elif target in BOOL_FIELDS:
                    data[target] = value != 0
                elif reg.unit == "%" and reg.percent_of_kw is not None:
                    data[target] = from_register(reg, value)
                else:
                    data[target] = value * _TO_K.get(reg.unit, 1.0) * (-1.0 if reg.power_sign == "generator" else 1.0)
        return Telemetry(asset_id=self.asset_id, at=utcnow(), connected=True, extra=extra, **data)
