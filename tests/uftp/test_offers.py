"""FlexRequest -> FlexOffer priced by the MILP: a price-volume curve of options, partial offers where the devices
cannot do all, and a rejection that says why where nothing can be offered; always before the deadline."""

from __future__ import annotations

import datetime as dt

from uftp_peer import eventually, flex_request, isp_now


def _offer(agr, request):
    agr.dso.client().send_flex_request(request)
    response = agr.dso.wait_for("FlexRequestResponse", flex_request_message_id=request.message_id)
    offer = agr.dso.wait_for("FlexOffer", flex_request_message_id=request.message_id) \
        if response.result == "Accepted" else None
    return response, offer


def test_a_cap_is_offered_as_a_price_volume_curve(agr):
    """Each option asks a share of the change from the reference schedule (the baseline) to the DSO's cap, in every
    requested ISP where the baseline is above it. The baseline is read from the offer's log entry: the point's
    30 kW load, unless the reference schedule already moves the battery there (it may, free of cost, near the end
    of its horizon: a request sent late in the evening)."""
    day, first = isp_now(2, span=2)
    sent = dt.datetime.now(dt.UTC)
    request = flex_request(day, first, 2, 10_000, expires_s=120)  # the point draws 30 kW: cap it at 10 kW
    response, offer = _offer(agr, request)
    assert response.result == "Accepted", response.rejection_reason
    assert dt.datetime.now(dt.UTC) < dt.datetime.fromisoformat(request.expiration_date_time)
    assert offer.congestion_point == request.congestion_point and offer.conversation_id == request.conversation_id
    entry = eventually(lambda: agr.ctx.log.entries(direction="out", message_type="FlexOffer"))[0]
    notes = entry.notes
    assert notes["point_id"] == "CP-NORTH" and len(notes["options"]) == len(offer.offer_options) >= 1
    for sent_option, record in zip(offer.offer_options, notes["options"], strict=True):
        capped = [i for i in record["isps"] if i["baseline_kw"] > 10.0 + 1e-6]
        assert capped and [i["number"] for i in record["isps"]] == [i.start for i in sent_option.isps]
        assert {i["number"] for i in capped} <= {first, first + 1}
        for isp, wire in zip(record["isps"], sent_option.isps, strict=True):
            asked = isp["baseline_kw"] + record["fraction"] * (10.0 - isp["baseline_kw"])
            assert isp["net_kw"] <= asked + 1e-3 and isp["max_import_kw"] <= asked + 1e-3
            assert wire.power == round(1000 * isp["delta_kw"])
        assert float(sent_option.price) == round(max(record["cost_eur"], 0) * 1.1 + 5, 4)
    assert 5 <= offer.offer_options[0].price <= offer.offer_options[-1].price  # the margin, plus moving more
    isps = notes["options"][0]["isps"]
    if len(isps) == 2 and all(i["baseline_kw"] > 29 for i in isps):  # the battery idle in the reference
        half, full = offer.offer_options
        assert [(i.start, i.power) for i in half.isps] == [(first, -10_000), (first + 1, -10_000)]
        assert [(i.start, i.power) for i in full.isps] == [(first, -20_000), (first + 1, -20_000)]
        assert all(i["max_import_kw"] == 10.0 for i in notes["options"][1]["isps"])
    assert notes["answer_s"] < (dt.datetime.fromisoformat(request.expiration_date_time) - sent).total_seconds()


def test_more_than_the_devices_can_do_is_offered_partially(agr):
    day, first = isp_now(2)
    request = flex_request(day, first, 1, -100_000)  # export 100 kW: the 50 kW battery gets the point to -20 kW
    response, offer = _offer(agr, request)
    assert response.result == "Accepted", response.rejection_reason
    [option] = offer.offer_options  # half the change (to -35 kW) is already more than the battery can do
    assert option.isps[0].power == -50_000  # from 30 kW to -20 kW: the battery at full discharge
    [record] = eventually(lambda: agr.ctx.log.entries(direction="out", message_type="FlexOffer"))[0].notes["options"]
    assert record["partial"] and abs(record["shortfall_kw"] - 15) < 1e-6
    assert abs(record["isps"][0]["max_import_kw"] + 20.0) < 1e-4  # an order binds what can be delivered


def test_nothing_to_offer_is_said(agr):
    day, first = isp_now(2)
    response, _ = _offer(agr, flex_request(day, first, 1, 100_000))  # 30 kW is already below 100 kW
    assert response.result == "Rejected" and "already keeps" in response.rejection_reason
    response, _ = _offer(agr, flex_request(day, first, 1, 10_000, entity="ean.000000000000123"))
    assert response.result == "Rejected" and "Invalid Congestion Point" in response.rejection_reason
    response, _ = _offer(agr, flex_request(day, first, 1, 10_000, expires_s=1))
    assert response.result == "Rejected" and "expires" in response.rejection_reason
    day, last = isp_now(-1)
    response, _ = _offer(agr, flex_request(day, last, 1, 10_000))
    assert response.result == "Rejected" and "reschedule" in response.rejection_reason


def test_a_request_that_cannot_be_priced_is_answered_with_why(agr):
    agr.ctx.ledger.parent.mkdir(parents=True, exist_ok=True)
    agr.ctx.ledger.write_text("{damaged\n")  # every solve reads the orders in force: this one cannot
    day, first = isp_now(2)
    response, _ = _offer(agr, flex_request(day, first, 1, 10_000))
    assert response.result == "Rejected"
    assert "could not price" in response.rejection_reason and "line 1 is not JSON" in response.rejection_reason


def test_an_expired_offer_cannot_be_ordered(agr):
    from shapeshifter_uftp.uftp import FlexOrder, FlexOrderISP
    from uftp_peer import ENTITY, TZ, new_id
    from xsdata.models.datatype import XmlDate

    day, first = isp_now(2)
    request = flex_request(day, first, 1, 10_000, expires_s=60)
    _response, offer = _offer(agr, request)
    option = offer.offer_options[0]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    agr.ctx.now = lambda: later  # the offer expired with the request
    order = FlexOrder(
        flex_offer_message_id=offer.message_id, conversation_id=offer.conversation_id, isp_duration="PT15M",
        time_zone=TZ, period=XmlDate(day.year, day.month, day.day), congestion_point=ENTITY,
        isps=[FlexOrderISP(power=i.power, start=i.start, duration=i.duration) for i in option.isps],
        price=option.price, currency="EUR", order_reference="O-2", option_reference=option.option_reference,
        message_id=new_id())
    agr.dso.client().send_flex_order(order)
    response = agr.dso.wait_for("FlexOrderResponse", flex_order_message_id=order.message_id)
    assert response.result == "Rejected" and "Expired" in response.rejection_reason
    assert not agr.ctx.ledger.exists()


def test_a_revoked_offer_cannot_be_ordered(agr):
    from shapeshifter_uftp.uftp import FlexOrder, FlexOrderISP
    from typer.testing import CliRunner
    from uftp_peer import ENTITY, TZ, new_id
    from xsdata.models.datatype import XmlDate

    from flexopt.cli import app

    day, first = isp_now(2)
    _response, offer = _offer(agr, flex_request(day, first, 1, 10_000))
    eventually(lambda: agr.ctx.log.entries(direction="out", message_type="FlexOffer"))
    args = ["uftp", "revoke-offer", str(agr.path), "--offer", offer.message_id, "--store", str(agr.store)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    revocation = agr.dso.wait_for("FlexOfferRevocation")
    assert revocation.flex_offer_message_id == offer.message_id
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "already revoked" in res.output
    option = offer.offer_options[0]
    order = FlexOrder(
        flex_offer_message_id=offer.message_id, conversation_id=offer.conversation_id, isp_duration="PT15M",
        time_zone=TZ, period=XmlDate(day.year, day.month, day.day), congestion_point=ENTITY,
        isps=[FlexOrderISP(power=i.power, start=i.start, duration=i.duration) for i in option.isps],
        price=option.price, currency="EUR", order_reference="O-3", option_reference=option.option_reference,
        message_id=new_id())
    agr.dso.client().send_flex_order(order)
    response = agr.dso.wait_for("FlexOrderResponse", flex_order_message_id=order.message_id)
    assert response.result == "Rejected" and "Revoked" in response.rejection_reason
