"""Messages to a DSO: filled, signed with the AGR's key (the library's seal), posted, and logged as sent or failed.

Sending goes through here rather than the library's clients so that the signed XML that left is what the log
keeps. A failure is logged and returned, never raised: the caller decides whether it matters."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass

import httpx
from shapeshifter_uftp import transport
from shapeshifter_uftp.uftp import PayloadMessage, SignedMessage, UsefRole

from flexopt.config.redaction import excerpt
from flexopt.config.uftp import Uftp
from flexopt.uftp.log import MessageLog

LOG = logging.getLogger("flexopt.uftp")
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Sent:
    ok: bool
    message_id: str
    reason: str = ""


def fields_of(message: PayloadMessage) -> dict:
    """The parsed fields of a message as JSON data (the library's own JSON form)."""
    return json.loads(transport.to_json(message))


class Outbound:
    def __init__(self, uftp: Uftp, signing_key: str, log: MessageLog, version: str = "3.1.0") -> None:
        self.uftp, self._key, self.log, self.version = uftp, signing_key, log, version

    def send(self, recipient: str, message: PayloadMessage, *, reference_id: str = "",
             notes: dict | None = None) -> Sent:
        participant = self.uftp.participant(recipient)
        message.version = message.version or self.version
        message.sender_domain = self.uftp.domain
        message.recipient_domain = recipient
        message.time_stamp = message.time_stamp or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        message.message_id = message.message_id or str(uuid.uuid4())
        message.conversation_id = message.conversation_id or str(uuid.uuid4())
        kind = type(message).__name__
        payload_xml = transport.to_xml(message)
        signed = SignedMessage(sender_domain=self.uftp.domain, sender_role=UsefRole.AGR,
                               body=transport.seal_message(message, self._key))
        signed_xml = transport.to_xml(signed)
        reason = ""
        if participant is None:
            reason = f"{recipient} is not a participant in uftp.participants"
        else:
            try:
                response = httpx.post(participant.endpoint, content=signed_xml.encode("utf-8"), timeout=TIMEOUT_S,
                                      headers={"Content-Type": "text/xml; charset=utf-8"})
                if response.status_code != 200:
                    reason = f"HTTP {response.status_code} from {participant.endpoint}: {excerpt(response.text, 200)}"
            except httpx.HTTPError as exc:
                reason = f"cannot reach {participant.endpoint}: {type(exc).__name__}: {excerpt(str(exc), 200)}"
        status = "failed" if reason else "sent"
        self.log.add(direction="out", status=status, reason=reason, message_type=kind,
                     sender_domain=self.uftp.domain, sender_role="AGR", recipient_domain=recipient,
                     message_id=message.message_id, conversation_id=message.conversation_id,
                     reference_id=reference_id, signed_xml=signed_xml, payload_xml=payload_xml,
                     fields=fields_of(message), notes=notes)
        if reason:
            LOG.warning("UFTP %s %s to %s not delivered: %s", kind, message.message_id, recipient, reason)
        else:
            LOG.info("UFTP %s %s sent to %s", kind, message.message_id, recipient)
        return Sent(not reason, message.message_id, reason)
