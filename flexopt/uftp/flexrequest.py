"""A FlexRequest answered: a FlexRequestResponse (accepted, or rejected with the reason) and, when anything can be
offered, one FlexOffer whose options form the price-volume curve. Every request gets an answer."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from shapeshifter_uftp.uftp import (
    AcceptedRejected,
    FlexOffer,
    FlexOfferOption,
    FlexOfferOptionISP,
    FlexRequest,
    FlexRequestResponse,
)

from flexopt.config.redaction import excerpt
from flexopt.uftp.isp import ISP_DURATION
from flexopt.uftp.offers import Pricing, price_request, requested_isps

LOG = logging.getLogger("flexopt.uftp")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def last_prognosis(ctx, msg: FlexRequest) -> str | None:
    """The D-Prognosis this DSO last got for the point and day: UFTP's baseline the offer's changes refer to."""
    sent = [e for e in ctx.log.entries(message_type="DPrognosis", direction="out", status="sent")
            if e.fields.get("CongestionPoint") == msg.congestion_point and e.fields.get("RecipientDomain") ==
            msg.sender_domain and e.fields.get("Period") == str(msg.period)]
    return sent[-1].message_id if sent else None


def handle_flex_request(ctx, msg: FlexRequest, received_utc: dt.datetime) -> Pricing | None:
    def reply(result: AcceptedRejected, reason: str = "") -> None:
        ctx.outbound.send(msg.sender_domain, FlexRequestResponse(
            flex_request_message_id=msg.message_id, conversation_id=msg.conversation_id, result=result,
            rejection_reason=reason or None), reference_id=msg.message_id)

    point_id = ctx.uftp.congestion_points.get(msg.congestion_point)
    if point_id is None:
        reply(AcceptedRejected.REJECTED, f"Invalid Congestion Point: {msg.congestion_point} is not in flexopt's "
                                         "uftp.congestion_points")
        return None
    if str(msg.isp_duration) != ISP_DURATION:
        reply(AcceptedRejected.REJECTED, f"ISP Duration Rejected: {msg.isp_duration}; flexopt trades {ISP_DURATION}")
        return None
    try:
        deadline = parse_time(msg.expiration_date_time)
        isps = requested_isps(msg, msg.time_zone)
    except ValueError as exc:
        reply(AcceptedRejected.REJECTED, f"ISPs Out Of Bounds: {exc}")
        return None
    if not isps:
        reply(AcceptedRejected.REJECTED, "no ISP with Disposition Requested: nothing to offer for")
        return None
    try:
        pricing = price_request(ctx, point_id, isps, deadline)
    except Exception as exc:  # never silence: the DSO hears why, the log keeps the trace
        LOG.exception("pricing FlexRequest %s failed", msg.message_id)
        reply(AcceptedRejected.REJECTED, f"flexopt could not price the request: {type(exc).__name__}: "
                                         f"{excerpt(str(exc), 300)}")
        return None
    if not pricing.options:
        reply(AcceptedRejected.REJECTED, pricing.reason)
        return pricing
    now = ctx.now()
    if now >= deadline:  # an offer after the request's expiry is worth nothing to the DSO: say so instead
        reply(AcceptedRejected.REJECTED, f"priced only after the request expired at {msg.expiration_date_time} "
                                         f"(the solves took {pricing.timings_s.get('total', 0):.1f} s)")
        return pricing
    reply(AcceptedRejected.ACCEPTED)
    expires = min(deadline, now + dt.timedelta(minutes=ctx.uftp.offers.validity_min))
    offer = FlexOffer(
        d_prognosis_message_id=last_prognosis(ctx, msg), flex_request_message_id=msg.message_id,
        conversation_id=msg.conversation_id, isp_duration=ISP_DURATION,
        time_zone=msg.time_zone, period=msg.period, congestion_point=msg.congestion_point,
        expiration_date_time=expires.isoformat(timespec="seconds"), currency="EUR",
        offer_options=[FlexOfferOption(
            option_reference=o.reference, price=Decimal(f"{o.price_eur:.4f}"), min_activation_factor=Decimal("1.00"),
            isps=[FlexOfferOptionISP(power=round(i.delta_kw * 1000), start=i.number, duration=1)
                  for i in o.isps]) for o in pricing.options])
    ctx.outbound.send(msg.sender_domain, offer, reference_id=msg.message_id, notes={
        "point_id": point_id, "expires_utc": expires.isoformat(), "request_received_utc": received_utc.isoformat(),
        "reference_cost_eur": pricing.reference_cost_eur, "options": [o.record() for o in pricing.options],
        "notes": pricing.notes, "timings_s": pricing.timings_s,
        "answer_s": (dt.datetime.now(dt.UTC) - received_utc).total_seconds()})
    return pricing
