"""Round records shaped as ``flexopt.operations.round`` writes them, written with the real audit writer, for the
telemetry tests (the end-to-end test takes real ones from a real dispatch)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from flexopt.operations import dispatch_folder, write_round
from flexopt.runs.files import jsonable

PORTFOLIO = "tele-test"
DAY = dt.date(2024, 6, 25)
T0 = dt.datetime(2024, 6, 25, 12, 0, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=15)
FIELDS = ("available", "voltage_v", "active_power_kw", "reactive_power_kvar", "soc_pct", "temp_c", "ev_plugged",
          "ev_charging", "ev_energy_kwh", "setpoint")


def telemetry(asset_id: str, at: dt.datetime, **values: Any) -> dict[str, Any]:
    """A Telemetry as ``dataclasses.asdict`` gives it: every field, None unless given; connected and good."""
    base = {"asset_id": asset_id, "at": at, "connected": True, **dict.fromkeys(FIELDS), "quality": "good",
            "notes": "", "extra": {}}
    return base | values


def record(at: dt.datetime, *, bess: dict[str, Any] | None = None, ev_devices: list[dict[str, Any]] | None = None,
           alarms: int = 1, scheduled_kw: float = -20.0) -> dict[str, Any]:
    """A round of two assets: ``bess`` (one device) and ``ev`` (a group of two chargers, EV-1 and EV-2)."""
    start = T0 + ((at - T0) // STEP) * STEP
    bess_t = telemetry("bess", at, active_power_kw=-20.0, soc_pct=55.0, voltage_v=400.0, setpoint=-20.0) | (bess or {})
    devices = ev_devices if ev_devices is not None else [
        telemetry("ev/EV-1", at, active_power_kw=7.0, ev_plugged=True, ev_charging=True, ev_energy_kwh=3.5),
        telemetry("ev/EV-2", at, active_power_kw=0.0, ev_plugged=False, ev_charging=False, ev_energy_kwh=0.0),
    ]
    for device, name in zip(devices, ("EV-1", "EV-2"), strict=False):
        device["device"] = name
    up = [d for d in devices if d["connected"]]
    ev_t = telemetry("ev", at, active_power_kw=sum(d["active_power_kw"] or 0.0 for d in up),
                     ev_plugged=any(d["ev_plugged"] for d in up), extra={"devices": 2.0, "devices_answering":
                                                                          float(len(up))})
    command = {"asset_id": "bess", "ok": True, "status": "confirmed", "requested": -20.0, "sent": -20.0, "unit": "kW",
               "clamped": False, "reason": "", "latency_ms": 3.0, "at": at}
    alarm_list = [{"severity": "warning", "asset_id": "ev", "kind": "deviation", "reason": f"test alarm {i}",
                   "at": at} for i in range(alarms)]
    return jsonable({
        "flexopt_version": "0.1.0", "at": at, "interval_start": start, "interval_end": start + STEP,
        "started_utc": at, "finished_utc": at + dt.timedelta(seconds=2), "settle_s": 0.5,
        "schedule": {"path": "runs/tele-test/2024-06-25/day-ahead/v001", "version": "v001", "kind": "day-ahead",
                     "date": "2024-06-25", "created_utc": None},
        "summary": {"assets": 2, "sent": 2, "confirmed": 2, "failed": 0, "clamped": 0, "skipped": 0,
                    "alarms_critical": 0, "alarms_warning": alarms},
        "assets": {
            "bess": {"asset_type": "battery", "site_id": "site1", "devices": 1, "setpoint_kind": "exact",
                     "scheduled_power_kw": scheduled_kw, "command": command, "telemetry": bess_t,
                     "deviation_kw": bess_t["active_power_kw"] - scheduled_kw
                     if bess_t["active_power_kw"] is not None else None},
            "ev": {"asset_type": "ev_charger", "site_id": "site1", "devices": 2, "setpoint_kind": "import_ceiling",
                   "scheduled_power_kw": 14.0, "command": command | {"asset_id": "ev", "sent": 7.0},
                   "device_results": [command | {"asset_id": f"ev/{n}", "device": n, "sent": 7.0}
                                      for n in ("EV-1", "EV-2")],
                   "telemetry": ev_t, "device_telemetry": devices, "deviation_kw": None},
        },
        "alarms": alarm_list,
    })


def write(store: Path, rec: dict[str, Any], day: dt.date = DAY, portfolio: str = PORTFOLIO) -> Path:
    """Write a record where dispatch would, with dispatch's own writer; its path."""
    folder = dispatch_folder(store, portfolio, day)
    return write_round(folder, rec, dt.datetime.fromisoformat(rec["at"]))


def folder(store: Path, day: dt.date = DAY, portfolio: str = PORTFOLIO) -> Path:
    return dispatch_folder(store, portfolio, day)
