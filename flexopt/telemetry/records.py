"""A dispatch round record (the JSON of ``flexopt.operations.round``) as database rows: the round, one reading per
asset and per device of a group, the alarms. Pure: no database, so the live write and the import cannot differ."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from flexopt.config.redaction import redact_obj

_FLOATS = ("voltage_v", "active_power_kw", "reactive_power_kvar", "soc_pct", "temp_c", "ev_energy_kwh")
_BOOLS = ("available", "ev_plugged", "ev_charging")
_COUNTS = ("assets", "sent", "confirmed", "failed", "clamped", "skipped", "alarms_critical", "alarms_warning")


class RecordError(ValueError):
    """A file that parses as JSON but is not a round record flexopt can store; the message says what is missing."""


@dataclass
class RoundRows:
    round: dict[str, Any]
    readings: list[dict[str, Any]]
    alarms: list[dict[str, Any]]


def utc(text: Any) -> dt.datetime | None:
    """An ISO 8601 time of a record as tz-aware UTC (records write UTC; a naive time is taken as UTC)."""
    if text in (None, ""):
        return None
    value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _reading(telemetry: dict[str, Any], *, fallback_at: dt.datetime) -> dict[str, Any]:
    row: dict[str, Any] = {name: _float(telemetry.get(name)) for name in _FLOATS}
    row |= {name: _bool(telemetry.get(name)) for name in _BOOLS}
    extra = telemetry.get("extra")
    row |= {
        "at_utc": utc(telemetry.get("at")) or fallback_at,
        "connected": telemetry.get("connected") is True,
        "quality": str(telemetry.get("quality") or "invalid"),
        "reported_setpoint": _float(telemetry.get("setpoint")),
        "notes": str(telemetry.get("notes") or "") or None,
        "extra": {str(k): v for k, v in extra.items() if _float(v) is not None} if isinstance(extra, dict) else None,
    }
    return row


def _command(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        return {"sent_setpoint": None, "setpoint_unit": None, "command_status": None}
    return {"sent_setpoint": _float(result.get("sent")), "setpoint_unit": result.get("unit") or None,
            "command_status": result.get("status") or None}


def round_rows(record: dict[str, Any], *, portfolio: str, day: dt.date, record_file: str, stored_by: str,
               stored_utc: dt.datetime) -> RoundRows:
    """The rows of one record. Device rows exist for assets with several devices (``device_telemetry``); the
    asset's own row (``device`` None) is the group's aggregate or the single device, and it alone carries the
    scheduled power and the deviation. A record without a round time or summary is a :class:`RecordError`. Secrets
    are redacted (records written before flexopt redacted them may hold one)."""
    try:
        return _rows(redact_obj(record), portfolio, day, record_file, stored_by, stored_utc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"not a round record flexopt can store ({type(exc).__name__}: {exc})") from None


def _rows(record: dict[str, Any], portfolio: str, day: dt.date, record_file: str, stored_by: str,
          stored_utc: dt.datetime) -> RoundRows:
    summary = record["summary"]
    at = utc(record["at"])
    assets = record.get("assets") or {}
    if at is None or not isinstance(summary, dict) or not isinstance(assets, dict):
        raise ValueError("no round time, summary or assets")
    schedule = record.get("schedule") or {}
    head = {
        "portfolio": portfolio, "day": day, "record_file": record_file, "at_utc": at,
        "interval_start_utc": utc(record.get("interval_start")), "interval_end_utc": utc(record.get("interval_end")),
        "started_utc": utc(record.get("started_utc")), "finished_utc": utc(record.get("finished_utc")),
        "settle_s": _float(record.get("settle_s")), "schedule_run": schedule.get("path"),
        "schedule_version": schedule.get("version"), "schedule_kind": schedule.get("kind"),
        "flexopt_version": record.get("flexopt_version"), "stored_by": stored_by, "stored_utc": stored_utc,
    } | {name: int(summary.get(name) or 0) for name in _COUNTS}
    readings = []
    for asset_id, entry in assets.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("telemetry"), dict):
            continue
        common = {"portfolio": portfolio, "asset_id": str(asset_id), "site_id": entry.get("site_id"),
                  "asset_type": entry.get("asset_type")}
        readings.append(common | _reading(entry["telemetry"], fallback_at=at) | _command(entry.get("command")) | {
            "device": None, "scheduled_power_kw": _float(entry.get("scheduled_power_kw")),
            "deviation_kw": _float(entry.get("deviation_kw"))})
        results = {r.get("device"): r for r in entry.get("device_results") or [] if isinstance(r, dict)}
        for device in entry.get("device_telemetry") or []:
            if not isinstance(device, dict) or not device.get("device"):
                continue
            name = str(device["device"])
            readings.append(common | _reading(device, fallback_at=at) | _command(results.get(name)) | {
                "device": name, "scheduled_power_kw": None, "deviation_kw": None})
    alarms = [{"portfolio": portfolio, "asset_id": str(a.get("asset_id") or "*"), "severity": str(a.get("severity")),
               "kind": str(a.get("kind")), "reason": str(a.get("reason") or ""), "at_utc": utc(a.get("at"))}
              for a in record.get("alarms") or [] if isinstance(a, dict)]
    return RoundRows(head, readings, alarms)
