"""One dispatch round: send the interval's setpoints, let the devices settle, read them back, compare with the
schedule and turn every failure into an alarm; the JSON-ready audit record of it. Never raises for a device."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from flexopt.adapters.alarms import Alarm, alarms_from_results, alarms_from_telemetry
from flexopt.adapters.base import CommandResult, DeviceAdapter, utcnow
from flexopt.adapters.clock import current as current_clock
from flexopt.adapters.factory import setpoint_kind
from flexopt.adapters.fanout import read_all, send_all
from flexopt.adapters.group import GroupAdapter
from flexopt.operations.schedules import ScheduleRun, rows_at
from flexopt.operations.units import _finite, build_setpoints
from flexopt.runs.files import jsonable
from flexopt.version import __version__


def deviation_alarm(asset_id: str, kind: str, scheduled_kw: float, measured_kw: float, tolerance_kw: float,
                    tolerance_pct: float, at: dt.datetime) -> tuple[float, Alarm | None]:
    """Measured minus scheduled power, and a warning when it is beyond max(tolerance_kw, tolerance_pct %).
    Ceilings count one way only, as in ``alarms_from_telemetry``: a charger may draw less (a full car), a PV
    array may feed in less (clouds)."""
    deviation = measured_kw - scheduled_kw
    allowed = max(tolerance_kw, abs(scheduled_kw) * tolerance_pct / 100.0)
    excess = {"import_ceiling": deviation, "export_ceiling": -deviation}.get(kind, abs(deviation))
    if excess <= allowed:
        return deviation, None
    return deviation, Alarm("warning", asset_id, "deviation",
                            f"measured {measured_kw:.2f} kW vs scheduled {scheduled_kw:.2f} kW "
                            f"({kind}, tolerance {allowed:.2f} kW)", at)


def site_meter_load_kw(meter_id: str, telemetry: Mapping[str, Any], planned: Mapping[str, dict]) -> float | None:
    """What a site meter (a load with ``meter: site``) says of the load flexopt does not control: its reading less
    every other asset of its site read in the same round; None when one of them gave no power."""
    site = planned.get(meter_id, {}).get("site_id")
    meter = telemetry[meter_id]
    others = [a for a, entry in planned.items() if a != meter_id and entry.get("site_id") == site]
    readings = [meter, *(telemetry.get(a) for a in others)]
    if site is None or any(r is None or not r.connected or r.active_power_kw is None for r in readings):
        return None
    return meter.active_power_kw - sum(r.active_power_kw for r in readings[1:])


@dataclass
class RoundOptions:
    settle_s: float = 5.0
    timeout_s: float | None = None  # per asset; default: the slowest adapter's own bound + 2 s
    tolerance_kw: float = 1.0
    tolerance_pct: float = 10.0


def _result(r: CommandResult, name: str | None = None) -> dict[str, Any]:
    d = asdict(r)
    if name is not None:
        d["device"] = name
    return d


async def run_round(
    adapters: Mapping[str, DeviceAdapter],
    schedule: ScheduleRun | None,
    at: dt.datetime,
    assets: Mapping[str, Any],
    options: RoundOptions | None = None,
    extra_alarms: list[Alarm] | None = None,
) -> dict[str, Any]:
    """Send, settle, read, compare; the audit record of the round (JSON-ready). Never raises for a device.
    Without a schedule nothing is sent, the devices are still read, and the round is a ``no_schedule`` alarm."""
    options = options or RoundOptions()
    started = utcnow()
    alarms = list(extra_alarms or [])
    if schedule is None:
        setpoints, planned = [], {}
        alarms.append(Alarm("critical", "*", "no_schedule", f"no schedule covers {jsonable(at)}: nothing was sent"))
    else:
        setpoints, planned = build_setpoints(schedule, at, assets, adapters)
    timeout_s = options.timeout_s or max((a.call_timeout_s for a in adapters.values()), default=10.0) + 2.0
    results = await send_all(adapters, setpoints, timeout_s=timeout_s)
    by_asset = {r.asset_id: r for r in results}
    group_results = {a: list(ad.last_results) for a, ad in adapters.items()
                     if isinstance(ad, GroupAdapter) and a in by_asset}
    await current_clock().sleep(options.settle_s)  # on a replay's clock the devices settle in simulated time
    telemetry = await read_all(adapters, timeout_s=timeout_s)
    alarms += alarms_from_results(results)
    alarms += alarms_from_telemetry(telemetry.values())  # unreachable, unavailable, bad data (no targets)
    for asset_id, adapter in adapters.items():  # what no result shows, e.g. a client process that died
        alarms += [Alarm(e.severity, asset_id, e.kind, e.reason, e.at) for e in adapter.take_events()]
    kinds = {a: setpoint_kind(assets[a]) for a in adapters if a in assets}
    record_assets: dict[str, Any] = {}
    for asset_id, adapter in adapters.items():
        entry = dict(planned.get(asset_id, {}))
        entry["devices"] = adapter.count if isinstance(adapter, GroupAdapter) else 1
        entry["setpoint_kind"] = kinds.get(asset_id, "exact")
        result = by_asset.get(asset_id)
        entry["command"] = _result(result) if result is not None else None
        if asset_id in group_results:
            entry["device_results"] = [_result(r, n) for r, n in zip(group_results[asset_id], adapter.devices,
                                                                       strict=True)]
        t = telemetry[asset_id]
        entry["telemetry"] = asdict(t)
        if isinstance(adapter, GroupAdapter):
            entry["device_telemetry"] = [asdict(x) | {"device": n}
                                         for x, n in zip(adapter.last_telemetry, adapter.devices, strict=True)]
        scheduled = entry.get("scheduled_power_kw")
        entry["deviation_kw"] = None
        measured_kw = t.active_power_kw if t.connected else None
        if getattr(assets.get(asset_id), "meter", None) == "site":  # compare what the forecast was of
            measured_kw = entry["measured_load_kw"] = site_meter_load_kw(asset_id, telemetry, planned)
        if measured_kw is not None and _finite(scheduled):
            deviation, alarm = deviation_alarm(asset_id, entry["setpoint_kind"], float(scheduled),
                                               measured_kw, options.tolerance_kw, options.tolerance_pct, t.at)
            entry["deviation_kw"] = deviation
            if alarm is not None:
                alarms.append(alarm)
        if schedule is not None and entry.get("skipped") == "not in the schedule at this time":
            alarms.append(Alarm("warning", asset_id, "not_scheduled",
                                f"schedule {schedule.version} has no row for it at {jsonable(at)}"))
        record_assets[asset_id] = entry
    interval = rows_at(schedule.frame, at) if schedule is not None else pd.DataFrame(
        columns=["interval_start", "interval_end"])
    summary = {
        "assets": len(adapters),
        "sent": len(results),
        "confirmed": sum(r.ok for r in results),
        "failed": sum(not r.ok for r in results),
        "clamped": sum(r.clamped for r in results),
        "skipped": sum(1 for e in record_assets.values() if e.get("skipped")),
        "alarms_critical": sum(a.severity == "critical" for a in alarms),
        "alarms_warning": sum(a.severity == "warning" for a in alarms),
    }
    return jsonable({
        "flexopt_version": __version__,
        "at": at,
        "interval_start": interval["interval_start"].min() if len(interval) else None,
        "interval_end": interval["interval_end"].max() if len(interval) else None,
        "started_utc": started,
        "finished_utc": utcnow(),
        "settle_s": options.settle_s,
        "schedule": schedule.describe() if schedule is not None else None,
        "summary": summary,
        "assets": record_assets,
        "alarms": [asdict(a) for a in alarms],
    })
