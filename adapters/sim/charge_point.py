"""Simulated OCPP 1.6 and 2.0.1 charge points with an EV that charges at the profile's limit.

Each is a real ocpp client over websockets: boots, reports status, starts a transaction when the
EV is plugged, sends meter values every ``meter_interval_s`` (and right after a new profile),
and obeys SetChargingProfile / ClearChargingProfile. It can be told to reject profiles, to answer
them with a CallError, or to drop its connection. :class:`OcppSimulator` is the protocol's simulator for
``flexopt simulate``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import logging
import os
import ssl
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from ocpp.exceptions import NotSupportedError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as c16
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action as A16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as c201
from ocpp.v201 import call_result as r201
from ocpp.v201.enums import Action as A201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from flexopt.adapters.ocpp_auth import auth_for
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.adapters.sim.base import ProtocolSimulator, Running


def _iso(t: dt.datetime | None = None) -> str:
    return (t or dt.datetime.now(dt.UTC)).isoformat().replace("+00:00", "Z")


def _parse_time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass
class Ev:
    """The car: takes up to ``max_w`` until its battery is full; ``time_scale`` speeds it up."""

    plugged: bool = True
    max_w: float = 11_000.0
    battery_kwh: float = 60.0
    soc_pct: float = 40.0


@dataclass
class ProfileBook:
    """The profiles a connector holds, by purpose; evaluates the limit in force now, in W."""

    voltage_v: float = 230.0
    phases: int = 3
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def limit_w(self, now: dt.datetime, transaction_id: Any) -> float | None:
        for purpose in ("TxProfile", "TxDefaultProfile"):
            prof = self.profiles.get(purpose)
            if prof is None:
                continue
            if purpose == "TxProfile" and str(prof.get("transaction_id")) != str(transaction_id):
                continue
            sched = prof["charging_schedule"]
            sched = sched[0] if isinstance(sched, list) else sched
            start = _parse_time(sched["start_schedule"]) if "start_schedule" in sched else now
            elapsed = (now - start).total_seconds()
            if elapsed < 0 or ("duration" in sched and elapsed >= sched["duration"]):
                continue
            limit = None
            for p in sched["charging_schedule_period"]:
                if p["start_period"] <= elapsed:
                    limit = float(p["limit"])
            if limit is None:
                continue
            return limit if sched["charging_rate_unit"] == "W" else limit * self.voltage_v * self.phases
        return None


class SimChargePoint:
    """One simulated charger with one connector/EVSE."""

    def __init__(
        self,
        cp_id: str,
        url: str,
        version: str = "1.6",
        password: str | bytes | None = None,
        connector_id: int = 1,
        ev: Ev | None = None,
        max_w: float = 22_000.0,
        meter_interval_s: float = 10.0,
        time_scale: float = 1.0,
        ssl_context: ssl.SSLContext | None = None,
        response_timeout_s: float = 10.0,
    ) -> None:
        self.cp_id, self.url, self.version, self.password = cp_id, url, version, password
        self.connector_id = connector_id
        self.ev = ev or Ev()
        self.max_w = max_w
        self.meter_interval_s = meter_interval_s
        self.time_scale = time_scale
        self.ssl_context = ssl_context
        self.response_timeout_s = response_timeout_s
        self.book = ProfileBook()
        self.reject_profiles = False
        self.call_error_profiles = False
        self.silent_profiles = False  # never answer SetChargingProfile (the CSMS times out)
        self.start_ack_delay_s = 0.0  # 1.6: time to take in the StartTransaction answer (its transaction id)
        self.max_periods: int | None = None  # ChargingScheduleMaxPeriods / PeriodsPerSchedule; longer is Rejected
        self.energy_wh = 0.0
        self.power_w = 0.0
        self.transaction_id: int | str | None = None
        self.profile_calls: list[dict[str, Any]] = []
        self.connect_s: float | None = None  # connect + BootNotification accepted, for benchmarks
        self._seq = itertools.count()
        self._last = time.monotonic()
        self._ws: ClientConnection | None = None
        self._cp: Cp16 | Cp201 | None = None
        self._tasks: list[asyncio.Task] = []
        self.booted = asyncio.Event()

    # --- physics ------------------------------------------------------------------------------
    def advance(self) -> None:
        now = time.monotonic()
        dt_h, self._last = (now - self._last) * self.time_scale / 3600.0, now
        energy = self.power_w * dt_h
        self.energy_wh += energy
        self.ev.soc_pct = min(100.0, self.ev.soc_pct + 100.0 * energy / 1000.0 / self.ev.battery_kwh)
        limit = self.book.limit_w(dt.datetime.now(dt.UTC), self.transaction_id)
        ceiling = min(self.max_w, self.ev.max_w, self.max_w if limit is None else limit)
        charging = self.ev.plugged and self.transaction_id is not None and self.ev.soc_pct < 100.0
        self.power_w = max(0.0, ceiling) if charging else 0.0

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self, boot: bool = True) -> None:
        """Connect, boot, plug in the EV if it is plugged, and start reporting. ``boot=False`` is a charger that
        only reconnects (a network cut, a new central system process): no BootNotification, and a running
        transaction goes on."""
        t0 = time.perf_counter()
        headers = {}
        if self.password is not None:  # HTTP Basic: base64 of the id, a colon and the password's bytes
            password = self.password.encode() if isinstance(self.password, str) else self.password
            token = base64.b64encode(self.cp_id.encode() + b":" + password).decode()
            headers["Authorization"] = f"Basic {token}"
        self.booted.clear()
        self._ws = await connect(
            f"{self.url}/{quote(self.cp_id, safe='')}",
            subprotocols=[Subprotocol("ocpp1.6" if self.version == "1.6" else "ocpp2.0.1")],
            additional_headers=headers,
            ssl=self.ssl_context,
            open_timeout=self.response_timeout_s,
            ping_interval=None,
        )
        cls = _Cp16 if self.version == "1.6" else _Cp201
        self._cp = cls(self.cp_id, self._ws, self, response_timeout=self.response_timeout_s)
        self._tasks = [asyncio.create_task(self._cp.start())]
        if boot:
            await self._cp.boot()
        self.connect_s = time.perf_counter() - t0
        self.booted.set()
        if self.transaction_id is None:
            await self._cp.report_status("Available")
            if self.ev.plugged:
                await self._cp.plug_in()
        self._tasks.append(asyncio.create_task(self._meter_loop()))

    async def run_forever(self, retry_s: float = 2.0, reboot: bool = True) -> None:
        """Stay connected: (re)connect whenever the central system is away, until cancelled. ``reboot=False`` is
        a charger that only reconnects after the first time: no new BootNotification, its transaction goes on."""
        log = logging.getLogger("flexopt.sim.ocpp")
        first = True
        while True:
            try:
                await self.start(boot=reboot or first)
                first = False
                assert self._ws is not None
                await self._ws.wait_closed()
                log.info("%s: connection closed, reconnecting", self.cp_id)
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError, RuntimeError) as exc:
                log.info("%s: cannot reach the central system (%s), retrying", self.cp_id, exc)
            finally:
                await self.stop()
            if reboot:
                self.transaction_id = None
            await asyncio.sleep(retry_s)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def drop(self) -> None:
        """Lose the connection abruptly (no closing handshake), like a cut network."""
        if self._ws is not None:
            self._ws.transport.abort()
        await self.stop()

    async def send_meter_values(self) -> None:
        self.advance()
        if self._cp is not None:
            await self._cp.meter_values()

    async def _meter_loop(self) -> None:
        while True:
            await asyncio.sleep(self.meter_interval_s)
            with contextlib.suppress(asyncio.TimeoutError):
                await self.send_meter_values()

    def sampled(self) -> list[dict[str, Any]]:
        return [
            {"value": f"{self.power_w:.1f}", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": f"{self.energy_wh:.1f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "230.0", "measurand": "Voltage", "unit": "V", "phase": "L1-N"},
            {"value": f"{self.ev.soc_pct:.1f}", "measurand": "SoC", "unit": "Percent"},
        ]

    # --- profile handling shared by both versions ----------------------------------------------
    def accept_profile(self, profile: dict[str, Any]) -> str:
        self.profile_calls.append(profile)
        if self.call_error_profiles:
            raise NotSupportedError(description="simulated charger refuses smart charging")
        if self.reject_profiles:
            return "Rejected"
        purpose = profile["charging_profile_purpose"]
        schedules = profile["charging_schedule"]
        schedules = schedules if isinstance(schedules, list) else [schedules]
        if self.max_periods is not None and any(len(s["charging_schedule_period"]) > self.max_periods
                                                for s in schedules):
            return "Rejected"
        if purpose == "TxProfile" and str(profile.get("transaction_id")) != str(self.transaction_id):
            return "Rejected"
        self.advance()
        self.book.profiles[purpose] = profile
        self.advance()
        return "Accepted"

    def clear_profiles(self, purpose: str | None) -> str:
        self.advance()
        gone = [p for p in self.book.profiles if purpose is None or p == purpose]
        for p in gone:
            del self.book.profiles[p]
        self.advance()
        return "Accepted" if gone else "Unknown"

    def after_profile(self) -> None:
        """Report the new power at once (a task: never call from inside a handler)."""
        self._tasks.append(asyncio.create_task(self.send_meter_values()))


class _Cp16(Cp16):
    def __init__(self, cp_id: str, ws: ClientConnection, sim: SimChargePoint, response_timeout: float):
        super().__init__(cp_id, ws, response_timeout=response_timeout)
        self.sim = sim

    async def boot(self) -> None:
        res = await self.call(c16.BootNotification(charge_point_model="SimWallbox", charge_point_vendor="flexopt"),
                              suppress=False)
        if res.status != "Accepted":
            raise RuntimeError(f"boot {res.status}")

    async def report_status(self, status: str) -> None:
        await self.call(c16.StatusNotification(connector_id=self.sim.connector_id, error_code="NoError", status=status),
                        suppress=False)

    async def plug_in(self) -> None:
        sim = self.sim
        await self.report_status("Preparing")
        res = await self.call(c16.StartTransaction(connector_id=sim.connector_id, id_tag="SIMTAG",
                                                   meter_start=int(sim.energy_wh), timestamp=_iso()), suppress=False)
        await asyncio.sleep(sim.start_ack_delay_s)
        sim.transaction_id = res.transaction_id
        sim.advance()
        await self.report_status("Charging")

    async def meter_values(self) -> None:
        await self.call(c16.MeterValues(connector_id=self.sim.connector_id, transaction_id=self.sim.transaction_id,
                                        meter_value=[{"timestamp": _iso(), "sampled_value": self.sim.sampled()}]),
                        suppress=False)

    @on(A16.set_charging_profile)
    async def on_set_profile(self, connector_id: int, cs_charging_profiles: dict):
        if self.sim.silent_profiles:
            await asyncio.sleep(3600)
        return r16.SetChargingProfile(status=self.sim.accept_profile(cs_charging_profiles))

    @after(A16.set_charging_profile)
    def after_set_profile(self, **_: Any):
        self.sim.after_profile()

    @on(A16.get_configuration)
    def on_get_configuration(self, key: list | None = None, **_: Any):
        known = {} if self.sim.max_periods is None else {"ChargingScheduleMaxPeriods": str(self.sim.max_periods)}
        asked = key if key is not None else list(known)
        return r16.GetConfiguration(
            configuration_key=[{"key": k, "readonly": True, "value": known[k]} for k in asked if k in known],
            unknown_key=[k for k in asked if k not in known] or None)

    @on(A16.clear_charging_profile)
    def on_clear_profile(self, charging_profile_purpose: str | None = None, **_: Any):
        return r16.ClearChargingProfile(status=self.sim.clear_profiles(charging_profile_purpose))

    @after(A16.clear_charging_profile)
    def after_clear_profile(self, **_: Any):
        self.sim.after_profile()


class _Cp201(Cp201):
    def __init__(self, cp_id: str, ws: ClientConnection, sim: SimChargePoint, response_timeout: float):
        super().__init__(cp_id, ws, response_timeout=response_timeout)
        self.sim = sim

    def _evse(self) -> dict[str, int]:
        return {"id": self.sim.connector_id, "connector_id": 1}

    async def boot(self) -> None:
        res = await self.call(
            c201.BootNotification(charging_station={"model": "SimWallbox", "vendor_name": "flexopt"},
                                  reason="PowerUp"),
            suppress=False,
        )
        if res.status != "Accepted":
            raise RuntimeError(f"boot {res.status}")

    async def report_status(self, status: str) -> None:
        await self.call(c201.StatusNotification(timestamp=_iso(), connector_status=status,
                                                evse_id=self.sim.connector_id, connector_id=1), suppress=False)

    async def _event(self, event_type: str, trigger: str, charging_state: str | None) -> None:
        info: dict[str, Any] = {"transaction_id": str(self.sim.transaction_id)}
        if charging_state:
            info["charging_state"] = charging_state
        await self.call(
            c201.TransactionEvent(
                event_type=event_type, timestamp=_iso(), trigger_reason=trigger, seq_no=next(self.sim._seq),
                transaction_info=info, evse=self._evse(),
                meter_value=[{"timestamp": _iso(), "sampled_value": _v201(self.sim.sampled())}],
                id_token={"id_token": "SIMTAG", "type": "ISO14443"} if event_type == "Started" else None,
            ),
            suppress=False,
        )

    async def plug_in(self) -> None:
        await self.report_status("Occupied")
        self.sim.transaction_id = uuid.uuid4().hex[:16]
        self.sim.advance()
        await self._event("Started", "CablePluggedIn", "Charging")

    async def meter_values(self) -> None:
        if self.sim.transaction_id is not None:
            state = "Charging" if self.sim.power_w > 0 else "SuspendedEVSE"
            await self._event("Updated", "MeterValuePeriodic", state)
        else:
            await self.call(c201.MeterValues(evse_id=self.sim.connector_id, meter_value=[
                {"timestamp": _iso(), "sampled_value": _v201(self.sim.sampled())}]), suppress=False)

    @on(A201.set_charging_profile)
    async def on_set_profile(self, evse_id: int, charging_profile: dict, **_: Any):
        if self.sim.silent_profiles:
            await asyncio.sleep(3600)
        return r201.SetChargingProfile(status=self.sim.accept_profile(charging_profile))

    @after(A201.set_charging_profile)
    def after_set_profile(self, **_: Any):
        self.sim.after_profile()

    @on(A201.get_variables)
    def on_get_variables(self, get_variable_data: list, **_: Any):
        results = []
        for item in get_variable_data:
            component, variable = item["component"], item["variable"]
            ours = (component.get("name"), variable.get("name")) == ("SmartChargingCtrlr", "PeriodsPerSchedule")
            if ours and self.sim.max_periods is not None:
                results.append({"attribute_status": "Accepted", "component": component, "variable": variable,
                                "attribute_value": str(self.sim.max_periods)})
            else:
                results.append({"attribute_status": "UnknownVariable", "component": component, "variable": variable})
        return r201.GetVariables(get_variable_result=results)

    @on(A201.clear_charging_profile)
    def on_clear_profile(self, charging_profile_id: int | None = None, charging_profile_criteria: dict | None = None,
                         **_: Any):
        purpose = (charging_profile_criteria or {}).get("charging_profile_purpose")
        return r201.ClearChargingProfile(status=self.sim.clear_profiles(purpose))

    @after(A201.clear_charging_profile)
    def after_clear_profile(self, **_: Any):
        self.sim.after_profile()


def _v201(sampled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """1.6 sampled values in 2.0.1 shape (numeric value, unitOfMeasure)."""
    out = []
    for sv in sampled:
        item: dict[str, Any] = {"value": float(sv["value"]), "measurand": sv["measurand"],
                                "unit_of_measure": {"unit": sv["unit"]}}
        if "phase" in sv:
            item["phase"] = sv["phase"]
        out.append(item)
    return out


DEFAULT_PASSWORD = "sim-password"  # what a simulated charger sends when its password's variable is not set


class OcppSimulator(ProtocolSimulator):
    """The portfolio's chargers: each connects to the central system at the option ``ocpp_url``
    (ws://127.0.0.1:9000; its path is the central system's ``path``) and keeps retrying every ``ocpp_retry_s``
    (2 s); with ``central`` an embedded central system listens there too. A charger sends the password of its
    ``password_env`` (hex-decoded for ``secret_encoding: hex``), else :data:`DEFAULT_PASSWORD` (printed to
    export). Chargers of security profile 3 need client certificates, which simulate does not make."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.url = str(self.options.get("ocpp_url", "ws://127.0.0.1:9000")).rstrip("/")
        self.retry_s = float(self.options.get("ocpp_retry_s", 2.0))
        self.chargers: list[SimChargePoint] = []
        self.central: CentralSystem | None = None
        self._endpoints: list[Any] = []
        self._password_envs: dict[str, str] = {}  # variable -> its default when unset
        self._tasks: list[asyncio.Task] = []

    def _environ(self) -> dict[str, str]:
        """The environment as the simulated chargers see it: unset passwords take the default."""
        return self._password_envs | {k: v for k, v in os.environ.items() if v}

    def add(self, asset: Any, endpoint: Any, name: str, lo: float, hi: float) -> str:
        e = endpoint
        if e.effective_security_profile == 3:
            raise ValueError(f"{name}: charge point {e.charge_point_id} uses a TLS client certificate (security "
                             "profile 3), which the simulated chargers do not have")
        password: str | bytes | None = None
        if e.password_env:
            default = DEFAULT_PASSWORD.encode().hex() if e.secret_encoding == "hex" else DEFAULT_PASSWORD
            self._password_envs.setdefault(e.password_env, default)
            password = self._environ()[e.password_env]
            if e.secret_encoding == "hex":
                password = bytes.fromhex(password) if _is_hex(password) else password
        self._endpoints.append(e)
        ev = Ev(max_w=getattr(asset, "max_charge_kw", 11.0) * 1000.0)
        cp = SimChargePoint(e.charge_point_id, self.url, e.version, password=password,
                            connector_id=e.connector_id, ev=ev, max_w=ev.max_w)
        # profiles in amps mean the charger's own wiring (a 3.7 kW wallbox is one phase of 16 A)
        cp.book.voltage_v, cp.book.phases = getattr(asset, "voltage_v", 230.0), getattr(asset, "phases", 3)
        self.chargers.append(cp)
        return self.url

    def charger(self, cp_id: str) -> SimChargePoint:
        return next(cp for cp in self.chargers if cp.cp_id == cp_id)

    def finish(self) -> list[Running]:
        if not (self.options.get("central") and self.chargers):
            return []
        u = urlsplit(self.url)
        self.central = CentralSystem(u.hostname or "127.0.0.1", u.port or 9000, path=u.path or "/")
        environ = self._environ()
        for e in self._endpoints:
            self.central.register(e.charge_point_id, auth_for(e, environ))
        return [Running("ocpp-csms", self.url, [], "embedded central system")]

    def env_to_export(self) -> dict[str, str]:
        return {env: value for env, value in sorted(self._password_envs.items()) if not os.environ.get(env)}

    async def start(self) -> None:
        if self.central is not None:
            await self.central.start()
        self._tasks = [asyncio.create_task(cp.run_forever(self.retry_s)) for cp in self.chargers]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.central is not None:
            await self.central.stop()


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True
