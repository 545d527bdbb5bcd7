"""The AGR service: the library's HTTP service with flexopt's gate in front of it.

Every message is logged as it came (signed XML, parsed fields) with its fate. Refused before any processing:
a sender not in ``uftp.participants`` (or in another role), a signature that does not verify with the
participant's key, an envelope and payload that disagree, a message for another recipient, and a replay: a
message id, or a message of the same type in the same conversation, seen before, or a message older than
``uftp.max_message_age_min``. Transport failures are answered with an HTTP error; a replay is answered with the
UFTP rejection ("Duplicate Identifier") so the DSO knows."""

import dataclasses
import datetime as dt
import logging
import threading

from fastapi import Response
from fastapi.exceptions import HTTPException
from shapeshifter_uftp import ShapeshifterAgrService, transport
from shapeshifter_uftp.exceptions import TransportException
from shapeshifter_uftp.logging import logger as library_logger
from shapeshifter_uftp.uftp import (
    AcceptedRejected,
    FlexSettlementResponse,
    SignedMessage,
    TestMessageResponse,
    request_response_map,
)

from flexopt.config.redaction import RedactingFilter, excerpt
from flexopt.uftp.context import AgrContext
from flexopt.uftp.flexrequest import handle_flex_request, parse_time
from flexopt.uftp.orders import handle_flex_order, handle_reservation_update
from flexopt.uftp.outbound import fields_of

LOG = logging.getLogger("flexopt.uftp")
LOGGED_HEADER = "x-flexopt-logged"  # the gate logged this refusal itself
MAX_LOGGED_BYTES = 1 << 20


def _snake(name: str) -> str:
    import re

    return re.sub(r"(.)([A-Z][a-z])", r"\1_\2", name).lower()


class AgrService(ShapeshifterAgrService):
    """flexopt's AGR endpoint; the handlers live in :mod:`flexopt.uftp.flexrequest` and :mod:`flexopt.uftp.orders`."""

    def __init__(self, ctx: AgrContext) -> None:
        self.ctx = ctx
        self._gate = threading.Lock()
        uftp = ctx.uftp
        for handler in library_logger.handlers:  # the library logs message bodies: never a secret in them
            handler.addFilter(RedactingFilter())
        library_logger.setLevel(logging.WARNING)
        super().__init__(sender_domain=uftp.domain, signing_key=ctx.key, key_lookup_function=self._key,
                         endpoint_lookup_function=self._endpoint, host=uftp.host, port=uftp.port, path=uftp.path)
        self.app.middleware("http")(self._log_unreadable)

    async def _log_unreadable(self, request, call_next):
        """A body the library cannot even read as a SignedMessage is refused before the gate: log it here."""
        body = await request.body()
        response = await call_next(request)
        if response.status_code >= 400 and LOGGED_HEADER not in response.headers:
            reason = f"HTTP {response.status_code}: the body is not a SignedMessage ({len(body)} bytes)"
            LOG.warning("UFTP request from %s refused: %s", request.client.host if request.client else "?", reason)
            self.ctx.log.add(direction="in", status="rejected", reason=reason,
                             signed_xml=body[:MAX_LOGGED_BYTES].decode("utf-8", "replace"),
                             notes={"client": request.client.host if request.client else None,
                                    "path": request.url.path})
        return response

    def _key(self, domain, role):
        participant = self.ctx.uftp.participant(domain)
        return participant.public_key if participant is not None and participant.role == role else None

    def _endpoint(self, domain, role):
        participant = self.ctx.uftp.participant(domain)
        return participant.endpoint if participant is not None and participant.role == role else None

    # --- the gate ---------------------------------------------------------------------------

    def _refuse(self, status: int, reason: str, message: SignedMessage, payload=None, signed_xml: str = ""):
        LOG.warning("UFTP message from %s (%s) refused: %s", message.sender_domain, message.sender_role, reason)
        self.ctx.log.add(direction="in", status="rejected", reason=reason, sender_domain=str(message.sender_domain),
                         sender_role=str(message.sender_role), signed_xml=signed_xml,
                         message_type=type(payload).__name__ if payload is not None else "",
                         message_id=getattr(payload, "message_id", "") or "",
                         conversation_id=getattr(payload, "conversation_id", "") or "",
                         payload_xml=transport.to_xml(payload) if payload is not None else "",
                         fields=fields_of(payload) if payload is not None else {})
        if status:
            raise HTTPException(status, reason, headers={LOGGED_HEADER: "1"})

    def _receive_message(self, message: SignedMessage) -> Response:
        received = dt.datetime.now(dt.UTC)
        signed_xml = transport.to_xml(message)
        key = self._key(message.sender_domain, message.sender_role)
        if key is None:
            self._refuse(401, f"unknown sender: {message.sender_domain} as {message.sender_role} is not in "
                              "uftp.participants", message, signed_xml=signed_xml)
        try:
            payload = transport.unseal_message(message.body, key)
        except TransportException as exc:
            why = "bad signature" if exc.http_status_code == 401 else f"not a UFTP message ({type(exc).__name__})"
            self._refuse(exc.http_status_code, f"{why}: {excerpt(str(exc), 200)}".rstrip(": "), message,
                         signed_xml=signed_xml)
        if payload.sender_domain != message.sender_domain:
            self._refuse(401, f"sender mismatch: envelope {message.sender_domain}, payload {payload.sender_domain}",
                         message, payload, signed_xml)
        if payload.recipient_domain != self.ctx.uftp.domain:
            self._refuse(400, f"misdirected: for {payload.recipient_domain}, this is {self.ctx.uftp.domain}",
                         message, payload, signed_xml)
        if type(payload) not in self.acceptable_messages:
            self._refuse(400, f"an AGR does not take {type(payload).__name__}", message, payload, signed_xml)
        kind = type(payload).__name__
        with self._gate:  # the replay check and the record of acceptance are one step
            return self._admit(message, payload, kind, received, signed_xml)

    def _admit(self, message: SignedMessage, payload, kind: str, received: dt.datetime, signed_xml: str) -> Response:
        replay = self.ctx.log.seen(payload.message_id, payload.sender_domain, kind, payload.conversation_id)
        try:
            age = received - parse_time(payload.time_stamp)
        except (TypeError, ValueError):
            age = dt.timedelta(0)
        if replay is None and age > dt.timedelta(minutes=self.ctx.uftp.max_message_age_min):
            replay = f"its TimeStamp {payload.time_stamp} is older than {self.ctx.uftp.max_message_age_min} min"
        if replay is not None:
            self._refuse(0, f"replay: {replay}", message, payload, signed_xml)
            self.outbound_executor.submit(self._reject, payload, f"Duplicate Identifier: {replay}")
            return Response(status_code=200)
        self.ctx.log.add(direction="in", status="accepted", message_type=kind, sender_domain=payload.sender_domain,
                         sender_role=str(message.sender_role), recipient_domain=payload.recipient_domain,
                         message_id=payload.message_id, conversation_id=payload.conversation_id,
                         signed_xml=signed_xml, payload_xml=transport.to_xml(payload), fields=fields_of(payload),
                         notes={"received_utc": received.isoformat()})
        self.inbound_executor.submit(self._handle, payload, received)
        return Response(status_code=200)

    def _reject(self, payload, reason: str) -> None:
        response_type = request_response_map.get(type(payload))
        if response_type is None:
            return
        fields = {"conversation_id": payload.conversation_id, "result": AcceptedRejected.REJECTED,
                  "rejection_reason": reason, f"{_snake(type(payload).__name__)}_message_id": payload.message_id}
        known = {f.name for f in dataclasses.fields(response_type)}
        response = response_type(**{k: v for k, v in fields.items() if k in known})
        self.ctx.outbound.send(payload.sender_domain, response, reference_id=payload.message_id)

    def _handle(self, payload, received: dt.datetime) -> None:
        try:
            kind = type(payload).__name__
            if kind == "FlexRequest":
                handle_flex_request(self.ctx, payload, received)
            elif kind == "FlexOrder":
                handle_flex_order(self.ctx, payload)
            elif kind == "FlexReservationUpdate":
                handle_reservation_update(self.ctx, payload)
            elif kind == "FlexSettlement":
                self.ctx.outbound.send(payload.sender_domain, FlexSettlementResponse(
                    flex_settlement_message_id=payload.message_id, conversation_id=payload.conversation_id,
                    result=AcceptedRejected.ACCEPTED), reference_id=payload.message_id)
            elif kind == "TestMessage":
                self.ctx.outbound.send(payload.sender_domain, TestMessageResponse(
                    conversation_id=payload.conversation_id), reference_id=payload.message_id)
            # responses (D-PrognosisResponse, FlexOfferResponse, ...) are kept in the log; nothing more to do
        except Exception:  # a handler must not die silently in the executor
            LOG.exception("handling %s %s failed", type(payload).__name__, payload.message_id)

    # the library's abstract handlers: every message goes through _handle instead
    def process_d_prognosis_response(self, message):
        return None

    def process_flex_request(self, message):
        return None

    def process_flex_offer_response(self, message):
        return None

    def process_flex_offer_revocation_response(self, message):
        return None

    def process_flex_order(self, message):
        return None

    def process_flex_reservation_update(self, message):
        return None

    def process_flex_settlement(self, message):
        return None

    def process_metering_response(self, message):
        return None

    def process_agr_portfolio_query_response(self, message):
        return None

    def process_agr_portfolio_update_response(self, message):
        return None
