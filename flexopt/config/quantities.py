"""Numbers and times as portfolio files may state them: strict, finite and within a physical range.

pydantic on its own turns ``true`` into 1, ``"5"`` into 5.0, accepts NaN and infinity, and reads an integer as a
time of day (seconds). Each of those has produced a silent wrong schedule or a solver that never returns, so
every number field of a portfolio uses one of the types below. Each type states its range once; the range shows in
the JSON Schema (``flexopt schema``) and in the error message, with the fix.

:data:`UNIT_RANGES` gives the same ranges for values read from data files, per canonical unit.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

# The largest rating flexopt plans for: 1 GW (one utility-scale plant or a large fleet in one entry).
MAX_POWER_KW = 1e6
RANGE_KEY = "x-range"
"""Schema keyword holding the range in words; flexopt.config.schema moves it into the field's description."""


class Yaml11Number:
    """A plain YAML scalar that YAML 1.1 reads as a number the writer rarely means: base 60 (``18:00`` is
    1080) or octal (``010`` is 8). The loader keeps the text so that the error can show what was written."""

    __slots__ = ("text", "value")

    def __init__(self, text: str, value: float) -> None:
        self.text, self.value = text, value

    def __repr__(self) -> str:
        return f"{self.text} (read by YAML 1.1 as {self.value:g})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Yaml11Number) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if 1e4 <= abs(x) < 1e9 and float(x).is_integer() else f"{x:g}"


def _range_text(lo: float, hi: float, lo_open: bool, unit: str) -> str:
    unit_text = f" {unit}" if unit else ""
    low = f"above {_fmt(lo)}" if lo_open else f"at least {_fmt(lo)}"
    return f"{low} and at most {_fmt(hi)}{unit_text}"


def _not_a_number(value: Any, what: str) -> PydanticCustomError:
    if isinstance(value, Yaml11Number):
        return PydanticCustomError(
            "flexopt_yaml11", "{got}: write the number in plain decimal, e.g. 90 or 1.5",
            {"got": repr(value)})
    if isinstance(value, bool):
        return PydanticCustomError(
            "flexopt_bool", "must be {what}, not true/false (got {got}); YAML reads unquoted yes/no/on/off/true/false "
            "as booleans", {"what": what, "got": repr(value)})
    if value is None:
        return PydanticCustomError("flexopt_null", "must be {what} (got null); give a value, or remove the key to use "
                                   "the default", {"what": what})
    if isinstance(value, str):
        return PydanticCustomError(
            "flexopt_text", "must be {what}, not text (got {got}); write the bare number without quotes or unit "
            "(the field name carries the unit)", {"what": what, "got": repr(value)})
    return PydanticCustomError("flexopt_type", "must be {what} (got {got})", {"what": what, "got": repr(value)})


def number(lo: float, hi: float, unit: str = "", *, lo_open: bool = False, nonzero: bool = False) -> Any:
    """A float field: a real number (int or float, never bool or text), finite, in [lo, hi] ((lo, hi] with
    ``lo_open``). The range goes into the schema and the message."""
    allowed = _range_text(lo, hi, lo_open, unit) + (", not 0" if nonzero else "")

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _not_a_number(value, "a number")
        x = float(value)
        if not math.isfinite(x):
            raise PydanticCustomError(
                "flexopt_not_finite", "must be a finite number {allowed} (got {got}); .nan and .inf are not values",
                {"allowed": allowed, "got": repr(value)})
        if x < lo or (lo_open and x == lo) or x > hi or (nonzero and x == 0):
            raise PydanticCustomError(
                "flexopt_range", "must be {allowed} (got {got}); check the value and its unit",
                {"allowed": allowed, "got": _fmt(x)})
        return x

    schema: dict[str, Any] = {"type": "number", "maximum": hi, RANGE_KEY: allowed}
    schema["exclusiveMinimum" if lo_open else "minimum"] = lo
    return Annotated[float, BeforeValidator(check), WithJsonSchema(schema)]


def integer(lo: int, hi: int) -> Any:
    """An int field: a whole number (never bool, text or a fraction) in [lo, hi]."""

    def check(value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _not_a_number(value, "a whole number")
        if not lo <= value <= hi:
            raise PydanticCustomError("flexopt_range", "must be a whole number from {lo} to {hi} (got {got})",
                                      {"lo": _fmt(lo), "hi": _fmt(hi), "got": _fmt(value)})
        return value

    schema = {"type": "integer", "minimum": lo, "maximum": hi,
              RANGE_KEY: f"a whole number from {_fmt(lo)} to {_fmt(hi)}"}
    return Annotated[int, BeforeValidator(check), WithJsonSchema(schema)]


def _time_of_day(value: Any) -> Any:
    """pydantic reads an int as seconds after midnight; YAML 1.1 reads an unquoted 18:00 as 1080."""
    if isinstance(value, Yaml11Number):
        text = value.text
        raise PydanticCustomError(
            "flexopt_time_unquoted", "YAML reads the unquoted time {text} as the number {value}; quote the time: "
            "\"{text}\"", {"text": text, "value": _fmt(value.value)})
    if isinstance(value, bool | int | float):
        raise PydanticCustomError(
            "flexopt_time_number", "must be a time of day in quotes, e.g. \"18:00\", not a number (got {got}); "
            "an unquoted 18:00 is read by YAML as the number 1080", {"got": repr(value)})
    return value


def _local(value: dt.time) -> dt.time:
    if value.tzinfo is not None:
        raise PydanticCustomError("flexopt_time_offset", "is a local wall-clock time: leave the UTC offset away "
                                  "(got {got})", {"got": value.isoformat()})
    return value


LocalTime = Annotated[dt.time, BeforeValidator(_time_of_day), AfterValidator(_local)]
"""A local wall-clock time of day, written in quotes: "18:00" or "18:00:30"."""

# --- the quantities of a portfolio (one place for every range) ------------------------------------------------

PowerKw = number(0, MAX_POWER_KW, "kW (1 GW)", lo_open=True)
"""A rating: above 0, at most 1 GW."""
LimitKw = number(0, MAX_POWER_KW, "kW (1 GW)")
"""A limit that may be 0 (e.g. no export allowed)."""
SignedPowerKw = number(-MAX_POWER_KW, MAX_POWER_KW, "kW (1 GW)")
"""A power that may be negative (load convention)."""
EnergyKwh = number(0, 1e7, "kWh (10 GWh)", lo_open=True)
"""Stored energy of one unit: above 0, at most 10 GWh."""
VehicleEnergyKwh = number(0, 2000, "kWh", lo_open=True)
"""Energy of one vehicle's battery or session: above 0, at most 2 MWh (a heavy truck)."""
PriceEurPerKwh = number(-10, 10, "EUR/kWh")
"""An energy price: -10 to 10 EUR/kWh (market caps are about -0.5 and 4 EUR/kWh); a price in EUR/MWh is 1000x."""
FeeEurPerKwh = number(0, 10, "EUR/kWh")
PeakChargeEurPerKw = number(0, 1000, "EUR/kW")
PenaltyEur = number(0, 1000, "EUR per unit", lo_open=True)
"""A soft-constraint price: above 0, at most 1000 (larger ones only hurt the solver's numerics)."""
DegradationEurPerKwh = number(0, 10, "EUR/kWh")
Scale = number(-1000, 1000)
"""A multiplier of a series, after unit conversion."""
Percent = number(0, 100, "%")
Quantile = number(0.5, 0.99)
"""A forecast quantile planned against: from the median (0.5) to 0.99."""
Efficiency = number(0, 1, lo_open=True)
"""A share: above 0, at most 1."""
Cop = number(0, 10, lo_open=True)
"""A coefficient of performance: above 0, at most 10."""
TemperatureC = number(-60, 120, "degC")
"""Air or zone temperature: -60 to 120 degC (cold stores to saunas)."""
WaterTemperatureC = number(0, 100, "degC")
"""Liquid water in a tank: 0 to 100 degC."""
ResistanceKPerKw = number(0, 1000, "K/kW", lo_open=True)
CapacitanceKwhPerK = number(0, 1e6, "kWh/K", lo_open=True)
VolumeL = number(0, 1e5, "l", lo_open=True)
LossWPerK = number(0, 1e4, "W/K")
VoltageV = number(0, 1500, "V", lo_open=True)
CurrentA = number(0, 1000, "A")
Latitude = number(-90, 90, "degrees")
Longitude = number(-180, 180, "degrees")
Count = integer(1, 100_000)
"""Identical devices in one entry."""

# --- values read from data files, per canonical unit (flexopt.data.timeseries) ----------------------------------------

UNIT_RANGES: dict[str, tuple[float, float]] = {
    "kW": (-MAX_POWER_KW, MAX_POWER_KW),
    "EUR/kWh": (-10.0, 10.0),
    "degC": (-60.0, 120.0),
    "W/m2": (0.0, 1500.0),
    "%": (0.0, 100.0),
    "1": (-1e6, 1e6),
}
"""Physical range of a data-file value after conversion to its canonical unit."""
