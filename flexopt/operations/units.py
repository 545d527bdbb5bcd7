"""The schedule's rows for one interval as setpoints, in the unit each device takes."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from flexopt.adapters.base import DeviceAdapter, Setpoint, SetpointPeriod
from flexopt.config.protocols import protocol_of
from flexopt.operations.schedules import ScheduleRun, rows_at

_UNIT_ALIASES = {"1": "on_off"}


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def to_device_unit(value: float, unit: str, asset: Any, adapter: DeviceAdapter) -> tuple[float, str]:
    """The schedule's value in the unit the device takes where the asset type knows a physical conversion
    (``convert_setpoint``: kW <-> A for chargers, kW <-> on/off for water heater elements); otherwise unchanged,
    and the adapter reports a unit mismatch as ``invalid``."""
    unit = _UNIT_ALIASES.get(unit, unit)
    want = adapter.limits.unit if adapter.limits is not None else unit
    if unit == want or {unit, want} <= {"kW", "W"}:
        return value, unit
    converted = asset.convert_setpoint(value, unit, want) if asset is not None else None
    return (value, unit) if converted is None else (converted, want)


def build_setpoints(
    schedule: ScheduleRun, at: dt.datetime, assets: Mapping[str, Any], adapters: Mapping[str, DeviceAdapter]
) -> tuple[list[Setpoint], dict[str, dict[str, Any]]]:
    """Setpoints for every scheduled asset with an adapter, and per asset what the schedule said (rows with
    a NaN setpoint are not sent: ``skipped`` says why)."""
    now_rows = rows_at(schedule.frame, at)
    setpoints: list[Setpoint] = []
    planned: dict[str, dict[str, Any]] = {}
    for row in now_rows.itertuples(index=False):
        adapter = adapters.get(row.asset_id)
        if adapter is None:
            continue
        start, end = row.interval_start.to_pydatetime(), row.interval_end.to_pydatetime()
        entry: dict[str, Any] = {
            "asset_type": row.asset_type, "site_id": row.site_id, "scheduled_power_kw": row.power_kw,
            "baseline_kw": row.baseline_kw, "schedule_setpoint": row.setpoint, "schedule_setpoint_unit":
            row.setpoint_unit, "state": row.state, "state_unit": row.state_unit, "skipped": None,
        }
        planned[row.asset_id] = entry
        if not _finite(row.setpoint):
            entry["skipped"] = "no setpoint in the schedule for this interval"
            continue
        asset = assets.get(row.asset_id)
        value, unit = to_device_unit(float(row.setpoint), str(row.setpoint_unit), asset, adapter)
        periods: tuple[SetpointPeriod, ...] = ()
        until = end
        endpoint = getattr(asset, "endpoint", None)
        if endpoint is not None and protocol_of(endpoint).stores_profiles:  # e.g. OCPP charging profiles
            rest = schedule.frame[(schedule.frame["asset_id"] == row.asset_id)
                                  & (schedule.frame["interval_start"] >= row.interval_start)]
            rest = rest.sort_values("interval_start")
            periods = tuple(
                SetpointPeriod(r.interval_start.to_pydatetime(),
                               to_device_unit(float(r.setpoint), str(r.setpoint_unit), asset, adapter)[0])
                for r in rest.itertuples(index=False) if _finite(r.setpoint)
            )
            until = rest["interval_end"].max().to_pydatetime()
            entry["profile_periods"] = len(periods)
            entry["profile_until"] = until
        setpoints.append(Setpoint(row.asset_id, value=value, unit=unit, valid_from=start,  # type: ignore[arg-type]
                                  valid_until=until, periods=periods))
    for asset_id in adapters:
        if asset_id not in planned:
            planned[asset_id] = {"skipped": "not in the schedule at this time"}
    return setpoints, planned
