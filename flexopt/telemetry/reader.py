"""Read measured state back: the newest good reading per asset or per device at a time, and an asset's measured
power per interval. Plain dataclasses with tz-aware UTC times, for intraday (measured starting states) and forecast
correction.

"Good" means the device answered (``connected``) and said its data are good (``quality == "good"``); a reading that
lacks the value a caller needs can be passed over with ``require``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from flexopt.telemetry.db import TelemetryDB
from flexopt.telemetry.models import ReadingRow, RoundRow

MEASURED_FIELDS = ("voltage_v", "active_power_kw", "reactive_power_kvar", "soc_pct", "temp_c", "ev_plugged",
                   "ev_charging", "ev_energy_kwh", "reported_setpoint")


@dataclass(frozen=True)
class Reading:
    """One stored reading. ``device`` is None for the asset's own reading (a group's aggregate, or the asset's only
    device). ``at`` is the reading's time, ``round_at`` the round's; both tz-aware UTC."""

    portfolio: str
    asset_id: str
    device: str | None
    at: dt.datetime
    connected: bool
    available: bool | None
    quality: str
    voltage_v: float | None
    active_power_kw: float | None
    reactive_power_kvar: float | None
    soc_pct: float | None
    temp_c: float | None
    ev_plugged: bool | None
    ev_charging: bool | None
    ev_energy_kwh: float | None
    reported_setpoint: float | None
    sent_setpoint: float | None
    setpoint_unit: str | None
    command_status: str | None
    scheduled_power_kw: float | None
    deviation_kw: float | None
    site_id: str | None
    asset_type: str | None
    notes: str | None
    extra: dict[str, float] | None  # other numeric values the device reported (e.g. a plug-in type's state)
    round_at: dt.datetime
    interval_start: dt.datetime | None
    day: dt.date
    record_file: str


@dataclass(frozen=True)
class IntervalPower:
    """An asset's measured power in one interval: the mean of its good readings there, and of what was scheduled."""

    interval_start: dt.datetime
    interval_end: dt.datetime
    measured_kw: float
    scheduled_kw: float | None
    readings: int
    sent_setpoint: float | None = None  # the mean setpoint sent in the interval (e.g. a PV export cap), if any


def _utc(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        raise ValueError(f"naive time {t.isoformat()}: give the time zone (e.g. UTC)")
    return t.astimezone(dt.UTC)


_ROUND_COLUMNS = (RoundRow.at_utc.label("round_at"), RoundRow.interval_start_utc.label("interval_start"),
                  RoundRow.day.label("day"), RoundRow.record_file.label("record_file"))
_SAME_NAME = ("portfolio", "asset_id", "device", "connected", "available", "quality", *MEASURED_FIELDS,
              "sent_setpoint", "setpoint_unit", "command_status", "scheduled_power_kw", "deviation_kw", "site_id",
              "asset_type", "notes", "extra")


def _reading(row: Mapping[str, Any]) -> Reading:
    return Reading(at=row["at_utc"], round_at=row["round_at"], interval_start=row["interval_start"], day=row["day"],
                   record_file=row["record_file"], **{name: row[name] for name in _SAME_NAME})


def _latest(db: TelemetryDB, portfolio: str, *, devices: bool, at: dt.datetime | None,
            max_age: dt.timedelta | None, assets: Iterable[str] | None, require: Iterable[str],
            good_only: bool = True) -> list[Reading]:
    rank = func.row_number().over(partition_by=(ReadingRow.asset_id, ReadingRow.device),
                                  order_by=(ReadingRow.at_utc.desc(), ReadingRow.id.desc())).label("rank")
    query = (select(*ReadingRow.__table__.columns, *_ROUND_COLUMNS, rank)
             .join(RoundRow, ReadingRow.round_id == RoundRow.id)
             .where(ReadingRow.portfolio == portfolio,
                    ReadingRow.device.is_not(None) if devices else ReadingRow.device.is_(None)))
    if good_only:
        query = query.where(ReadingRow.connected.is_(True), ReadingRow.quality == "good")
    if at is not None:
        query = query.where(ReadingRow.at_utc <= _utc(at))
    if max_age is not None:
        query = query.where(ReadingRow.at_utc >= _utc(at or dt.datetime.now(dt.UTC)) - max_age)
    if assets is not None:
        query = query.where(ReadingRow.asset_id.in_(list(assets)))
    for name in require:
        if name not in MEASURED_FIELDS:
            raise ValueError(f"require: {name!r} is not a measured field ({', '.join(MEASURED_FIELDS)})")
        query = query.where(getattr(ReadingRow, name).is_not(None))
    ranked = query.subquery()
    with db.reading() as connection:
        rows = connection.execute(select(ranked).where(ranked.c.rank == 1)).mappings().all()
    return sorted((_reading(row) for row in rows), key=lambda r: (r.asset_id, r.device or ""))


def latest_per_asset(db: TelemetryDB, portfolio: str, *, at: dt.datetime | None = None,
                     max_age: dt.timedelta | None = None, assets: Iterable[str] | None = None,
                     require: Iterable[str] = (), good_only: bool = True) -> dict[str, Reading]:
    """Per asset, its newest good reading at or before ``at`` (default: any time) and no older than ``max_age``
    before ``at`` (or now); ``require`` names fields that must have a value (e.g. ``("soc_pct",)``). An asset
    without such a reading is absent. ``good_only=False``: the newest reading whatever its quality (to say why a
    device cannot be used: it was offline, its data questionable)."""
    return {r.asset_id: r for r in _latest(db, portfolio, devices=False, at=at, max_age=max_age, assets=assets,
                                           require=require, good_only=good_only)}


def latest_per_device(db: TelemetryDB, portfolio: str, *, at: dt.datetime | None = None,
                      max_age: dt.timedelta | None = None, assets: Iterable[str] | None = None,
                      require: Iterable[str] = (), good_only: bool = True) -> dict[tuple[str, str], Reading]:
    """As :func:`latest_per_asset` for each device of the assets with several devices (``count`` > 1), keyed by
    (asset, device): e.g. which of a group's chargers has a car plugged in. A single device is its asset's reading."""
    return {(r.asset_id, r.device or ""): r for r in _latest(db, portfolio, devices=True, at=at, max_age=max_age,
                                                             assets=assets, require=require, good_only=good_only)}


def power_series(db: TelemetryDB, portfolio: str, asset_id: str, start: dt.datetime, end: dt.datetime, *,
                 resolution_min: int = 15) -> list[IntervalPower]:
    """An asset's measured power per interval of ``resolution_min`` minutes (boundaries whole multiples of it in
    UTC, as the schedule's) in [start, end): the mean of the good readings whose time falls in the interval.
    Intervals without one are absent, not zero."""
    start, end = _utc(start), _utc(end)
    if resolution_min <= 0:
        raise ValueError(f"resolution_min must be positive, not {resolution_min}")
    query = (select(ReadingRow.at_utc, ReadingRow.active_power_kw, ReadingRow.scheduled_power_kw,
                    ReadingRow.sent_setpoint)
             .join(RoundRow, ReadingRow.round_id == RoundRow.id)
             .where(ReadingRow.portfolio == portfolio, ReadingRow.asset_id == asset_id, ReadingRow.device.is_(None),
                    ReadingRow.connected.is_(True), ReadingRow.quality == "good",
                    ReadingRow.active_power_kw.is_not(None), ReadingRow.at_utc >= start, ReadingRow.at_utc < end))
    with db.reading() as connection:
        rows = connection.execute(query).all()
    step = resolution_min * 60
    measured: dict[int, list[float]] = defaultdict(list)
    scheduled: dict[int, list[float]] = defaultdict(list)
    sent: dict[int, list[float]] = defaultdict(list)
    for at, power, plan, setpoint in rows:
        slot = math.floor(at.timestamp() / step) * step
        measured[slot].append(power)
        if plan is not None:
            scheduled[slot].append(plan)
        if setpoint is not None:
            sent[slot].append(setpoint)
    return [IntervalPower(
        interval_start=dt.datetime.fromtimestamp(slot, dt.UTC),
        interval_end=dt.datetime.fromtimestamp(slot + step, dt.UTC),
        measured_kw=sum(values) / len(values),
        scheduled_kw=sum(scheduled[slot]) / len(scheduled[slot]) if scheduled[slot] else None,
        readings=len(values), sent_setpoint=sum(sent[slot]) / len(sent[slot]) if sent[slot] else None)
        for slot, values in sorted(measured.items())]
