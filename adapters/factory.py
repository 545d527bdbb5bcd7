"""Build adapters from endpoints and portfolio assets.

An asset with ``count`` N is N devices (``flexopt.config.endpoints.device_endpoints``): one adapter per device,
each with per-device limits, behind a :class:`~flexopt.adapters.group.GroupAdapter` when N > 1.
"""

from __future__ import annotations

from typing import Any

from flexopt.adapters.base import DeviceAdapter, SetpointLimits
from flexopt.adapters.group import GroupAdapter
from flexopt.adapters.http_adapter import HttpAdapter
from flexopt.adapters.iec104_adapter import Iec104Adapter
from flexopt.adapters.modbus_adapter import ModbusAdapter
from flexopt.adapters.ocpp_adapter import OcppAdapter
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.config.endpoints import (  # noqa: F401 - address_problems is part of this module's API
    HttpEndpoint,
    Iec104Endpoint,
    ModbusEndpoint,
    OcppEndpoint,
    address_problems,
    device_endpoints,
    device_label,
    setpoint_unit,
)


def adapter_for(
    asset_id: str,
    endpoint: Iec104Endpoint | ModbusEndpoint | OcppEndpoint | HttpEndpoint,
    limits: SetpointLimits | None = None,
    *,
    central: CentralSystem | None = None,
    voltage_v: float = 230.0,
    phases: int = 3,
) -> DeviceAdapter:
    """The adapter for one endpoint. OCPP chargers need the shared ``central`` system;
    ``voltage_v``/``phases`` convert kW to A for chargers whose profiles are in amps."""
    if isinstance(endpoint, Iec104Endpoint):
        return Iec104Adapter(asset_id, endpoint, limits)
    if isinstance(endpoint, ModbusEndpoint):
        return ModbusAdapter(asset_id, endpoint, limits)
    if isinstance(endpoint, HttpEndpoint):
        return HttpAdapter(asset_id, endpoint, limits)
    if isinstance(endpoint, OcppEndpoint):
        if central is None:
            raise ValueError(f"{asset_id}: an OCPP endpoint needs the CentralSystem (central=...)")
        return OcppAdapter(asset_id, endpoint, limits, central, voltage_v=voltage_v, phases=phases)
    raise TypeError(f"{asset_id}: unsupported endpoint {type(endpoint).__name__}")


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


def adapter_for_asset(asset: Any, central: CentralSystem | None = None) -> DeviceAdapter | None:
    """The adapter of a portfolio asset: the plain adapter for one device, a GroupAdapter over one adapter
    per device (per-device limits) for ``count`` > 1; None without an endpoint."""
    if asset.endpoint is None:
        return None
    limits = limits_for(asset)
    extra = {"voltage_v": getattr(asset, "voltage_v", 230.0), "phases": getattr(asset, "phases", 3)}
    endpoints = device_endpoints(asset.endpoint, asset.count)
    if len(endpoints) == 1:
        return adapter_for(asset.id, endpoints[0], limits, central=central, **extra)
    labels = [device_label(e) for e in endpoints]
    children = [adapter_for(f"{asset.id}/{label}", e, limits, central=central, **extra)
                for label, e in zip(labels, endpoints, strict=True)]
    return GroupAdapter(asset.id, children, labels)


def adapters_for_portfolio(portfolio: Any, central: CentralSystem | None = None) -> dict[str, DeviceAdapter]:
    """One adapter per asset that has an endpoint, keyed by asset id (groups for counted assets)."""
    out: dict[str, DeviceAdapter] = {}
    for _site, asset in portfolio.assets():
        adapter = adapter_for_asset(asset, central)
        if adapter is not None:
            out[asset.id] = adapter
    return out
