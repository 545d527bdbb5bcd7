"""The registry of asset types: type name -> portfolio class, and what a type declares about itself.

An asset type is its portfolio class (registered here with :func:`register_asset_type`), its formulation
(``flexopt.models.registry.register``) and its independent physics check (``flexopt.check.registry``). Everything
else -- setpoint limits, units and kind, rated power, storage, intraday states -- comes from methods of the class,
so no other module switches on type names. The portfolio's ``Site.assets`` union is derived from this registry and
rebuilt when a type registers after import (a plug-in), so validation, error messages and ``flexopt schema`` know
every type.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, Union

from pydantic import BaseModel, Field

__all__ = ["ASSET_TYPES", "RECORD_FIELDS", "SetpointKind", "SetpointRange", "StateNotMeasured", "StateSpec",
           "asset_union", "measured_mean", "on_asset_type_registered", "register_asset_type"]

# how measured power compares with a setpoint: equal, at most (a charger: the car may take less), at most this
# export (curtailable PV: clouds may give less)
SetpointKind = Literal["exact", "import_ceiling", "export_ceiling"]


@dataclass(frozen=True)
class StateSpec:
    """One state an asset carries from interval to interval (SoC, a temperature): the key of ``--state`` files,
    ``run.json`` ``initial_state`` and ``states.parquet``, its unit there, and the physical range a measured value
    must lie in."""

    key: str
    unit: str
    low: float
    high: float
    description: str = ""
    per_device: bool = False  # ``high`` is per device: the asset's limit is high x count (cars plugged in)
    whole: bool = False  # a count: whole numbers only

    def bounds(self, count: int = 1) -> tuple[float, float]:
        """The range a value of an asset with ``count`` devices must lie in."""
        return self.low, self.high * count if self.per_device else self.high

    def problem(self, value: object, count: int = 1, bounds: tuple[float, float] | None = None) -> str | None:
        """Why ``value`` cannot be this state of an asset with ``count`` devices (None: it can); ``bounds`` where
        the asset narrows or widens the type's range (its ``state_bounds``)."""
        low, high = bounds or self.bounds(count)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if not low <= value <= high:
            return f"{value:g} {self.unit} is outside {low:g}..{high:g} {self.unit}"
        if self.whole and value != int(value):
            return f"{value:g} is not a whole number"
        return None


# what run.json's initial_state holds beside an asset's states: no type may declare a state of these names
RECORD_FIELDS = ("source", "at", "reason", "run", "devices")


class StateNotMeasured(ValueError):
    """Raised by an asset type's ``state_from_readings`` when the readings do not give its states; the message
    says why (it goes into run.json's ``initial_state`` as the reason the asset fell back)."""


def measured_mean(readings: Sequence[object], name: str) -> float:
    """The mean of a measured value over the readings (one per device), from the reading's field ``name`` or, for
    values no field holds (a plug-in's), its ``extra`` entry; StateNotMeasured naming the first device without it."""
    values = []
    for reading in readings:
        value = getattr(reading, name, None)
        if value is None:
            value = (getattr(reading, "extra", None) or {}).get(name)
        if value is None:
            device = getattr(reading, "device", None)
            raise StateNotMeasured(f"{'device ' + device if device else 'the device'} reports no {name}")
        values.append(float(value))
    if not values:
        raise StateNotMeasured("no reading")
    return math.fsum(values) / len(values)


class SetpointRange(NamedTuple):
    """What one device accepts, in the unit its endpoint takes; setpoints are clamped into it before they leave."""

    min_value: float
    max_value: float
    unit: str


# type name -> portfolio class, in registration order (the built-in types first). Register with the decorator.
ASSET_TYPES: dict[str, type[BaseModel]] = {}
_rebuilders: list[Callable[[], None]] = []


def type_name(cls: type[BaseModel]) -> str:
    """The value of the class's ``type: Literal["..."]`` field, the tag that picks it in a portfolio."""
    field = cls.model_fields.get("type")
    values = typing.get_args(field.annotation) if field is not None else ()
    if field is None or typing.get_origin(field.annotation) is not Literal or len(values) != 1:
        raise TypeError(f"{cls.__name__}: an asset type needs a field `type: Literal[\"name\"]` with one name")
    return str(values[0])


def register_asset_type(cls: type[BaseModel]) -> type[BaseModel]:
    """Class decorator: make ``cls`` a portfolio asset type under its ``type`` tag (once per name)."""
    name = type_name(cls)
    clash = sorted({spec.key for spec in getattr(cls, "states", ())} & set(RECORD_FIELDS))
    if clash:
        raise ValueError(f"asset type {name!r}: state key(s) {', '.join(clash)} are fields of run.json's "
                         "initial_state records; name the state otherwise")
    known = ASSET_TYPES.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"asset type {name!r} registered twice ({known.__name__}, {cls.__name__})")
    ASSET_TYPES[name] = cls
    for rebuild in _rebuilders:
        rebuild()
    return cls


def asset_union() -> Any:
    """The discriminated union of every registered asset type (what ``Site.assets`` holds)."""
    return Annotated[Union[tuple(ASSET_TYPES.values())], Field(discriminator="type")]  # noqa: UP007 - built at run time


def on_asset_type_registered(rebuild: Callable[[], None]) -> Callable[[], None]:
    """Decorator for the function that rebuilds the models holding the union when a type registers later."""
    _rebuilders.append(rebuild)
    return rebuild
