"""The c104 side of an IEC 60870-5-104 connection, run only inside its supervised child process
(``flexopt.adapters.iec104_worker``): c104 2.2.1 can crash its process with SIGSEGV when a device accepts the TCP
connection and closes it, so dispatch never loads it (``flexopt.adapters.iec104_adapter`` speaks to this over a pipe).

An active-power setpoint (C_SE_NC_1) and measured P, Q, V, SoC, availability, read by interrogating the station's
own common address (not the broadcast address). c104 2.2.1 races, handled as measured on loopback (see
/work/shared/notes/protocols.md): a connection stuck in OPEN_MUTED is unmuted; transmit() returning False is not
trusted on its own: the raw ACTCON (positive or negative) and the P read-back decide. c104 reconnects by itself;
calls wait a bounded time for the link to come back.
"""

# No "from __future__ import annotations": c104 checks callback annotations as real types.

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import c104

from flexopt.adapters.base import AdapterError, CommandStatus
from flexopt.config.endpoints import Iec104Endpoint

C_SE_NC_1 = 50
COT_ACTCON = 7
# the causes of a negative answer that name what the RTU did not know (IEC 60870-5-101 7.2.3)
COT_NEGATIVE = {44: "unknown type", 45: "unknown cause of transmission", 46: "unknown common address",
                47: "unknown information object address"}
_MEASURED = {
    "active_power_kw": "active_power_ioa",
    "reactive_power_kvar": "reactive_power_ioa",
    "voltage_v": "voltage_ioa",
    "soc_pct": "soc_ioa",
    "available": "availability_ioa",
}
QUANTITY = {"active_power_kw": "active_power", "reactive_power_kvar": "reactive_power", "voltage_v": "voltage",
            "soc_pct": "soc"}


@dataclass
class _Seen:
    value: float | bool
    good: bool
    at: float  # time.monotonic() when received


def parse_actcon(apdu: bytes) -> tuple[int, int, bool, int] | None:
    """(common address, IOA, negative, cause) of the RTU's answer to a C_SE_NC_1 in an I-frame: an activation
    confirmation (negative when its P/N bit is set) or a mirror with cause 44-47 (unknown type, cause, common
    address or IOA), which is always negative."""
    if len(apdu) < 15 or apdu[0] != 0x68 or apdu[2] & 0x01:  # too short, or an S/U frame
        return None
    asdu = apdu[6:]
    cot = asdu[2] & 0x3F
    if asdu[0] != C_SE_NC_1 or (cot != COT_ACTCON and cot not in COT_NEGATIVE):
        return None
    negative = bool(asdu[2] & 0x40) or cot in COT_NEGATIVE
    ca = asdu[4] | asdu[5] << 8
    ioa = asdu[6] | asdu[7] << 8 | asdu[8] << 16
    return ca, ioa, negative, cot


class Iec104Link:
    """One c104 client connection to an RTU or gateway (host:port) and the stations (common addresses) behind it,
    added with :meth:`add`; every call names its station. Calls raise :class:`AdapterError` with a status;
    ``on_state`` hears every connection state change (by name), from c104's threads."""

    def __init__(self, endpoint: Iec104Endpoint, link_wait_s: float = 2.0,
                 on_state: Callable[[str], None] | None = None) -> None:
        self.endpoints: dict[int, Iec104Endpoint] = {endpoint.common_address: endpoint}
        self.host, self.port = endpoint.host, endpoint.port
        self.command_timeout_ms = endpoint.command_timeout_ms
        self.on_state = on_state
        self.link_wait_s = link_wait_s
        self._client: c104.Client | None = None
        self._conn: c104.Connection | None = None
        self._points: dict[int, dict[str, c104.Point]] = {}  # CA -> name -> point
        self._seen: dict[tuple[int, int], _Seen] = {}  # (CA, IOA)
        self._actcon: dict[tuple[int, int], tuple[bool, int, float]] = {}  # (CA, IOA) -> (negative, cause, at)
        self._lock = threading.Lock()  # c104 callbacks run on c104 threads
        self._cmd_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._callbacks: tuple[Any, Any, Any] | None = None

    def add(self, endpoint: Iec104Endpoint) -> None:
        """Serve another station behind the same host:port (also once the link runs)."""
        if (endpoint.host, endpoint.port) != (self.host, self.port):
            raise AdapterError("invalid", f"station {endpoint.common_address} is at {endpoint.host}:{endpoint.port}, "
                               f"not {self.host}:{self.port}")
        known = endpoint.common_address in self.endpoints
        self.endpoints[endpoint.common_address] = endpoint
        if self._conn is not None and not known:
            self._add_station(endpoint)

    @property
    def is_open(self) -> bool:
        return self._conn is not None and self._conn.state == c104.ConnectionState.OPEN

    # --- c104 callbacks (c104 threads) --------------------------------------------------------
    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed between the check and the call
                loop.call_soon_threadsafe(wake.set)

    def _make_callbacks(self):
        def on_point(
            point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
        ) -> c104.ResponseState:
            quality = point.quality
            good = quality is None or quality.is_good()
            with self._lock:
                self._seen[(point.station.common_address, point.io_address)] = _Seen(point.value, good,
                                                                                     time.monotonic())
            self._notify()
            return c104.ResponseState.SUCCESS

        def on_raw(connection: c104.Connection, data: bytes) -> None:
            hit = parse_actcon(data)
            if hit is not None and hit[0] in self.endpoints:
                now, key = time.monotonic(), (hit[0], hit[1])
                with self._lock:
                    old = self._actcon.get(key)
                    # a negative ACTCON and its cause 46/47 come in one burst: keep the one that says why
                    says_why = old is not None and old[1] in COT_NEGATIVE and now - old[2] < 0.5
                    if not (says_why and hit[3] == COT_ACTCON):
                        self._actcon[key] = (hit[2], hit[3], now)
                self._notify()

        def on_state(connection: c104.Connection, state: c104.ConnectionState) -> None:
            if self.on_state is not None:
                self.on_state(state.name)
            if state == c104.ConnectionState.OPEN_MUTED and self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._loop.call_later, 0.3, self._unmute_if_stuck)
            self._notify()

        return on_point, on_raw, on_state

    def _unmute_if_stuck(self) -> None:
        """Reconnects happen in c104's threads; a link left in OPEN_MUTED is unmuted here."""
        conn = self._conn
        if conn is not None and conn.state == c104.ConnectionState.OPEN_MUTED:
            conn.unmute()

    # --- plumbing -----------------------------------------------------------------------------
    async def _wait(self, condition, timeout_s: float) -> bool:
        """Wait until condition() is true, woken by c104 callbacks (and a 50 ms poll for states)."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            assert self._wake is not None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(left, 0.05))
        return True

    async def _wait_open(self, timeout_s: float) -> None:
        """Wait for OPEN; unmute a link stuck in OPEN_MUTED (c104 2.2.1 race)."""
        assert self._conn is not None
        muted_since: float | None = None
        deadline = time.monotonic() + timeout_s
        while True:
            state = self._conn.state
            if state == c104.ConnectionState.OPEN:
                return
            now = time.monotonic()
            if state == c104.ConnectionState.OPEN_MUTED:
                muted_since = muted_since or now
                if now - muted_since > 0.3:
                    self._conn.unmute()
                    muted_since = now
            else:
                muted_since = None
            if now > deadline:
                raise AdapterError("unreachable", f"IEC 104 link to {self.host}:{self.port} not open ({state.name})")
            await asyncio.sleep(0.02)

    async def _ensure(self) -> None:
        if self._client is None:
            await self._start_client()
        await self._wait_open(self.link_wait_s)

    async def _start_client(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        # one client for every station: its command timeout is the longest they ask for
        timeout_ms = max(e.command_timeout_ms for e in self.endpoints.values())
        client = c104.Client(tick_rate_ms=50, command_timeout_ms=timeout_ms)
        conn = client.add_connection(ip=self.host, port=self.port, init=c104.Init.NONE)
        if conn is None:
            raise AdapterError("error", f"c104 refused connection {self.host}:{self.port}")
        self._callbacks = self._make_callbacks()
        self._client, self._conn, self._points = client, conn, {}
        for e in self.endpoints.values():
            self._add_station(e)
        conn.on_receive_raw(callable=self._callbacks[1])
        conn.on_state_change(callable=self._callbacks[2])
        client.start()

    def _add_station(self, e: Iec104Endpoint) -> None:
        assert self._conn is not None and self._callbacks is not None
        on_point = self._callbacks[0]
        station = self._conn.add_station(common_address=e.common_address)
        points: dict[str, c104.Point] = {}
        for name, attr in _MEASURED.items():
            ioa = getattr(e.points, attr)
            if ioa is None:
                continue
            kind = c104.Type.M_SP_NA_1 if name == "available" else (
                c104.Type.M_ME_NB_1 if e.type_of(QUANTITY[name]) == "scaled" else c104.Type.M_ME_NC_1)
            points[name] = station.add_point(io_address=ioa, type=kind)
            points[name].on_receive(callable=on_point)
        points["setpoint"] = station.add_point(io_address=e.points.setpoint_ioa, type=c104.Type.C_SE_NC_1)
        self._points[e.common_address] = points

    def _endpoint(self, ca: int) -> Iec104Endpoint:
        e = self.endpoints.get(ca)
        if e is None:
            raise AdapterError("invalid", f"station {ca} was not added to the link to {self.host}:{self.port}")
        return e

    def _scale(self, ca: int, name: str) -> float:
        return self._endpoint(ca).scale_of(QUANTITY[name])

    def _physical(self, ca: int, name: str, raw: Any) -> float:
        """A measured value as sent (a short float, or a scaled integer) in its physical unit."""
        return float(raw) * self._scale(ca, name)

    def _fresh_since(self, ca: int, t0: float, names: list[str]) -> bool:
        points = self._points[ca]
        with self._lock:
            return all((s := self._seen.get((ca, points[n].io_address))) is not None and s.at >= t0 for n in names)

    # --- the calls of the worker -----------------------------------------------------------------
    async def connect(self) -> None:
        await self._ensure()

    async def close(self) -> None:
        client, self._client, self._conn = self._client, None, None
        if client is not None:
            await asyncio.to_thread(client.stop)

    async def send(self, value_kw: float, ca: int | None = None) -> tuple[CommandStatus, str]:
        """Send an active-power setpoint in kW to station ``ca`` (the first one added when None); the status and
        reason of what the RTU made of it."""
        ca = next(iter(self.endpoints)) if ca is None else ca
        self._endpoint(ca)
        async with self._cmd_lock:
            await self._ensure()
            point = self._points[ca]["setpoint"]
            try:
                point.value = float(value_kw)
            except (TypeError, IndexError, ValueError) as exc:
                raise AdapterError("invalid", f"{value_kw} does not fit C_SE_NC_1: {exc}") from exc
            ioa = point.io_address
            t0 = time.monotonic()
            ok = await asyncio.to_thread(point.transmit, cause=c104.Cot.ACTIVATION)
            if ok:  # c104 2.2.1 also says True to some negative answers (cause 46): the frame on the wire decides
                await self._wait(lambda: self._answer(ca, ioa, t0) is not None, 0.1)
                answer = self._answer(ca, ioa, t0)
                if answer is not None and answer[0]:
                    return "rejected", await self._refusal(ca, ioa, t0)
                return "confirmed", ""
            return await self._settle_false(ca, ioa, value_kw, t0)

    def _answer(self, ca: int, ioa: int, t0: float) -> tuple[bool, int] | None:
        """(negative, cause) of the RTU's answer for station ``ca``, ``ioa`` seen since ``t0``."""
        with self._lock:
            ack = self._actcon.get((ca, ioa))
        return (ack[0], ack[1]) if ack is not None and ack[2] >= t0 else None

    async def _refusal(self, ca: int, ioa: int, t0: float) -> str:
        """The reason of a negative answer, with its cause when the RTU sends one (it follows the ACTCON)."""
        await self._wait(lambda: (a := self._answer(ca, ioa, t0)) is not None and a[1] in COT_NEGATIVE, 0.1)
        answer = self._answer(ca, ioa, t0)
        cot = answer[1] if answer is not None else COT_ACTCON
        e = self._endpoint(ca)
        if cot in COT_NEGATIVE:
            return (f"RTU answered with a negative confirmation, cause {cot} ({COT_NEGATIVE[cot]}: common address "
                    f"{e.common_address}, IOA {e.points.setpoint_ioa}): check the endpoint's addresses")
        return "RTU answered with a negative confirmation"

    async def _settle_false(self, ca: int, ioa: int, value_kw: float, t0: float) -> tuple[CommandStatus, str]:
        """transmit() said False: find out whether the RTU refused, never answered, or we missed it."""
        e = self._endpoint(ca)
        p_ioa = e.points.active_power_ioa

        def evidence() -> str | None:
            with self._lock:
                p = self._seen.get((ca, p_ioa))
            ack = self._answer(ca, ioa, t0)
            if ack is not None:
                return "negative" if ack[0] else "positive"
            tolerance = max(1e-3 * max(1.0, abs(value_kw)), abs(self._scale(ca, "active_power_kw")) / 2)
            if p is not None and p.at >= t0 and abs(self._physical(ca, "active_power_kw", p.value) - value_kw
                                                    ) <= tolerance:
                return "readback"
            return None

        await self._wait(lambda: evidence() is not None, 0.3)
        found = evidence()
        if found == "negative":
            return "rejected", await self._refusal(ca, ioa, t0)
        if found == "positive":
            return "confirmed", "confirmation seen on the wire (c104 transmit() reported False)"
        if found == "readback":
            return "confirmed", "confirmed by P read-back (c104 transmit() reported False)"
        if not self.is_open:
            return "unreachable", "link dropped during the command"
        waited = time.monotonic() - t0
        if waited >= 0.9 * e.command_timeout_ms / 1000.0:
            return "timeout", f"no confirmation within {e.command_timeout_ms} ms"
        return "unconfirmed", "no confirmation and no P read-back"

    async def read(self, ca: int | None = None) -> dict[str, Any]:
        """Interrogate station ``ca`` (the first one added when None): ``{"data": {field: value}, "quality": ...,
        "notes": ...}`` (Telemetry fields)."""
        ca = next(iter(self.endpoints)) if ca is None else ca
        e = self._endpoint(ca)
        async with self._cmd_lock:
            await self._ensure()
            assert self._conn is not None
            t0 = time.monotonic()
            await asyncio.to_thread(self._conn.interrogation, common_address=ca, cause=c104.Cot.ACTIVATION)
            points = self._points[ca]
            names = [n for n in _MEASURED if n in points]
            await self._wait(lambda: self._fresh_since(ca, t0, names), e.command_timeout_ms / 1000.0)
        data: dict[str, float | bool] = {}
        stale, bad = [], []
        with self._lock:
            for name in names:
                seen = self._seen.get((ca, points[name].io_address))
                if seen is None:
                    stale.append(name)
                    continue
                if seen.at < t0:
                    stale.append(name)
                if not seen.good:
                    bad.append(name)
                data[name] = bool(seen.value) if name == "available" else self._physical(ca, name, seen.value)
        notes = "; ".join(
            s for s in (f"not refreshed: {', '.join(stale)}" if stale else "",
                        f"bad quality: {', '.join(bad)}" if bad else "") if s
        )
        return {"data": data, "quality": "questionable" if stale or bad else "good", "notes": notes}
