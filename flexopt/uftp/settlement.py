"""Settlement: the flexibility each order delivered, per ISP, measured against its baseline.

The baseline of an ISP is the congestion point's net power in the reference schedule the offer was priced
against (recorded with the order); the measured net power is the sum of the point's assets: the mean of each
device asset's good telemetry readings in the ISP, and for assets without an endpoint (uncontrolled load, PV
without control) what the schedule in force planned for them. Delivered flexibility = measured - baseline, in
the ordered direction; the deficiency is what was ordered and not delivered. An ISP where a device asset has no
reading is reported as unmeasured, not as delivered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from flexopt.data.limit_ledger import read_events
from flexopt.operations.schedules import ScheduleNotFound, find_schedule_run
from flexopt.runs.files import write_frame, write_json
from flexopt.runs.store import new_run
from flexopt.telemetry import power_series

COLUMNS = ("order_id", "order_reference", "dso", "congestion_point", "entity", "isp", "interval_start",
           "interval_end", "baseline_kw", "ordered_flex_kw", "measured_kw", "delivered_flex_kw", "deficiency_kw",
           "price_eur", "status", "note")


def orders_of_day(ledger: Path, day: dt.date, tz: str) -> dict[str, dict]:
    """Order id -> its last order event, for orders with an ISP on ``day`` that were not revoked."""
    orders: dict[str, dict] = {}
    for event in read_events(ledger):
        if event["event"] == "revoke":
            orders.pop(event["order_id"], None)
            continue
        days = {pd.Timestamp(b["start_utc"]).tz_convert(tz).date() for b in event.get("baseline", [])}
        if day in days:
            orders[event["order_id"]] = event
    return orders


def measured_point_kw(loaded, store: Path, db, point_id: str, start: dt.datetime, end: dt.datetime,
                      day: dt.date) -> tuple[float, str]:
    """(measured net kW of the point in [start, end), note); NaN with the reason when a device is unmeasured."""
    pf = loaded.portfolio
    total, planned, missing = 0.0, [], []
    run = None
    for site, asset in pf.assets():
        if site.congestion_point != point_id:
            continue
        if asset.endpoint is not None:  # a device flexopt controls and reads: only its measurement counts
            series = [] if db is None else power_series(db, pf.portfolio.name, asset.id, start, end,
                                                        resolution_min=pf.portfolio.resolution_min)
            if series:
                total += float(np.mean([s.measured_kw for s in series]))
            else:
                missing.append(asset.id)
            continue
        if run is None:
            try:
                run = find_schedule_run(store, pf.portfolio.name, day, start)
            except ScheduleNotFound as exc:
                return float("nan"), f"no schedule in force for {asset.id}: {exc}"
        rows = run.frame[(run.frame["asset_id"] == asset.id) & (run.frame["interval_start"] == pd.Timestamp(start))]
        total += float(rows["power_kw"].sum())
        planned.append(asset.id)
    if missing:
        return float("nan"), f"no telemetry in the ISP for {', '.join(missing)}"
    return total, (f"as scheduled: {', '.join(planned)}" if planned else "")


def settle_day(loaded, store: Path, ledger: Path, db, day: dt.date) -> pd.DataFrame:
    tz = loaded.portfolio.portfolio.timezone
    rows = []
    for order_id, event in orders_of_day(ledger, day, tz).items():
        for b in event.get("baseline", []):
            start = pd.Timestamp(b["start_utc"]).to_pydatetime()
            if start.astimezone(ZoneInfo(tz)).date() != day:
                continue
            end = pd.Timestamp(b["end_utc"]).to_pydatetime()
            measured, note = measured_point_kw(loaded, store, db, event["congestion_point"], start, end, day)
            ordered = float(b["ordered_flex_kw"])
            delivered = measured - float(b["baseline_kw"])
            along = delivered * np.sign(ordered) if ordered else 0.0
            rows.append({
                "order_id": order_id, "order_reference": event.get("order_reference", ""),
                "dso": event.get("dso", ""), "congestion_point": event["congestion_point"],
                "entity": event.get("entity", ""), "isp": int(b["number"]), "interval_start": pd.Timestamp(start),
                "interval_end": pd.Timestamp(end), "baseline_kw": float(b["baseline_kw"]), "ordered_flex_kw": ordered,
                "measured_kw": measured, "delivered_flex_kw": delivered,
                "deficiency_kw": max(abs(ordered) - along, 0.0) if np.isfinite(along) else np.nan,
                "price_eur": event.get("price_eur"), "status": "measured" if np.isfinite(measured) else "unmeasured",
                "note": note})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("interval_start", "interval_end"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def write_settlement(loaded, store: Path, day: dt.date, frame: pd.DataFrame) -> Path:
    """A new version ``<store>/<portfolio>/<day>/uftp-settlement/vNNN`` (never overwritten)."""
    with new_run(store, loaded.portfolio.portfolio.name, day, "uftp-settlement") as target:
        write_frame(frame, target.tmp, "settlement")
        summary = {"date": day.isoformat(), "orders": sorted(set(frame["order_id"])), "isps": len(frame),
                   "unmeasured_isps": int((frame["status"] == "unmeasured").sum()),
                   "delivered_flex_kwh": float(frame["delivered_flex_kw"].sum() * 0.25),
                   "ordered_flex_kwh": float(frame["ordered_flex_kw"].sum() * 0.25),
                   "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        write_json(summary, target.tmp / "settlement.json")
        return target.commit()


def send_metering(ctx, frame: pd.DataFrame, day: dt.date) -> list[str]:
    """The measured net power of each settled congestion point, per ISP, to its DSO as a UFTP Metering message
    (profile Power, kW; the meter is the point's EAN). Returns the problems; nothing is sent for an ISP that was
    not measured."""
    from decimal import Decimal

    from shapeshifter_uftp.uftp import Metering, MeteringISP, MeteringProfile, MeteringProfileEnum, MeteringUnit
    from xsdata.models.datatype import XmlDate

    from flexopt.uftp.isp import ISP_DURATION

    problems = []
    measured = frame[frame["status"] == "measured"]
    for (entity, dso), part in measured.groupby(["entity", "dso"]):
        digits = entity.removeprefix("ean.")
        if not (entity.startswith("ean.") and digits.isdigit() and len(digits) == 18):
            problems.append(f"{entity}: UFTP Metering names an 18-digit EAN; this entity address is not one, the "
                            "settlement stays in the files")
            continue
        per_isp = part.groupby("isp")["measured_kw"].first()
        values = [MeteringISP(start=int(n), value=Decimal(f"{v:.3f}")) for n, v in per_isp.items()]
        message = Metering(revision=1 + len([e for e in ctx.log.entries(message_type="Metering", direction="out")
                                             if e.notes.get("entity") == entity and e.notes.get("day") == str(day)]),
                           isp_duration=ISP_DURATION, time_zone=ctx.tz, period=XmlDate(day.year, day.month, day.day),
                           ean=f"E{digits}", profiles=[MeteringProfile(
                               profile_type=MeteringProfileEnum.POWER, unit=MeteringUnit.K_W,
                               isps=values)])
        sent = ctx.outbound.send(dso, message, notes={"entity": entity, "day": str(day),
                                                      "orders": sorted(set(part["order_id"]))})
        if not sent.ok:
            problems.append(f"Metering of {entity} for {day} to {dso}: {sent.reason}")
    return problems
