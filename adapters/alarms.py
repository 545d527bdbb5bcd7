"""Alarms: what an operator must look at after a dispatch or a telemetry round."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from flexopt.adapters.base import CommandResult, Telemetry, convert, utcnow

Severity = Literal["critical", "warning"]
SetpointKind = Literal["exact", "import_ceiling", "export_ceiling"]

_RESULT_SEVERITY: dict[str, Severity] = {
    "unreachable": "critical",
    "timeout": "critical",
    "error": "critical",
    "rejected": "critical",
    "invalid": "critical",
    "unconfirmed": "warning",
}


@dataclass(frozen=True)
class Alarm:
    severity: Severity
    asset_id: str
    kind: str
    reason: str
    at: dt.datetime = field(default_factory=utcnow)


def alarms_from_results(results: Iterable[CommandResult]) -> list[Alarm]:
    """Every result that is not ok is an alarm; a confirmed but clamped setpoint is a warning."""
    alarms = []
    for r in results:
        if not r.ok:
            alarms.append(Alarm(_RESULT_SEVERITY.get(r.status, "critical"), r.asset_id, r.status, r.reason, r.at))
        elif r.clamped:
            alarms.append(Alarm("warning", r.asset_id, "clamped", r.reason, r.at))
    return alarms


def alarms_from_telemetry(
    telemetry: Iterable[Telemetry],
    confirmed: Iterable[CommandResult] = (),
    tolerance_kw: float = 1.0,
    tolerance_pct: float = 10.0,
    kinds: Mapping[str, SetpointKind] | None = None,
) -> list[Alarm]:
    """Unreachable or unavailable devices, bad data, and measured power away from the last confirmed
    power setpoint by more than max(tolerance_kw, tolerance_pct of the setpoint).
    ``kinds`` (see factory.setpoint_kind) says which setpoints are ceilings: an EV charger's limit
    (import_ceiling: only drawing more is a deviation, a full car draws less) or a PV export limit
    (export_ceiling, positive kW: only feeding in more is a deviation). Without it, assets that
    report ev_plugged are taken as import ceilings and the rest as exact."""
    targets: dict[str, float] = {}
    for r in confirmed:
        if r.ok and r.sent is not None and r.unit in ("kW", "W"):
            targets[r.asset_id] = convert(r.sent, r.unit, "kW")
    alarms = []
    for t in telemetry:
        if not t.connected:
            alarms.append(Alarm("critical", t.asset_id, "unreachable", t.notes or "not connected", t.at))
            continue
        if t.available is False:
            alarms.append(Alarm("warning", t.asset_id, "unavailable", t.notes or "device reports unavailable", t.at))
        if t.quality in ("questionable", "invalid"):
            alarms.append(Alarm("warning", t.asset_id, "bad_quality", t.notes or t.quality, t.at))
        target = targets.get(t.asset_id)
        if target is None or t.active_power_kw is None:
            continue
        allowed = max(tolerance_kw, abs(target) * tolerance_pct / 100.0)
        kind = (kinds or {}).get(t.asset_id) or ("import_ceiling" if t.ev_plugged is not None else "exact")
        if kind == "export_ceiling":
            excess = -t.active_power_kw - target
        elif kind == "import_ceiling":
            excess = t.active_power_kw - target
        else:
            excess = abs(t.active_power_kw - target)
        if excess > allowed:
            alarms.append(
                Alarm(
                    "warning",
                    t.asset_id,
                    "deviation",
                    f"measured {t.active_power_kw:.2f} kW vs setpoint {target:.2f} kW (tolerance {allowed:.2f} kW)",
                    t.at,
                )
            )
    return alarms
