"""SetChargingProfile / ClearChargingProfile payloads for OCPP 1.6 and 2.0.1 from one description."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from ocpp.v16 import call as c16
from ocpp.v201 import call as c201

Purpose = Literal["TxDefaultProfile", "TxProfile"]


@dataclass(frozen=True)
class ChargingProfileSpec:
    """A charging limit schedule: ``periods`` are (seconds after start, limit in ``rate_unit``)."""

    connector_id: int
    purpose: Purpose
    start: dt.datetime
    periods: tuple[tuple[int, float], ...]
    rate_unit: Literal["W", "A"] = "W"
    duration_s: int | None = None
    transaction_id: int | str | None = None
    stack_level: int = 1
    valid_to: dt.datetime | None = None  # the charger drops the profile then (flexopt's failsafe)

    @property
    def profile_id(self) -> int:
        """Stable per connector and purpose, so a new profile replaces the previous one."""
        return (1000 if self.purpose == "TxDefaultProfile" else 2000) + self.connector_id


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _schedule_core(spec: ChargingProfileSpec) -> dict[str, Any]:
    sched: dict[str, Any] = {
        "charging_rate_unit": spec.rate_unit,
        "start_schedule": _iso(spec.start),
        "charging_schedule_period": [
            {"start_period": int(start), "limit": round(float(limit), 1)} for start, limit in spec.periods
        ],
    }
    if spec.duration_s is not None:
        sched["duration"] = int(spec.duration_s)
    return sched


def set_profile_call(version: str, spec: ChargingProfileSpec) -> Any:
    profile: dict[str, Any] = {
        "charging_profile_id" if version == "1.6" else "id": spec.profile_id,
        "stack_level": spec.stack_level,
        "charging_profile_purpose": spec.purpose,
        "charging_profile_kind": "Absolute",
    }
    if spec.valid_to is not None:
        profile["valid_to"] = _iso(spec.valid_to)
    if spec.purpose == "TxProfile":
        profile["transaction_id"] = spec.transaction_id if version == "1.6" else str(spec.transaction_id)
    if version == "1.6":
        profile["charging_schedule"] = _schedule_core(spec)
        return c16.SetChargingProfile(connector_id=spec.connector_id, cs_charging_profiles=profile)
    profile["charging_schedule"] = [{"id": spec.profile_id, **_schedule_core(spec)}]
    return c201.SetChargingProfile(evse_id=spec.connector_id, charging_profile=profile)


def limits_call(version: str) -> Any:
    """Ask how many periods a charging schedule may have: GetConfiguration (1.6) / GetVariables (2.0.1)."""
    if version == "1.6":
        return c16.GetConfiguration(key=["ChargingScheduleMaxPeriods"])
    return c201.GetVariables(get_variable_data=[{"component": {"name": "SmartChargingCtrlr"},
                                                 "variable": {"name": "PeriodsPerSchedule"}}])


def max_periods_of(version: str, response: Any) -> int | None:
    """The number in the answer to :func:`limits_call`; None when the charger does not say."""
    if version == "1.6":
        items = [(k.get("key"), k.get("value")) for k in (response.configuration_key or [])]
        values = [v for key, v in items if key == "ChargingScheduleMaxPeriods"]
    else:
        values = [r.get("attribute_value") for r in (response.get_variable_result or [])
                  if r.get("attribute_status") == "Accepted"]
    for value in values:
        try:
            n = int(str(value).strip())
        except ValueError:
            continue
        if n >= 1:
            return n
    return None


def fit_periods(periods: tuple[tuple[int, float], ...], max_periods: int | None
                ) -> tuple[tuple[tuple[int, float], ...], int | None, str]:
    """A schedule the charger can take (ChargingScheduleMaxPeriods / PeriodsPerSchedule). Within the limit (or
    without one) it goes out as it is; beyond it, adjacent periods with the same limit are merged (no change at
    all), then, if still too many, only the first ``max_periods`` are sent, ending where the next one would start.
    Dispatch sends a fresh profile every round, so the hours cut off are sent before they begin; a ceiling is never
    changed. Returns (periods, the end in seconds when cut, a note)."""
    if max_periods is None or len(periods) <= max_periods:
        return periods, None, ""
    merged: list[tuple[int, float]] = []
    for start, limit in periods:
        if merged and merged[-1][1] == limit:
            continue
        merged.append((start, limit))
    if len(merged) <= max_periods:
        return tuple(merged), None, f"the charger takes {max_periods} periods: {len(periods)} merged to {len(merged)}"
    n = max(1, max_periods)
    end_s = merged[n][0]
    note = (f"the charger takes {max_periods} periods: sent the next {end_s / 3600:.2g} h "
            f"({n} of {len(merged)} periods), renewed every round")
    return tuple(merged[:n]), end_s, note


def clear_profile_call(version: str, connector_id: int, purpose: Purpose | None = None) -> Any:
    """Clear flexopt's profiles on a connector (all purposes when ``purpose`` is None)."""
    if version == "1.6":
        return c16.ClearChargingProfile(connector_id=connector_id, charging_profile_purpose=purpose)
    criteria: dict[str, Any] = {"evse_id": connector_id}
    if purpose is not None:
        criteria["charging_profile_purpose"] = purpose
    return c201.ClearChargingProfile(charging_profile_criteria=criteria)
