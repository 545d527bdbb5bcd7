"""Protocols as plug-ins: a protocol is its endpoint class, its adapter and its simulator, registered once.

Validation (the ``endpoint`` union, its tags and errors), the JSON schema, device addressing, the adapter factory,
``flexopt simulate`` and ``flexopt dispatch`` all read this registry; none of them names a protocol. The built-in
protocols register in :mod:`flexopt.config.endpoints`; other distributions through the entry-point group
``flexopt.plugins`` (:func:`flexopt.config.plugins.load_plugins`); tests call :func:`register` themselves.

Configuration never imports adapters, so a spec may name its adapter, simulator and service as ``"module:attribute"``
text, imported on first use (:func:`resolve`), or give the objects themselves.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import typing
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Discriminator

PLUGIN_GROUP = "flexopt.plugins"
Ref = str | type | Callable[..., Any]  # an object, or "module:attribute" naming it


class ProtocolError(ValueError):
    """An unknown protocol, a spec that cannot be registered, or a plug-in that cannot be loaded."""


class EndpointBase(BaseModel):
    """How flexopt reaches one device of a protocol. A protocol's class narrows ``protocol`` to ``Literal["name"]``
    and says how the devices of a counted asset are addressed, so validation, dispatch and simulate agree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: str

    @abstractmethod
    def device(self, k: int) -> Self:
        """Device ``k`` (1..count) of an asset with ``count`` > 1: this endpoint at that device's own address."""

    @abstractmethod
    def address(self) -> tuple:
        """What must differ between two devices of this protocol (two devices at one address get each other's
        commands), e.g. ``(host, port, unit id)``."""

    @abstractmethod
    def label(self) -> str:
        """How an operator finds this device (charge point id, ``unit 12``)."""

    def address_problem(self) -> str | None:
        """Why this device's address is outside the protocol's range (``Modbus unit 250 (max 247)``), or None."""
        return None

    def device_unit(self) -> str:
        """The unit the device's setpoint is in: kW, degC for thermostats, on_off for relays, A for chargers."""
        return "kW"

    def secret_envs(self) -> dict[str, str]:
        """The environment variables this device's secrets come from, by field: every field ending in ``_env``
        that is set. Dispatch refuses to start while one is unset, and redacts every value from what it writes."""
        return {name: value for name in type(self).model_fields
                if name.endswith("_env") and isinstance(value := getattr(self, name), str) and value}

    def secret_users(self) -> tuple[str, ...]:
        """User names the secrets are sent with (HTTP Basic ``user:secret``), so that base64 of the pair is
        redacted too (an OCPP charge point's id)."""
        return ()

    def secret_bytes(self, field: str, value: str) -> bytes | None:
        """The bytes a secret goes out as when they are not its UTF-8 text (a hex-encoded key), else None."""
        return None

    def secret_problem(self, field: str, value: str) -> str | None:
        """Why a set secret cannot be used (``not hex``), never quoting it; None when it can."""
        return None


@dataclass(frozen=True)
class Protocol:
    """Everything flexopt needs to know about one protocol, registered once with :func:`register`.

    ``adapter``: a :class:`flexopt.adapters.base.DeviceAdapter` subclass; dispatch builds one per device with its
    ``for_endpoint`` class method. ``simulator``: a :class:`flexopt.adapters.sim.base.ProtocolSimulator` subclass,
    one per ``flexopt simulate`` run. ``service``: optional, a callable ``(portfolio) -> SessionService`` for a
    server the devices connect to, which dispatch runs for as long as it runs (OCPP's central system).
    ``stores_profiles``: the devices keep a schedule, so dispatch sends the rest of the run as periods.
    """

    name: str
    endpoint: type[EndpointBase]
    adapter: Ref
    simulator: Ref
    service: Ref | None = None
    stores_profiles: bool = False


_REGISTRY: dict[str, Protocol] = {}


def register(spec: Protocol) -> Protocol:
    """Make a protocol known to validation, the schema, dispatch and simulate. The same spec again is a no-op;
    another spec under a registered name is an error (unregister the old one first)."""
    if _REGISTRY.get(spec.name) == spec:
        return spec
    if spec.name in _REGISTRY:
        raise ProtocolError(f"protocol {spec.name!r} is registered already; unregister it first")
    if not (isinstance(spec.endpoint, type) and issubclass(spec.endpoint, EndpointBase)):
        raise ProtocolError(f"protocol {spec.name!r}: endpoint must be a subclass of EndpointBase")
    field = spec.endpoint.model_fields.get("protocol")
    if field is None or typing.get_args(field.annotation) != (spec.name,):
        raise ProtocolError(f"protocol {spec.name!r}: {spec.endpoint.__name__}.protocol must be "
                            f"Literal[{spec.name!r}] (it is the tag a portfolio writes)")
    if spec.adapter is None or spec.simulator is None:
        raise ProtocolError(f"protocol {spec.name!r}: needs an adapter and a simulator")
    before = _endpoint_classes()
    _REGISTRY[spec.name] = spec
    _rebuild_models(before | _endpoint_classes())
    return spec


def unregister(name: str) -> None:
    """Forget a protocol (tests that register their own clean up with this)."""
    before = _endpoint_classes()
    del _REGISTRY[protocol(name).name]
    _rebuild_models(before)


def registered() -> dict[str, Protocol]:
    """Every registered protocol by name, in registration order."""
    return dict(_REGISTRY)


def protocol(name: str) -> Protocol:
    """The protocol registered under ``name``; an unknown name is a :class:`ProtocolError` naming the known ones."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ProtocolError(f"unknown protocol {name!r}{hint}; registered: {', '.join(_REGISTRY) or 'none'}")


def protocol_of(endpoint: object) -> Protocol:
    """The protocol of an endpoint object: its ``protocol`` must be registered, with this very endpoint class."""
    spec = protocol(getattr(endpoint, "protocol", type(endpoint).__name__))
    if not isinstance(endpoint, spec.endpoint):
        raise ProtocolError(f"{type(endpoint).__name__} is not the endpoint class of protocol {spec.name!r} "
                            f"({spec.endpoint.__name__})")
    return spec


def resolve(ref: Ref) -> Any:
    """The object a spec names: itself, or ``"module:attribute.attribute"`` imported now."""
    if not isinstance(ref, str):
        return ref
    module, _, attribute = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attribute.split(".") if attribute else ():
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ProtocolError(f"cannot load {ref!r}: {type(exc).__name__}: {exc}") from exc
    return obj


class Endpoint:
    """The type of an asset's ``endpoint``: the union of every registered protocol's endpoint class, told apart by
    ``protocol``. Pydantic asks for it whenever it builds a model that uses it, so :func:`register` only has to
    rebuild those models; the loader asks :meth:`union` to list a protocol's keys."""

    @classmethod
    def union(cls) -> Any:
        classes = tuple(_endpoint_classes_ordered())
        if not classes:
            raise ProtocolError("no protocol is registered")
        if len(classes) == 1:
            return classes[0]
        return Annotated[typing.Union[classes], Discriminator("protocol")]  # noqa: UP007 - built from a tuple

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        return handler.generate_schema(cls.union())


# --- plug-ins from other distributions -------------------------------------------------------



# --- keeping pydantic's models in step with the registry --------------------------------------


def _endpoint_classes_ordered() -> list[type[EndpointBase]]:
    return [spec.endpoint for spec in _REGISTRY.values()]


def _endpoint_classes() -> set[type]:
    return set(_endpoint_classes_ordered())


def _all_models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    stack = list(BaseModel.__subclasses__())
    while stack:
        model = stack.pop()
        if model not in found:
            found.append(model)
            stack.extend(model.__subclasses__())
    return found


def _classes_in(schema: object) -> set[type]:
    """Every model class a pydantic core schema validates somewhere inside."""
    found: set[type] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("cls"), type):
                found.add(node["cls"])
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return found


def _rebuild_models(endpoint_classes: set[type]) -> None:
    """Rebuild every model whose validator holds the endpoint union (assets, sites, the portfolio): pydantic built
    them with the union of the time. Inner models first, so outer ones take up their new validators."""
    inside = {m: _classes_in(m.__dict__.get("__pydantic_core_schema__")) for m in _all_models()
              if m not in endpoint_classes}
    users = {m for m, classes in inside.items() if classes & endpoint_classes}
    for model in sorted(users, key=lambda m: len(inside[m] & users)):
        model.model_rebuild(force=True)
