"""Build adapters from endpoints and portfolio assets."""

from __future__ import annotations

from typing import Any

from flexopt.adapters.base import DeviceAdapter, SetpointLimits
from flexopt.adapters.http_adapter import HttpAdapter
from flexopt.adapters.iec104_adapter import Iec104Adapter
from flexopt.adapters.modbus_adapter import ModbusAdapter
from flexopt.adapters.ocpp_adapter import OcppAdapter
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.endpoints import HttpEndpoint, Iec104Endpoint, ModbusEndpoint, OcppEndpoint


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


def setpoint_unit(endpoint: Any) -> str:
    """The unit the device takes: degC for thermostats, on_off for relays, else kW."""
    if isinstance(endpoint, HttpEndpoint):
        return {"W": "kW"}.get(endpoint.setpoint_unit, endpoint.setpoint_unit)
    if isinstance(endpoint, ModbusEndpoint) and "setpoint" in endpoint.registers:
        reg = endpoint.registers["setpoint"]
        if reg.table == "coil":
            return "on_off"
        if reg.unit in ("degC", "on_off", "A"):
            return reg.unit
    return "kW"


def limits_for(asset: Any) -> SetpointLimits | None:
    """Setpoint limits of a portfolio asset (all of its ``count`` units together), in the unit its
    endpoint takes. PV setpoints are export ceilings (positive kW); batteries and EV chargers
    follow the load convention (negative = discharge)."""
    endpoint = getattr(asset, "endpoint", None)
    unit = setpoint_unit(endpoint) if endpoint is not None else "kW"
    n = getattr(asset, "count", 1)
    kind = getattr(asset, "type", "")
    if unit == "on_off":
        return SetpointLimits(0.0, 1.0, "on_off")
    if unit == "degC" and kind in ("climate", "heat_pump"):
        return SetpointLimits(asset.default_min_temp_c, asset.default_max_temp_c, "degC")
    if unit == "degC" and kind == "water_heater":
        return SetpointLimits(asset.min_temp_c, asset.max_temp_c, "degC")
    if kind == "battery":
        return SetpointLimits(-asset.max_discharge_kw * n, asset.max_charge_kw * n, "kW")
    if kind == "pv":
        return SetpointLimits(0.0, asset.peak_kw * n, "kW")
    if kind == "ev_charger":
        low = -asset.max_discharge_kw * n
        if unit == "A":
            per_unit_a = asset.max_charge_kw * 1000.0 / (asset.voltage_v * asset.phases)
            return SetpointLimits(0.0, per_unit_a, "A")
        return SetpointLimits(low, asset.max_charge_kw * n, "kW")
    if kind in ("climate", "heat_pump"):
        return SetpointLimits(0.0, asset.max_electric_kw * n, "kW")
    if kind == "water_heater":
        return SetpointLimits(0.0, asset.element_kw * n, "kW")
    return None


def setpoint_kind(asset: Any) -> str:
    """How a power setpoint compares with measured power (for alarms_from_telemetry)."""
    kind = getattr(asset, "type", "")
    if kind == "pv":
        return "export_ceiling"
    if kind == "ev_charger":
        return "import_ceiling"
    return "exact"


def adapters_for_portfolio(portfolio: Any, central: CentralSystem | None = None) -> dict[str, DeviceAdapter]:
    """One adapter per asset that has an endpoint, keyed by asset id."""
    out: dict[str, DeviceAdapter] = {}
    for _site, asset in portfolio.assets():
        if asset.endpoint is None:
            continue
        out[asset.id] = adapter_for(
            asset.id,
            asset.endpoint,
            limits_for(asset),
            central=central,
            voltage_v=getattr(asset, "voltage_v", 230.0),
            phases=getattr(asset, "phases", 3),
        )
    return out
