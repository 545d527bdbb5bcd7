"""flexopt's OCPP central system (CSMS): one websockets server for OCPP 1.6 and 2.0.1 chargers.

It accepts the charge points it expects, each authenticated as its security profile says (``ocpp_auth``:
HTTP Basic, over TLS, or a TLS client certificate; none only where the portfolio says so), answers their
BootNotification, Heartbeat, StatusNotification, MeterValues, Start/StopTransaction and
TransactionEvent, keeps each connector's state, and sends charging profiles on request.
OCPP adapters (one per charger connector) share one CentralSystem.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import ssl
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action as A16
from ocpp.v16.enums import AuthorizationStatus, RegistrationStatus
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call_result as r201
from ocpp.v201.enums import Action as A201
from ocpp.v201.enums import AuthorizationStatusEnumType, RegistrationStatusEnumType
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from flexopt.adapters import ocpp_state
from flexopt.adapters.base import SessionService
from flexopt.adapters.ocpp_auth import REFUSED, UNKNOWN, ChargerAuth, charger_id, server_tls_context
from flexopt.adapters.ocpp_meter import parse_meter_values
from flexopt.config.endpoints import OcppCentralSystem

log = logging.getLogger("flexopt.adapters.ocpp")

SUBPROTOCOLS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
SAVE_DELAY_S = 0.5  # state changes within this are written to the store once
PLUGGED = {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Occupied"}
UNAVAILABLE = {"Unavailable", "Faulted"}


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class ConnectorState:
    """What a connector (1.6) or EVSE (2.0.1) last told us; powers in W, energy in Wh."""

    status: str | None = None
    error_code: str | None = None
    transaction_id: int | str | None = None
    # 1.6: time.monotonic() when we assigned the transaction id; the charger learns it from our answer, a moment
    # later (in 2.0.1 the charger picks the id itself)
    transaction_assigned_at: float | None = None
    charging_state: str | None = None  # 2.0.1 TransactionEvent chargingState
    ended_transaction_id: int | str | None = None  # the last one that ended: a late message never revives it
    meter_start_wh: float | None = None
    session_energy_wh: float | None = None
    readings: dict[str, float] = field(default_factory=dict)
    updated_at: dt.datetime | None = None

    @property
    def plugged(self) -> bool | None:
        if self.status is None and self.transaction_id is None:
            return None
        return self.status in PLUGGED or self.transaction_id is not None

    @property
    def charging(self) -> bool:
        if self.charging_state is not None:
            return self.charging_state == "Charging"
        return self.status == "Charging"


@dataclass
class ChargerState:
    charge_point_id: str
    version: str
    connected: bool = False
    booted: bool = False  # it booted with us, in this process or (from the store) an earlier one
    heard: bool = False  # it sent something since it last connected
    vendor: str = ""
    model: str = ""
    connected_at: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    messages: int = 0  # calls received from the charger since flexopt started
    max_periods: int | None = None  # ChargingScheduleMaxPeriods (1.6) / PeriodsPerSchedule (2.0.1), when read
    limits_asked: bool = False  # asked in this process (a charger that cannot say is not asked every round)
    connectors: dict[int, ConnectorState] = field(default_factory=dict)

    def connector(self, connector_id: int) -> ConnectorState:
        return self.connectors.setdefault(connector_id, ConnectorState())

    def touch(self) -> None:
        self.last_seen = dt.datetime.now(dt.UTC)
        self.messages += 1
        self.heard = True

    @property
    def known(self) -> bool:
        """Registered with us: booted (now or in an earlier process), or talking since it reconnected. A charger
        that only reconnects sends no BootNotification (OCPP boots once per power-up)."""
        return self.booted or self.heard


def _restored(state: ChargerState, saved: dict[str, Any]) -> ChargerState:
    """``state`` (changed in place) as a saved entry says (``ocpp_state.check`` has vouched for its fields)."""
    state.version, state.booted = str(saved.get("version", "1.6")), bool(saved.get("booted"))
    state.vendor, state.model = saved.get("vendor") or "", saved.get("model") or ""
    state.last_seen = ocpp_state.parse_time(saved.get("last_seen"))
    state.max_periods = saved.get("max_periods")
    state.connectors = {int(k): ConnectorState(**ocpp_state.connector_fields(c))
                        for k, c in (saved.get("connectors") or {}).items()}
    return state


class _Csms16(Cp16):
    """Central-system side of one OCPP 1.6 connection."""

    def __init__(self, cp_id: str, ws: ServerConnection, state: ChargerState, central: CentralSystem) -> None:
        super().__init__(cp_id, ws, response_timeout=central.response_timeout_s)
        self.state, self.central = state, central

    @on(A16.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any):
        self.state.touch()
        self.state.booted, self.state.vendor, self.state.model = True, charge_point_vendor, charge_point_model
        self.central._changed(persist=True)
        return r16.BootNotification(
            current_time=_now_iso(), interval=self.central.heartbeat_interval_s, status=RegistrationStatus.accepted
        )

    @on(A16.heartbeat)
    def on_heartbeat(self, **_: Any):
        self.state.touch()
        return r16.Heartbeat(current_time=_now_iso())

    @on(A16.status_notification)
    def on_status(self, connector_id: int, error_code: str, status: str, **_: Any):
        self.state.touch()
        c = self.state.connector(connector_id)
        c.status, c.error_code, c.updated_at = status, error_code, dt.datetime.now(dt.UTC)
        self.central._changed(persist=True)
        return r16.StatusNotification()

    @on(A16.authorize)
    def on_authorize(self, id_tag: str, **_: Any):
        return r16.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(A16.start_transaction)
    def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any):
        self.state.touch()
        c = self.state.connector(connector_id)
        c.transaction_id = self.central._next_transaction_id()
        c.transaction_assigned_at = time.monotonic()
        c.meter_start_wh, c.session_energy_wh = float(meter_start), 0.0
        c.readings["energy_wh"] = float(meter_start)
        self.central._changed()
        self.central.save_state()  # now, before the answer: the id is never handed out twice
        return r16.StartTransaction(
            transaction_id=c.transaction_id, id_tag_info={"status": AuthorizationStatus.accepted}
        )

    @on(A16.stop_transaction)
    def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int, **_: Any):
        self.state.touch()
        for c in self.state.connectors.values():
            if c.transaction_id == transaction_id:
                c.ended_transaction_id = transaction_id
                if c.meter_start_wh is not None:
                    c.session_energy_wh = meter_stop - c.meter_start_wh
                c.transaction_id = None
                c.readings["energy_wh"] = float(meter_stop)
                c.readings["power_w"] = 0.0
        self.central._changed(persist=True)
        return r16.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(A16.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list, transaction_id: int | None = None, **_: Any):
        self.state.touch()
        c = self.state.connector(connector_id)
        c.readings.update(parse_meter_values(meter_value))
        c.updated_at = dt.datetime.now(dt.UTC)
        if (c.transaction_id is None and transaction_id not in (None, c.ended_transaction_id)
                and ocpp_state.valid_transaction_id("1.6", transaction_id)):
            c.transaction_id = transaction_id  # a transaction that started before we knew it
        if c.transaction_id is not None and c.meter_start_wh is not None and "energy_wh" in c.readings:
            c.session_energy_wh = c.readings["energy_wh"] - c.meter_start_wh
        self.central._changed()
        return r16.MeterValues()


class _Csms201(Cp201):
    """Central-system side of one OCPP 2.0.1 connection."""

    def __init__(self, cp_id: str, ws: ServerConnection, state: ChargerState, central: CentralSystem) -> None:
        super().__init__(cp_id, ws, response_timeout=central.response_timeout_s)
        self.state, self.central = state, central

    @on(A201.boot_notification)
    def on_boot(self, charging_station: dict, reason: str, **_: Any):
        self.state.touch()
        self.state.booted = True
        self.state.vendor = charging_station.get("vendor_name", "")
        self.state.model = charging_station.get("model", "")
        self.central._changed(persist=True)
        return r201.BootNotification(
            current_time=_now_iso(),
            interval=self.central.heartbeat_interval_s,
            status=RegistrationStatusEnumType.accepted,
        )

    @on(A201.heartbeat)
    def on_heartbeat(self, **_: Any):
        self.state.touch()
        return r201.Heartbeat(current_time=_now_iso())

    @on(A201.status_notification)
    def on_status(self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any):
        self.state.touch()
        c = self.state.connector(evse_id)
        c.status, c.updated_at = connector_status, dt.datetime.now(dt.UTC)
        self.central._changed(persist=True)
        return r201.StatusNotification()

    @on(A201.authorize)
    def on_authorize(self, id_token: dict, **_: Any):
        return r201.Authorize(id_token_info={"status": AuthorizationStatusEnumType.accepted})

    @on(A201.meter_values)
    def on_meter_values(self, evse_id: int, meter_value: list, **_: Any):
        self.state.touch()
        c = self.state.connector(evse_id)
        c.readings.update(parse_meter_values(meter_value))
        c.updated_at = dt.datetime.now(dt.UTC)
        self.central._changed()
        return r201.MeterValues()

    @on(A201.transaction_event)
    def on_transaction_event(self, event_type: str, timestamp: str, trigger_reason: str, seq_no: int,
                             transaction_info: dict, evse: dict | None = None, meter_value: list | None = None,
                             **_: Any):
        self.state.touch()
        evse_id = (evse or {}).get("id")
        if evse_id is None:  # later events may omit evse: find the transaction
            evse_id = next(
                (k for k, c in self.state.connectors.items() if c.transaction_id == transaction_info["transaction_id"]),
                1,
            )
        c = self.state.connector(evse_id)
        readings = parse_meter_values(meter_value or [])
        c.readings.update(readings)
        c.charging_state = transaction_info.get("charging_state", c.charging_state)
        tx = transaction_info["transaction_id"]
        started = event_type == "Started" or (event_type == "Updated" and c.transaction_id is None
                                              and tx != c.ended_transaction_id)
        if started and not ocpp_state.valid_transaction_id("2.0.1", tx):
            log.warning("%s: transaction id %r is not an OCPP 2.0.1 id (text of 1 to 36 characters): not adopted",
                        self.id, str(tx)[:60])
            started = False
        if started:  # an Updated event of a transaction we did not know: it runs, adopt it
            c.transaction_id = transaction_info["transaction_id"]
            c.meter_start_wh = readings.get("energy_wh", c.readings.get("energy_wh"))
            c.session_energy_wh = 0.0
        if c.meter_start_wh is not None and "energy_wh" in c.readings:
            c.session_energy_wh = c.readings["energy_wh"] - c.meter_start_wh
        if event_type == "Ended":
            c.ended_transaction_id = tx
            c.transaction_id, c.charging_state = None, None
            c.readings["power_w"] = 0.0
        c.updated_at = dt.datetime.now(dt.UTC)
        self.central._changed(persist=started or event_type == "Ended")
        if event_type == "Started":
            return r201.TransactionEvent(id_token_info={"status": AuthorizationStatusEnumType.accepted})
        return r201.TransactionEvent()


class CentralSystem(SessionService):
    """The shared CSMS. ``register()`` the chargers you expect, each with how it authenticates (a
    :class:`~flexopt.adapters.ocpp_auth.ChargerAuth`); any other id or path is refused. ``port=0`` picks a free port.
    Chargers connect at ``<url>/<charge point id>`` (``path`` is what comes before the id). It is the OCPP
    protocol's session service: dispatch builds it with :meth:`for_portfolio` and runs it."""

    alarm_kind = "central_system"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        response_timeout_s: float = 10.0,
        heartbeat_interval_s: int = 300,
        path: str = "/",
    ) -> None:
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.response_timeout_s = response_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.path = path if path.endswith("/") else path + "/"
        self.chargers: dict[str, ChargerState] = {}
        self._expected: dict[str, ChargerAuth] = {}
        self._identified: weakref.WeakKeyDictionary[ServerConnection, str] = weakref.WeakKeyDictionary()
        self._sessions: dict[str, Cp16 | Cp201] = {}
        self._server: Server | None = None
        self._tx = 0
        self._change = asyncio.Event()
        self._config: OcppCentralSystem | None = None
        self._notes: list[str] = []
        self.state_path: Path | None = None  # where chargers' state survives this process (``use_state_dir``)
        self._save_handle: asyncio.TimerHandle | None = None
        # per charger, as of the last read or write of the state file: our own dump (what we changed since) and
        # the file's entry (what another process changed since)
        self._mine: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, dict[str, Any]] = {}

    @classmethod
    def for_portfolio(cls, portfolio: Any) -> CentralSystem:
        """The central system the portfolio's ``ocpp_central_system`` describes (TLS is set up by :meth:`open`)."""
        config = portfolio.ocpp_central_system
        notes = []
        if config is None:  # the loader requires it; a Portfolio built in code may not have it
            config = OcppCentralSystem()
            notes.append(f"no ocpp_central_system in the portfolio: using {config.host}:{config.port}")
        central = cls(config.host, config.port, response_timeout_s=config.response_timeout_s, path=config.path)
        central._config, central._notes = config, notes
        return central

    # --- as dispatch's session service: never raising -----------------------------------------
    def use_state_dir(self, folder: Path) -> None:
        """Keep the chargers' state (booted, transactions, the next 1.6 transaction id) in ``folder`` and start
        from what an earlier process left there (a damaged file is set aside: a problem, not a crash)."""
        self.state_path = Path(folder) / ocpp_state.STATE_FILE
        saved, problems = ocpp_state.read(self.state_path)
        for problem in problems:
            log.warning("%s", problem)
            self._notes.append(problem)
        if saved is not None:
            self._tx = max(self._tx, saved["next_transaction_id"] - 1)
            for cp_id, s in saved["chargers"].items():
                if cp_id not in self.chargers:
                    self.chargers[cp_id] = _restored(ChargerState(cp_id, "1.6"), s)
            self._synced(saved["chargers"])

    def save_state(self) -> None:
        """Write the chargers' state to the store (when there is one); a failure is logged, never raised."""
        self._sync()

    def _sync(self, allocate: bool = False) -> int | None:
        """Merge our chargers into the state file under its lock: a charger we changed since the last sync is
        written as we know it, one only another process changed is taken from the file (when not connected here),
        the others are kept; the next 1.6 transaction id is the larger of ours and the file's. With ``allocate``,
        hand out that id (written before it is returned: no process hands it out again)."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        if self.state_path is None:
            if allocate:
                self._tx = ocpp_state.next_after(self._tx)
                return self._tx
            return None
        taken: list[int] = []
        written: dict[str, Any] = {}

        def change(saved: dict[str, Any] | None) -> dict[str, Any]:
            theirs = saved["chargers"] if saved is not None else {}
            merged = dict(theirs)
            for cp_id, state in self.chargers.items():
                ours = ocpp_state.dump_charger(state)
                if ours != self._mine.get(cp_id) or cp_id not in theirs:
                    merged[cp_id] = ours
                elif theirs[cp_id] != self._seen.get(cp_id) and not self.is_connected(cp_id):
                    _restored(state, theirs[cp_id])
            self._tx = max(self._tx, (saved["next_transaction_id"] if saved is not None else 1) - 1)
            if allocate:
                self._tx = ocpp_state.next_after(self._tx)
                taken.append(self._tx)
            written.update(merged)
            return ocpp_state.dump(ocpp_state.next_after(self._tx), {}) | {"chargers": merged}

        problems = ocpp_state.update(self.state_path, change)
        for problem in problems:
            log.warning("%s", problem)
        if not any(p.startswith("cannot write") for p in problems):
            self._synced(written)
        return taken[0] if taken else None

    def _synced(self, written: dict[str, Any]) -> None:
        """Remember each charger as we hold it and as the file has it, to tell later who changed it."""
        self._mine = {cp_id: ocpp_state.dump_charger(s) for cp_id, s in self.chargers.items()}
        self._seen = json.loads(json.dumps(written))

    async def open(self) -> list[str]:
        """Listen (with TLS when the configuration names a certificate); the problems, none when listening.
        When it cannot listen, the chargers' adapters report them unreachable."""
        problems = list(self._notes)
        try:
            if self._config is not None and self._config.tls_cert_file:
                c = self._config
                self.ssl_context = server_tls_context(c.tls_cert_file, c.tls_key_file, c.tls_client_ca_file)
            await self.start()
        except OSError as exc:  # port taken, certificate unreadable (ssl.SSLError is an OSError)
            self.ssl_context = None
            problems.append(f"cannot listen at {self.host}:{self.port}: {exc}")
        return problems

    async def wait_for_devices(self, endpoints: Sequence[Any], timeout_s: float) -> None:
        """Chargers connect to us: wait until every one of them is connected and known (booted, now or in an
        earlier process, or talking); not when not listening. A charger that only reconnects never boots again."""
        ids = [e.charge_point_id for e in endpoints]
        if self._server is None or not ids:
            return
        await self.wait_for(lambda: all(self.is_connected(i) and self.chargers[i].known for i in ids), timeout_s)

    async def close(self) -> None:
        await self.stop()
        self.save_state()

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
            process_request=self._authorise,
            ssl=self.ssl_context,
            ping_interval=20,
            ping_timeout=20,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> CentralSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Where chargers connect, without their id: ``<url>/<percent-encoded id>``."""
        return f"{'wss' if self.ssl_context else 'ws'}://{self.host}:{self.port}{self.path.rstrip('/')}"

    def register(self, charge_point_id: str, auth: ChargerAuth) -> None:
        """Expect this charger, authenticated as ``auth`` says (registering again replaces it)."""
        self._expected[charge_point_id] = auth

    # --- state --------------------------------------------------------------------------------
    def is_connected(self, charge_point_id: str) -> bool:
        state = self.chargers.get(charge_point_id)
        return state is not None and state.connected and charge_point_id in self._sessions

    async def wait_for(self, predicate, timeout_s: float) -> bool:
        """Wait until predicate() holds; woken by every message a charger sends."""
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    self._change.clear()
                    await self._change.wait()
        except TimeoutError:
            return False
        return True

    def _changed(self, persist: bool = False) -> None:
        """Wake who waits for chargers; with ``persist``, write the state soon (writes within SAVE_DELAY_S are
        one: a fleet booting at once is one write, not hundreds with an fsync each)."""
        self._change.set()
        if persist and self.state_path is not None and self._save_handle is None:
            try:
                self._save_handle = asyncio.get_running_loop().call_later(SAVE_DELAY_S, self._save_later)
            except RuntimeError:  # no loop (never in a handler): at once
                self.save_state()

    def _save_later(self) -> None:
        self._save_handle = None
        self.save_state()

    def _next_transaction_id(self) -> int:
        """A 1.6 transaction id no process sharing the state file handed out before."""
        tx = self._sync(allocate=True)
        assert tx is not None
        return tx

    def session(self, charge_point_id: str) -> Cp16 | Cp201 | None:
        return self._sessions.get(charge_point_id)

    async def call(self, charge_point_id: str, payload: Any) -> Any:
        """Send one CSMS-initiated call; raises ConnectionError when the charger is not connected,
        OCPPError on a CallError, TimeoutError when it does not answer."""
        session = self._sessions.get(charge_point_id)
        if session is None:
            raise ConnectionError(f"charge point {charge_point_id} is not connected")
        try:
            return await session.call(payload, suppress=False)
        except ConnectionClosed as exc:
            raise ConnectionError(f"charge point {charge_point_id} dropped the connection") from exc

    # --- websocket handling -------------------------------------------------------------------
    def _authorise(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the websocket opens: the path names a charger we expect, and the client proves it is that charger
        (its security profile). What was expected is never said, in the answer or the log."""
        cp_id = charger_id(request.path, self.path)
        auth = self._expected.get(cp_id) if cp_id is not None else None
        if cp_id is None or auth is None:
            log.warning("refused a client at %r: no charge point is expected there", request.path[:200])
            return connection.respond(UNKNOWN, "unknown charge point\n")
        ssl_object = connection.transport.get_extra_info("ssl_object")
        peercert = ssl_object.getpeercert() if ssl_object is not None else None
        why = auth.refusal(cp_id, request.headers.get("Authorization"), peercert, ssl_object is not None)
        if why is not None:
            log.warning("refused a client claiming to be charge point %r: %s", cp_id, why)
            response = connection.respond(REFUSED, "not authorised\n")
            if auth.profile in (1, 2):
                response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
            return response
        self._identified[connection] = cp_id
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        cp_id = self._identified.pop(ws, None)
        if cp_id is None:  # never happens: the handshake identified it
            await ws.close(1008, "not identified")
            return
        version = SUBPROTOCOLS.get(ws.subprotocol or "")
        if version is None:
            log.warning("%s offered no supported OCPP subprotocol", cp_id)
            await ws.close(1002, "no supported OCPP subprotocol")
            return
        old = self._sessions.pop(cp_id, None)
        if old is not None:  # a charger that reconnects replaces its stale connection
            with contextlib.suppress(Exception):
                await old._connection.close()
        state = self.chargers.get(cp_id)
        if state is None or state.version != version:
            state = self.chargers[cp_id] = ChargerState(cp_id, version)
        # a known charger stays booted: one that only reconnects sends no new BootNotification
        state.connected, state.heard, state.connected_at = True, False, dt.datetime.now(dt.UTC)
        session = (_Csms16 if version == "1.6" else _Csms201)(cp_id, ws, state, self)
        self._sessions[cp_id] = session
        self._changed()
        log.info("charge point %s connected (OCPP %s)", cp_id, version)
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            if self._sessions.get(cp_id) is session:
                del self._sessions[cp_id]
                state.connected = False
                self._changed()
                log.info("charge point %s disconnected", cp_id)
