"""Build adapters from endpoints and portfolio assets, through the protocol registry (no protocol is named here).

An asset with ``count`` N is N devices (``flexopt.config.endpoints.device_endpoints``): one adapter per device,
each with per-device limits, behind a :class:`~flexopt.adapters.group.GroupAdapter` when N > 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flexopt.adapters.base import AdapterContext, DeviceAdapter, SetpointLimits
from flexopt.adapters.group import GroupAdapter
from flexopt.config.endpoints import (  # noqa: F401 - address_problems is part of this module's API
    address_problems,
    device_endpoints,
    device_label,
    setpoint_unit,
)
from flexopt.config.protocols import protocol_of, resolve


def adapter_for(asset_id: str, endpoint: Any, limits: SetpointLimits | None = None, *, service: Any = None,
                asset: Any = None) -> DeviceAdapter:
    """The adapter for one endpoint, built by its registered protocol's adapter class (``for_endpoint``).
    ``service`` is the protocol's session service (OCPP chargers need the CentralSystem); ``asset`` the
    portfolio asset (a charger's voltage and phases convert kW to A). An unknown protocol is a ProtocolError."""
    spec = protocol_of(endpoint)
    return resolve(spec.adapter).for_endpoint(asset_id, endpoint, limits, AdapterContext(service, asset))


def limits_for(asset: Any) -> SetpointLimits | None:
    """Setpoint limits of ONE of the asset's ``count`` devices (the schedule's ``setpoint`` is per device), in the
    unit its endpoint takes: a relay takes 0..1, anything else what the asset type says (``setpoint_limits``)."""
    endpoint = getattr(asset, "endpoint", None)
    unit = setpoint_unit(endpoint) if endpoint is not None else "kW"
    if unit == "on_off":
        return SetpointLimits(0.0, 1.0, "on_off")
    limits = asset.setpoint_limits(unit)
    return None if limits is None else SetpointLimits(limits.min_value, limits.max_value, limits.unit)


def setpoint_kind(asset: Any) -> str:
    """How a power setpoint compares with measured power (for alarms_from_telemetry): the asset type says."""
    return getattr(asset, "setpoint_kind", "exact")


def adapter_for_asset(asset: Any, services: Mapping[str, Any] | None = None) -> DeviceAdapter | None:
    """The adapter of a portfolio asset: the plain adapter for one device, a GroupAdapter over one adapter
    per device (per-device limits) for ``count`` > 1; None without an endpoint. ``services`` maps protocol
    names to their running session services (``{"ocpp": central_system}``)."""
    if asset.endpoint is None:
        return None
    limits = limits_for(asset)
    service = (services or {}).get(protocol_of(asset.endpoint).name)
    endpoints = device_endpoints(asset.endpoint, asset.count)
    if len(endpoints) == 1:
        return adapter_for(asset.id, endpoints[0], limits, service=service, asset=asset)
    labels = [device_label(e) for e in endpoints]
    children = [adapter_for(f"{asset.id}/{label}", e, limits, service=service, asset=asset)
                for label, e in zip(labels, endpoints, strict=True)]
    return GroupAdapter(asset.id, children, labels)


def adapters_for_portfolio(portfolio: Any, services: Mapping[str, Any] | None = None) -> dict[str, DeviceAdapter]:
    """One adapter per asset that has an endpoint, keyed by asset id (groups for counted assets)."""
    out: dict[str, DeviceAdapter] = {}
    for _site, asset in portfolio.assets():
        adapter = adapter_for_asset(asset, services)
        if adapter is not None:
            out[asset.id] = adapter
    return out
