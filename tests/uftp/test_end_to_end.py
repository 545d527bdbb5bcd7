"""End to end against a DSO built with shapeshifter-uftp and a simulated battery (IEC 104), all on 127.0.0.1:
request -> offer -> order -> an intraday schedule that keeps the ordered limit (`flexopt check`) -> dispatch ->
settlement from telemetry showing the delivered change; then the DSO releases the ISP and the limit is lifted."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from pathlib import Path

import pandas as pd
from shapeshifter_uftp.uftp import FlexOrder, FlexOrderISP, FlexReservationUpdate, FlexReservationUpdateISP
from typer.testing import CliRunner
from uftp_peer import ENTITY, TZ, eventually, flex_request, new_id
from xsdata.models.datatype import XmlDate

from flexopt.adapters.sim.portfolio_sim import PortfolioSimulation
from flexopt.cli import app
from flexopt.data.limit_ledger import active_orders, read_events
from flexopt.uftp.isp import ISP, isp_number


class SimThread:
    """The portfolio's simulators on their own event loop (the dispatch command runs its own)."""

    def __init__(self, portfolio) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = PortfolioSimulation(portfolio)
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(20)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def current_isp_with_time_left(min_left_s: float = 60.0) -> dt.datetime:
    """The start (UTC) of the ISP we are in, waiting for the next one when too little of it is left."""
    now = dt.datetime.now(dt.UTC)
    start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    if (start + ISP - now).total_seconds() < min_left_s:
        time.sleep((start + ISP - now).total_seconds() + 1)
        start += ISP
    return start


def test_request_offer_order_schedule_dispatch_settle_release(agr, tmp_path):
    sims = SimThread(agr.ctx.loaded.portfolio)
    try:
        isp_start = current_isp_with_time_left()
        agr.ctx.now = lambda: isp_start - dt.timedelta(seconds=1)  # flexopt may still reschedule this ISP
        day = isp_start.astimezone(agr.ctx.loaded.portfolio.tz).date()
        number = isp_number(day, TZ, isp_start)

        # request: cap the point (30 kW load, idle battery) at 10 kW in this ISP
        request = flex_request(day, number, 1, 10_000)
        agr.dso.client().send_flex_request(request)
        offer = agr.dso.wait_for("FlexOffer", flex_request_message_id=request.message_id)
        full = offer.offer_options[-1]
        assert [(i.start, i.power) for i in full.isps] == [(number, -20_000)]

        # order the whole change, ISPs copied from the offer
        order = FlexOrder(
            flex_offer_message_id=offer.message_id, conversation_id=offer.conversation_id, isp_duration="PT15M",
            time_zone=TZ, period=XmlDate(day.year, day.month, day.day), congestion_point=ENTITY,
            isps=[FlexOrderISP(power=i.power, start=i.start, duration=i.duration) for i in full.isps],
            price=full.price, currency="EUR", order_reference="DSO-ORDER-1", option_reference=full.option_reference,
            contract_id="C-1", message_id=new_id())
        agr.dso.client().send_flex_order(order)
        response = agr.dso.wait_for("FlexOrderResponse", timeout_s=90, flex_order_message_id=order.message_id)
        assert response.result == "Accepted", response.rejection_reason
        [binding] = active_orders(agr.ctx.ledger).values()
        assert binding["windows"][0]["max_import_kw"] == 10.0 and binding["order_reference"] == "DSO-ORDER-1"
        scheduled = eventually(lambda: agr.ctx.log.entries(message_type="FlexOrder", status="scheduled"))
        run = Path(scheduled[0].notes["run"])
        assert run.parent.name == "intraday" and (run / "limit_windows.csv").is_file()
        # the D-Prognosis of the new plan reached the DSO
        prognosis = agr.dso.wait_for("DPrognosis")
        assert any(i.start == number and abs(i.power - 10_000) <= 5 for i in prognosis.isps), prognosis.isps

        # the schedule keeps the limit, and the independent checker agrees
        sites = pd.read_parquet(run / "sites.parquet")
        point = sites[(sites["level"] == "congestion_point") & (sites["interval_start"] == pd.Timestamp(isp_start))]
        assert float(point["net_kw"].iloc[0]) <= 10.0 + 1e-4
        assert float(point["import_limit_kw"].iloc[0]) == 10.0
        res = CliRunner().invoke(app, ["check", str(agr.path), str(run)])
        assert res.exit_code == 0, res.output

        # dispatch follows the new run: the battery discharges 20 kW
        res = CliRunner().invoke(app, ["dispatch", str(agr.path), "--store", str(agr.store), "--once",
                                       "--settle-s", "1", "--connect-wait-s", "10"])
        assert res.exit_code == 0, res.output
        record = json.loads(sorted((agr.store / "uftp-test" / day.isoformat() / "dispatch").glob("*.json"))[-1]
                            .read_text())
        assert record["schedule"]["version"] == run.name and record["schedule"]["kind"] == "intraday"
        assert abs(record["assets"]["bess"]["command"]["sent"] + 20.0) < 1e-3, record["assets"]["bess"]

        # settlement: 30 kW load + battery at -20 kW measured against the 30 kW baseline
        res = CliRunner().invoke(app, ["uftp", "settle", str(agr.path), "--date", day.isoformat(),
                                       "--store", str(agr.store)])
        assert res.exit_code == 0, res.output
        [folder] = (agr.store / "uftp-test" / day.isoformat() / "uftp-settlement").glob("v*")
        settled = pd.read_parquet(folder / "settlement.parquet")
        [row] = settled.to_dict("records")
        assert row["status"] == "measured", (row, record["assets"]["bess"])
        assert abs(row["baseline_kw"] - 30.0) < 1e-3 and abs(row["ordered_flex_kw"] + 20.0) < 1e-3, row
        assert abs(row["delivered_flex_kw"] + 20.0) < 0.5 and row["deficiency_kw"] < 0.5, (row, res.output)
        assert (folder / "settlement.csv").is_file()
        metering = agr.dso.wait_for("Metering")
        assert metering.ean == "E871685900012345678" and abs(float(metering.profiles[0].isps[0].value) - 10) < 0.5

        # the DSO releases the ISP: the order's limit is lifted and the portfolio rescheduled without it
        release = FlexReservationUpdate(
            isp_duration="PT15M", time_zone=TZ, period=XmlDate(day.year, day.month, day.day),
            congestion_point=ENTITY, contract_id="C-1", reference="R-1", message_id=new_id(),
            isps=[FlexReservationUpdateISP(power=0, start=number, duration=1)])
        agr.dso.client().send_flex_reservation_update(release)
        response = agr.dso.wait_for("FlexReservationUpdateResponse", timeout_s=90,
                                    flex_reservation_update_message_id=release.message_id)
        assert response.result == "Accepted", response.rejection_reason
        assert not active_orders(agr.ctx.ledger) and [e["event"] for e in read_events(agr.ctx.ledger)] == [
            "order", "revoke"]
        released = eventually(lambda: agr.ctx.log.entries(message_type="FlexReservationUpdate", status="released"))
        again = Path(released[0].notes["run"])
        assert again != run and not (again / "limit_windows.csv").exists()
    finally:
        sims.close()


def test_an_order_that_does_not_match_its_offer_is_rejected(agr):
    day = dt.datetime.now(dt.UTC).astimezone(agr.ctx.loaded.portfolio.tz).date()
    order = FlexOrder(
        flex_offer_message_id=new_id(), isp_duration="PT15M", time_zone=TZ,
        period=XmlDate(day.year, day.month, day.day), congestion_point=ENTITY,
        isps=[FlexOrderISP(power=-20_000, start=1, duration=1)], price=1, currency="EUR", order_reference="X",
        message_id=new_id())
    agr.dso.client().send_flex_order(order)
    response = agr.dso.wait_for("FlexOrderResponse", flex_order_message_id=order.message_id)
    assert response.result == "Rejected" and "Unknown Reference" in response.rejection_reason
    assert not agr.ctx.ledger.exists()
