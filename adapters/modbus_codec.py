"""Physical value <-> Modbus registers for one map entry: physical = raw * scale + offset.

Written with struct rather than the client's helpers so the simulator can use it without a client.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from flexopt.config.endpoints import ModbusRegister

_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}
_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


def is_bit(reg: ModbusRegister) -> bool:
    return reg.table in ("coil", "discrete")


def register_count(reg: ModbusRegister) -> int:
    """How many 16-bit registers (or bits) the value occupies."""
    if is_bit(reg):
        return 1
    return 2 if reg.data_type.endswith("32") else 1


def encode(reg: ModbusRegister, physical: float) -> list[int]:
    """Registers for a physical value; ValueError when it does not fit the data type."""
    raw = (physical - reg.offset) / reg.scale
    if reg.data_type != "float32":
        raw = round(raw)
        lo, hi = _RANGES[reg.data_type]
        if not lo <= raw <= hi:
            raise ValueError(f"{physical:g} is raw {raw}, outside {reg.data_type} [{lo}, {hi}]")
    data = struct.pack(_FORMATS[reg.data_type], raw)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words[::-1] if reg.word_order == "little" else words


def encode_toward_zero(reg: ModbusRegister, physical: float) -> list[int]:
    """Registers for a setpoint that carry no more than ``physical``: where the register cannot hold it exactly,
    its rounding goes toward zero, so a setpoint clamped to a rating is still within the rating as the device
    reads it (float32(7.4) is 7.4000001, which a strict device refuses as above its 7.4 kW)."""
    words = encode(reg, physical)
    if abs(decode(reg, words)) <= abs(physical):
        return words
    raw = (physical - reg.offset) / reg.scale
    if reg.data_type == "float32":
        smaller = np.nextafter(np.float32(raw), np.float32(0.0))  # the next float32 toward zero
        return encode(reg, float(smaller) * reg.scale + reg.offset)
    for candidate in (math.floor(raw), math.ceil(raw)):
        try:
            words = encode(reg, candidate * reg.scale + reg.offset)
        except ValueError:
            continue
        if abs(decode(reg, words)) <= abs(physical) + 1e-12:
            return words
    return encode(reg, physical)


def decode(reg: ModbusRegister, words: list[int]) -> float:
    """Physical value from the registers read at ``reg.address``."""
    words = list(words[: register_count(reg)])
    if reg.word_order == "little":
        words.reverse()
    data = b"".join(w.to_bytes(2, "big") for w in words)
    (raw,) = struct.unpack(_FORMATS[reg.data_type], data)
    return raw * reg.scale + reg.offset


POWER_UNITS = {"W": 0.001, "kW": 1.0, "MW": 1000.0}


def to_register(reg: ModbusRegister, value_kw: float) -> float:
    """A power in kW (load convention) as the register's physical value: its unit (W, kW, MW, or % of
    ``percent_of_kw``) and sign (``power_sign``). Other units pass through."""
    value = -value_kw if reg.power_sign == "generator" else value_kw
    if reg.unit == "%" and reg.percent_of_kw:
        return value / reg.percent_of_kw * 100.0
    return value / POWER_UNITS[reg.unit] if reg.unit in POWER_UNITS else value


def from_register(reg: ModbusRegister, value: float) -> float:
    """The inverse of :func:`to_register`: the register's physical value as kW, load convention."""
    if reg.unit == "%" and reg.percent_of_kw:
        value = value * reg.percent_of_kw / 100.0
    elif reg.unit in POWER_UNITS:
        value = value * POWER_UNITS[reg.unit]
    return -value if reg.power_sign == "generator" else value


def is_power(reg: ModbusRegister) -> bool:
    """A register that carries a power flexopt can convert (W, kW, MW or % of a kW)."""
    return reg.unit in POWER_UNITS or (reg.unit == "%" and reg.percent_of_kw is not None)


def step(reg: ModbusRegister) -> float:
    """The smallest change the register can carry, for read-back comparisons."""
    return 0.0 if reg.data_type == "float32" else abs(reg.scale)
