"""The AGR's gate against a DSO built with the same library on 127.0.0.1: unknown senders, bad signatures and
replays are refused and logged; a good message is logged as it came."""

from __future__ import annotations

import pytest
from shapeshifter_uftp.exceptions import ClientTransportException
from shapeshifter_uftp.uftp import TestMessage
from uftp_peer import AGR_DOMAIN, DSO_DOMAIN, eventually, flex_request, isp_now

from flexopt.uftp.keys import new_key_pair


def rejected(agr, reason_part: str) -> list:
    return [e for e in agr.ctx.log.entries(direction="in", status="rejected") if reason_part in e.reason]


def test_unknown_sender_is_refused_and_logged(agr):
    private, _public = new_key_pair()
    with pytest.raises(ClientTransportException, match="401"):
        agr.dso.client(signing_key=private, domain="other.grid.test").send_test_message(TestMessage())
    [entry] = rejected(agr, "unknown sender")
    assert entry.sender_domain == "other.grid.test" and "<SignedMessage" in entry.signed_xml
    assert not agr.ctx.log.entries(direction="in", status="accepted")


def test_bad_signature_is_refused_and_logged(agr):
    impostor, _public = new_key_pair()  # the DSO's domain, someone else's key
    with pytest.raises(ClientTransportException, match="401"):
        agr.dso.client(signing_key=impostor).send_test_message(TestMessage())
    [entry] = rejected(agr, "bad signature")
    assert entry.sender_domain == DSO_DOMAIN
    assert not agr.ctx.log.entries(direction="in", status="accepted")


def test_test_message_is_answered_and_both_are_logged(agr):
    agr.dso.client().send_test_message(TestMessage())
    agr.dso.wait_for("TestMessageResponse", timeout_s=20)
    [inbound] = agr.ctx.log.entries(direction="in", status="accepted")
    assert inbound.message_type == "TestMessage" and inbound.fields["SenderDomain"] == DSO_DOMAIN
    assert "TestMessage" in inbound.payload_xml and "<SignedMessage" in inbound.signed_xml
    out = eventually(lambda: agr.ctx.log.entries(direction="out", message_type="TestMessageResponse"))
    assert out and out[0].status == "sent" and out[0].fields["RecipientDomain"] == DSO_DOMAIN


def test_replays_are_refused(agr):
    day, number = isp_now(2)
    request = flex_request(day, number, 1, 10_000)
    conversation = request.conversation_id
    agr.dso.client().send_flex_request(request)
    agr.dso.wait_for("FlexOffer", flex_request_message_id=request.message_id)
    # the same message again (same id), then a new id in the same conversation
    again = flex_request(day, number, 1, 10_000, conversation=conversation)
    again.message_id = request.message_id
    agr.dso.client().send_flex_request(again)
    response = agr.dso.wait_for("FlexRequestResponse", flex_request_message_id=request.message_id,
                                result="Rejected")
    assert "Duplicate Identifier" in response.rejection_reason
    same_conversation = flex_request(day, number, 1, 10_000, conversation=conversation)
    agr.dso.client().send_flex_request(same_conversation)
    response = agr.dso.wait_for("FlexRequestResponse", flex_request_message_id=same_conversation.message_id)
    assert response.result == "Rejected" and "conversation" in response.rejection_reason
    assert len(eventually(lambda: len(rejected(agr, "replay")) == 2 and rejected(agr, "replay"))) == 2
    assert len(agr.ctx.log.entries(direction="out", message_type="FlexOffer")) == 1  # one offer, not three
    assert agr.ctx.log.entries(direction="in", status="accepted")[0].fields["RecipientDomain"] == AGR_DOMAIN


def test_a_body_that_is_not_a_signed_message_is_refused_and_logged(agr):
    import httpx

    response = httpx.post(agr.dso.agr_endpoint, content=b"<nonsense/>", headers={"Content-Type": "text/xml"})
    assert response.status_code == 400
    [entry] = eventually(lambda: rejected(agr, "not a SignedMessage"))
    assert entry.signed_xml == "<nonsense/>"
    private, _public = new_key_pair()
    with pytest.raises(ClientTransportException, match="401"):  # refused by the gate: logged once, not twice
        agr.dso.client(signing_key=private, domain="other.grid.test").send_test_message(TestMessage())
    assert len(agr.ctx.log.entries(direction="in", status="rejected")) == 2
