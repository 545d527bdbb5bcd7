"""Helpers of the UFTP tests. A DSO participant built with shapeshifter-uftp itself, on 127.0.0.1: it sends
requests and orders with the library's client and collects what flexopt sends back with the library's service
(which verifies flexopt's signatures)."""

from __future__ import annotations

import datetime as dt
import queue
import time
import uuid
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from shapeshifter_uftp import ShapeshifterDsoAgrClient, ShapeshifterDsoService
from shapeshifter_uftp.uftp import FlexRequest, FlexRequestISP
from xsdata.models.datatype import XmlDate

from flexopt.adapters.sim.util import free_port

DSO_DOMAIN = "dso.grid.test"
AGR_DOMAIN = "agr.flexopt.test"
PATH = "/shapeshifter/api/v3/message"


class CollectingDso(ShapeshifterDsoService):
    """Every message flexopt sends, in a queue, typed."""

    def __init__(self, inbox: queue.Queue, agr_public_key: str, agr_endpoint: str, **kw) -> None:
        self.inbox = inbox
        self._agr = (agr_public_key, agr_endpoint)
        super().__init__(key_lookup_function=lambda d, r: self._agr[0] if d == AGR_DOMAIN else None,
                         endpoint_lookup_function=lambda d, r: self._agr[1] if d == AGR_DOMAIN else None, **kw)

    def _put(self, message):
        self.inbox.put(message)

    process_d_prognosis = _put
    process_flex_request_response = _put
    process_flex_offer = _put
    process_flex_order_response = _put
    process_flex_offer_revocation = _put
    process_flex_reservation_update_response = _put
    process_flex_settlement_response = _put
    process_dso_portfolio_query_response = _put
    process_dso_portfolio_update_response = _put
    process_metering = _put
    process_test_message_response = _put


@dataclass
class Dso:
    private_key: str
    public_key: str
    agr_public_key: str
    agr_port: int
    port: int = field(default_factory=free_port)
    inbox: queue.Queue = field(default_factory=queue.Queue)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    @property
    def agr_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.agr_port}{PATH}"

    def start(self) -> Dso:
        self.service = CollectingDso(self.inbox, self.agr_public_key, self.agr_endpoint, sender_domain=DSO_DOMAIN,
                                     signing_key=self.private_key, host="127.0.0.1", port=self.port, path=PATH)
        self.service.run_in_thread()
        return self

    def stop(self) -> None:
        self.service.stop()

    def client(self, signing_key: str | None = None, domain: str = DSO_DOMAIN) -> ShapeshifterDsoAgrClient:
        return ShapeshifterDsoAgrClient(sender_domain=domain, signing_key=signing_key or self.private_key,
                                        recipient_domain=AGR_DOMAIN, recipient_endpoint=self.agr_endpoint,
                                        recipient_signing_key=self.agr_public_key)

    def wait_for(self, kind: str, timeout_s: float = 60.0, **match):
        """The next message of type ``kind`` (others are kept in ``seen``) whose attributes equal ``match``."""
        deadline = time.monotonic() + timeout_s
        self.seen = getattr(self, "seen", [])
        for m in list(self.seen):
            if type(m).__name__ == kind and all(getattr(m, k) == v for k, v in match.items()):
                self.seen.remove(m)
                return m
        while time.monotonic() < deadline:
            try:
                m = self.inbox.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            if type(m).__name__ == kind and all(getattr(m, k) == v for k, v in match.items()):
                return m
            self.seen.append(m)
        got = [type(m).__name__ for m in self.seen]
        raise AssertionError(f"no {kind} {match} from flexopt within {timeout_s} s; got {got}")


def new_id() -> str:
    return str(uuid.uuid4())


# --- the aggregator side -----------------------------------------------------------------------




TZ = "Europe/Madrid"
ENTITY = "ean.871685900012345678"
POINT = "CP-NORTH"
KEY_ENV = "FLEXOPT_TEST_UFTP_KEY"


def portfolio_dict(agr_port: int, dso: Dso, iec_port: int) -> dict:
    """A battery (IEC 104, simulated in the end-to-end test) and a 30 kW load behind one congestion point;
    import prices are higher in the evening so that moving energy has a price."""
    return {
        "portfolio": {"name": "uftp-test", "timezone": TZ, "resolution_min": 15},
        "tariff": {"import_price_eur_per_kwh": 0.2, "export_price_eur_per_kwh": 0.05},
        "congestion_points": [{"id": POINT, "name": "north feeder"}],
        "sites": [{
            "id": "site1", "congestion_point": POINT,
            "assets": [
                {"id": "bess", "type": "battery", "power_kw": 50, "energy_kwh": 100, "initial_soc_pct": 50,
                 "endpoint": {"protocol": "iec104", "host": "127.0.0.1", "port": iec_port,
                              "command_timeout_ms": 1000,
                              "points": {"setpoint_ioa": 5001, "active_power_ioa": 1001, "soc_ioa": 1004,
                                         "availability_ioa": 2001}}},
                {"id": "site-load", "type": "load", "power_kw": 30},
            ],
        }],
        "uftp": {
            "domain": AGR_DOMAIN, "signing_key_env": KEY_ENV, "listen": f"127.0.0.1:{agr_port}",
            "participants": [{"domain": DSO_DOMAIN, "role": "DSO", "endpoint": dso.endpoint,
                              "public_key": dso.public_key}],
            "congestion_points": {ENTITY: POINT},
            "offers": {"margin_eur": 5.0, "margin_pct": 10, "option_fractions": [0.5, 1.0], "min_solve_s": 0.5},
        },
    }


def isp_now(offset: int = 0, span: int = 1) -> tuple[dt.date, int]:
    """(local day, ISP number) of the ISP ``offset`` after the current one; when ``span`` ISPs from there would run
    past the local day (a request names one day), the next day's first ISP."""
    from flexopt.uftp.isp import ISP, isp_number, isps_in_day

    now = dt.datetime.now(dt.UTC) + offset * ISP
    day = now.astimezone(ZoneInfo(TZ)).date()
    number = isp_number(day, TZ, now)
    if number + span - 1 > isps_in_day(day, TZ):
        return day + dt.timedelta(days=1), 1
    return day, number




def eventually(probe, timeout_s: float = 20.0):
    """``probe()`` once it is truthy (the AGR logs a message just after the peer received it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def flex_request(day: dt.date, first: int, count: int, max_w: int, expires_s: float = 120.0,
                 conversation: str | None = None, min_w: int = -10_000_000, entity: str = ENTITY) -> FlexRequest:
    return FlexRequest(
        isp_duration="PT15M", time_zone=TZ, period=XmlDate(day.year, day.month, day.day), congestion_point=entity,
        revision=1, conversation_id=conversation or new_id(), message_id=new_id(),
        expiration_date_time=(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_s)).isoformat(timespec="seconds"),
        isps=[FlexRequestISP(disposition="Requested", min_power=min_w, max_power=max_w, start=first,
                             duration=count)])
