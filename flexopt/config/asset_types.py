"""The registry of asset types: type name -> portfolio class, and what a type declares about itself.

An asset type is its portfolio class (registered here with :func:`register_asset_type`), its formulation
(``flexopt.models.registry.register``) and its independent physics check (``flexopt.check.registry``). Everything
else -- setpoint limits, units and kind, rated power, storage, intraday states -- comes from methods of the class,
so no other module switches on type names. The portfolio's ``Site.assets`` union is derived from this registry and
rebuilt when a type registers after import (a plug-in), so validation, error messages and ``flexopt schema`` know
every type.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, Union

from pydantic import BaseModel, Field

__all__ = ["ASSET_TYPES", "SetpointKind", "SetpointRange", "StateSpec", "asset_union", "on_asset_type_registered",
           "register_asset_type"]

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
