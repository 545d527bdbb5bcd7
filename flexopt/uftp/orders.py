"""FlexOrders and their release: an ordered option becomes binding limit windows in the ledger, a new intraday
schedule is made at once (the run ``flexopt schedule intraday`` makes, under the same lock) and the DSO is
answered; a FlexReservationUpdate that releases ISPs (power 0) lifts their windows and reschedules likewise."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pandas as pd
from shapeshifter_uftp.uftp import (
    AcceptedRejected,
    FlexOfferRevocation,
    FlexOrder,
    FlexOrderResponse,
    FlexReservationUpdate,
    FlexReservationUpdateResponse,
)

from flexopt.config.redaction import excerpt
from flexopt.data.dso_limits import LimitWindow
from flexopt.data.limit_ledger import active_orders, record_order, record_revocation
from flexopt.runs.runner import RunRequest, run_schedule
from flexopt.uftp import resolve
from flexopt.uftp.isp import expand
from flexopt.uftp.prognosis import send_prognoses

LOG = logging.getLogger("flexopt.uftp")


@dataclass
class Outcome:
    accepted: bool
    reason: str = ""
    run_dir: str | None = None


def _offer(ctx, offer_id: str | None):
    if not offer_id:
        return None
    sent = ctx.log.entries(message_type="FlexOffer", message_id=offer_id, direction="out", status="sent")
    return sent[-1] if sent else None


def revocation_of(ctx, offer_id: str):
    """The FlexOfferRevocation flexopt sent for an offer, if any."""
    sent = [e for e in ctx.log.entries(message_type="FlexOfferRevocation", direction="out", status="sent")
            if e.fields.get("FlexOfferMessageID") == offer_id]
    return sent[-1] if sent else None


def revoke_offer(ctx, offer_id: str) -> str:
    """Send the DSO a FlexOfferRevocation for an offer nobody ordered; the reason it cannot be, or ''."""
    offer = _offer(ctx, offer_id)
    if offer is None:
        return f"no FlexOffer {offer_id} was sent (see the message log)"
    if any(e.notes.get("offer_id") == offer_id for e in ctx.log.entries(message_type="FlexOrder", status="ordered")):
        return f"FlexOffer {offer_id} was ordered: UFTP does not revoke an ordered offer"
    if revocation_of(ctx, offer_id) is not None:
        return f"FlexOffer {offer_id} is already revoked"
    sent = ctx.outbound.send(offer.fields["RecipientDomain"], FlexOfferRevocation(
        flex_offer_message_id=offer_id, conversation_id=offer.conversation_id), reference_id=offer_id)
    return "" if sent.ok else f"not delivered: {sent.reason}"


def check_order(ctx, msg: FlexOrder) -> tuple[str, dict | None, dict | None]:
    """(reason to reject or '', the offer's notes, the ordered option's record)."""
    offer = _offer(ctx, msg.flex_offer_message_id)
    if offer is None:
        return f"Unknown Reference: no FlexOffer {msg.flex_offer_message_id} was sent by flexopt", None, None
    if offer.fields.get("RecipientDomain", msg.sender_domain) != msg.sender_domain:
        return "Unknown Reference: the FlexOffer was made to another participant", None, None
    if any(e.notes.get("offer_id") == offer.message_id for e in ctx.log.entries(message_type="FlexOrder",
                                                                                 status="ordered")):
        return f"Already Submitted: FlexOffer {offer.message_id} was ordered before", None, None
    if revocation_of(ctx, offer.message_id) is not None:
        return f"Reference Message Revoked: flexopt revoked FlexOffer {offer.message_id}", None, None
    notes = offer.notes
    if dt.datetime.fromisoformat(notes["expires_utc"]) < ctx.now():
        return f"Reference Message Expired: the offer expired at {notes['expires_utc']}", None, None
    option = next((o for o in notes["options"] if o["reference"] == msg.option_reference), None)
    if option is None:
        return f"Unknown Reference: the offer has no option {msg.option_reference!r}", None, None
    if msg.congestion_point != offer.fields.get("CongestionPoint", msg.congestion_point):
        return "ISP Conflict: the order's congestion point differs from the offer's", None, None
    day = dt.date(msg.period.year, msg.period.month, msg.period.day)
    try:
        ordered = {n: int(e.power) for n, e in expand(msg.isps, day, msg.time_zone)}
    except ValueError as exc:
        return f"ISPs Out Of Bounds: {exc}", None, None
    offered = {i["number"]: round(i["delta_kw"] * 1000) for i in option["isps"]}
    if ordered != offered:
        return "ISP Conflict: the order's ISPs are not those of the offered option (copy them unchanged)", None, None
    if float(msg.activation_factor) != 1.0:
        return "the options were offered with MinActivationFactor 1.00: order them whole", None, None
    return "", notes, option


def windows_of(point_id: str, option: dict) -> list[LimitWindow]:
    return [LimitWindow(point_id, pd.Timestamp(i["start_utc"]), pd.Timestamp(i["end_utc"]), i["max_import_kw"],
                        i["max_export_kw"]) for i in option["isps"]]


def reschedule(ctx, until_utc: dt.datetime | None, why: str) -> str | None:
    """A new intraday run from the next interval, as ``flexopt schedule intraday`` makes it; its folder."""
    loaded = ctx.loaded
    start = resolve.intraday_start(loaded, ctx.now())
    horizon_h = resolve.horizon_to(start, until_utc, loaded.portfolio.portfolio.resolution_min)
    database = resolve.open_telemetry(ctx.db, ctx.store)
    max_age = dt.timedelta(minutes=2 * loaded.portfolio.portfolio.resolution_min)
    try:
        request = RunRequest(
            portfolio_path=ctx.portfolio_path, kind="intraday", day=start.date(), start=start, store=ctx.store,
            horizon_h=horizon_h, resolve_state=lambda lp: resolve.start_states(
                lp, ctx.store, start.date(), start, db=database, max_age=max_age, no_telemetry="no telemetry database"))
        with ctx.solve_lock:
            outcome = run_schedule(request)
        LOG.info("intraday schedule after %s: %s", why, outcome.directory)
        for problem in send_prognoses(ctx, outcome.directory):  # the DSO sees the new plan; a failure only warns
            LOG.warning("D-Prognosis not delivered: %s", problem)
        return str(outcome.directory)
    finally:
        if database is not None:
            database.close()


def handle_flex_order(ctx, msg: FlexOrder) -> Outcome:
    def reply(result: AcceptedRejected, reason: str = "") -> None:
        ctx.outbound.send(msg.sender_domain, FlexOrderResponse(
            flex_order_message_id=msg.message_id, conversation_id=msg.conversation_id, result=result,
            rejection_reason=reason or None), reference_id=msg.message_id)

    reason, notes, option = check_order(ctx, msg)
    if reason:
        ctx.log.add(direction="in", status="order-rejected", reason=reason, message_type="FlexOrder",
                    sender_domain=msg.sender_domain, message_id=msg.message_id, conversation_id=msg.conversation_id,
                    reference_id=msg.flex_offer_message_id or "")
        reply(AcceptedRejected.REJECTED, reason)
        return Outcome(False, reason)
    point_id = notes["point_id"]
    windows = windows_of(point_id, option)
    now = ctx.now().isoformat(timespec="seconds")
    record_order(ctx.ledger, msg.message_id, now, windows, congestion_point=point_id, entity=msg.congestion_point,
                 offer_id=msg.flex_offer_message_id, option=option["reference"], order_reference=msg.order_reference,
                 contract_id=msg.contract_id, price_eur=float(msg.price), dso=msg.sender_domain,
                 baseline=[{"start_utc": i["start_utc"], "end_utc": i["end_utc"], "number": i["number"],
                            "baseline_kw": i["baseline_kw"], "ordered_flex_kw": i["delta_kw"]}
                           for i in option["isps"]])
    ctx.log.add(direction="in", status="ordered", message_type="FlexOrder", sender_domain=msg.sender_domain,
                message_id=msg.message_id, conversation_id=msg.conversation_id,
                reference_id=msg.flex_offer_message_id or "",
                notes={"offer_id": msg.flex_offer_message_id, "option": option["reference"], "point_id": point_id,
                       "windows": len(windows)})
    run_dir, problem = None, ""
    try:
        run_dir = reschedule(ctx, max(w.end for w in windows).to_pydatetime(), f"FlexOrder {msg.message_id}")
    except Exception as exc:  # the order stays binding: the next schedule run reads it from the ledger
        problem = f"{type(exc).__name__}: {excerpt(str(exc), 300)}"
        LOG.error("FlexOrder %s is binding but the intraday run failed: %s", msg.message_id, problem)
    ctx.log.add(direction="in", status="scheduled" if run_dir else "schedule-failed", reason=problem,
                message_type="FlexOrder", sender_domain=msg.sender_domain, message_id=msg.message_id,
                conversation_id=msg.conversation_id, notes={"run": run_dir})
    reply(AcceptedRejected.ACCEPTED)
    return Outcome(True, problem, run_dir)


def handle_reservation_update(ctx, msg: FlexReservationUpdate) -> Outcome:
    """ISPs whose reserved power is 0 are released: the windows of the contract's orders there are lifted."""
    def reply(result: AcceptedRejected, reason: str = "") -> None:
        ctx.outbound.send(msg.sender_domain, FlexReservationUpdateResponse(
            flex_reservation_update_message_id=msg.message_id, conversation_id=msg.conversation_id, result=result,
            rejection_reason=reason or None), reference_id=msg.message_id)

    day = dt.date(msg.period.year, msg.period.month, msg.period.day)
    try:
        released = {n for n, e in expand(msg.isps, day, msg.time_zone) if int(e.power) == 0}
    except ValueError as exc:
        reply(AcceptedRejected.REJECTED, f"ISPs Out Of Bounds: {exc}")
        return Outcome(False, str(exc))
    orders = {oid: e for oid, e in active_orders(ctx.ledger).items()
              if e.get("contract_id") == msg.contract_id and e.get("entity") == msg.congestion_point
              and e.get("dso") == msg.sender_domain}
    if not orders:
        reason = (f"Unknown Reference: no order in force under contract {msg.contract_id} at {msg.congestion_point}")
        reply(AcceptedRejected.REJECTED, reason)
        return Outcome(False, reason)
    now = ctx.now().isoformat(timespec="seconds")
    changed = []
    for order_id, event in orders.items():
        keep = [w for w in event["windows"] if _number(w, day, msg.time_zone) not in released]
        if len(keep) == len(event["windows"]):
            continue
        changed.append(order_id)
        if keep:
            details = {k: v for k, v in event.items() if k not in ("event", "order_id", "at_utc", "windows")}
            record_order(ctx.ledger, order_id, now, [LimitWindow(w["congestion_point"], pd.Timestamp(w["start"]),
                                                                 pd.Timestamp(w["end"]), w["max_import_kw"],
                                                                 w["max_export_kw"]) for w in keep],
                         **{**details, "amended_by": msg.message_id})
        else:
            record_revocation(ctx.ledger, order_id, now, f"released by FlexReservationUpdate {msg.message_id}")
    run_dir, problem = None, ""
    if changed:
        try:
            run_dir = reschedule(ctx, None, f"FlexReservationUpdate {msg.message_id}")
        except Exception as exc:
            problem = f"{type(exc).__name__}: {excerpt(str(exc), 300)}"
            LOG.error("released ISPs of %s but the intraday run failed: %s", changed, problem)
    ctx.log.add(direction="in", status="released", reason=problem, message_type="FlexReservationUpdate",
                sender_domain=msg.sender_domain, message_id=msg.message_id, conversation_id=msg.conversation_id,
                notes={"orders": changed, "isps": sorted(released), "run": run_dir})
    reply(AcceptedRejected.ACCEPTED)
    return Outcome(True, problem, run_dir)


def _number(window: dict, day: dt.date, tz: str) -> int:
    from flexopt.uftp.isp import isp_number

    return isp_number(day, tz, pd.Timestamp(window["start"]).to_pydatetime())
