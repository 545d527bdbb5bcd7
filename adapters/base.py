"""The one async interface every protocol adapter implements, and the typed values it exchanges.

Adapters never raise to their caller: every failure comes back as a :class:`CommandResult` or a
:class:`Telemetry` with a status and a reason, so one bad device cannot stop a dispatch.
Power follows the load convention: positive = drawn from the grid, negative = fed in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from flexopt.adapters.clock import current as current_clock

log = logging.getLogger("flexopt.adapters")

SetpointUnit = Literal["kW", "W", "degC", "on_off", "A"]
CommandStatus = Literal["confirmed", "unconfirmed", "rejected", "invalid", "unreachable", "timeout", "error"]
TelemetryQuality = Literal["good", "questionable", "invalid", "unreachable"]

_TO_KW = {"kW": 1.0, "W": 0.001}


def utcnow() -> dt.datetime:
    """Now on the task's clock (the wall clock, or the simulated one of a replay)."""
    return current_clock().now()


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert between W and kW; other units convert only to themselves."""
    if from_unit == to_unit:
        return value
    if from_unit in _TO_KW and to_unit in _TO_KW:
        return value * _TO_KW[from_unit] / _TO_KW[to_unit]
    raise ValueError(f"cannot convert {from_unit} to {to_unit}")


@dataclass(frozen=True)
class SetpointLimits:
    """What the asset accepts; setpoints are clamped into [min_value, max_value] before they leave."""

    min_value: float
    max_value: float
    unit: SetpointUnit = "kW"

    def __post_init__(self) -> None:
        if self.min_value > self.max_value:
            raise ValueError(f"min_value {self.min_value} above max_value {self.max_value}")


@dataclass(frozen=True)
class SetpointPeriod:
    """One step of a profile: ``value`` applies from ``start`` until the next period starts."""

    start: dt.datetime
    value: float


@dataclass(frozen=True)
class Setpoint:
    """A command in physical units. ``value`` applies now; ``periods`` carry a profile for devices
    that store schedules (OCPP). ``profile`` picks the OCPP purpose: auto = TxProfile while a
    transaction runs, else TxDefaultProfile."""

    asset_id: str
    value: float
    unit: SetpointUnit = "kW"
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    periods: tuple[SetpointPeriod, ...] = ()
    profile: Literal["auto", "default", "tx"] = "auto"


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one setpoint: ok only when the device confirmed it. ``requested`` and ``sent``
    are in the setpoint's unit; ``sent`` is after clamping (None when nothing left)."""

    asset_id: str
    ok: bool
    status: CommandStatus
    requested: float
    sent: float | None
    unit: str
    clamped: bool = False
    reason: str = ""
    latency_ms: float = 0.0
    at: dt.datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class Telemetry:
    """One reading of an asset. Fields the device does not report stay None."""

    asset_id: str
    at: dt.datetime
    connected: bool
    available: bool | None = None
    voltage_v: float | None = None
    active_power_kw: float | None = None
    reactive_power_kvar: float | None = None
    soc_pct: float | None = None
    temp_c: float | None = None
    ev_plugged: bool | None = None
    ev_charging: bool | None = None
    ev_energy_kwh: float | None = None
    setpoint: float | None = None  # the setpoint the device reports back, in its limits unit
    quality: TelemetryQuality = "good"
    notes: str = ""
    extra: dict[str, float] = field(default_factory=dict)


TELEMETRY_FIELDS = (
    "available",
    "voltage_v",
    "active_power_kw",
    "reactive_power_kvar",
    "soc_pct",
    "temp_c",
    "ev_plugged",
    "ev_charging",
    "ev_energy_kwh",
    "setpoint",
)
BOOL_FIELDS = frozenset({"available", "ev_plugged", "ev_charging"})


@dataclass(frozen=True)
class AdapterEvent:
    """Something that happened to an adapter between calls and that no result shows: its client process died
    (``client_crashed``). Dispatch turns each into an alarm of the round (``DeviceAdapter.take_events``)."""

    severity: Literal["critical", "warning"]
    kind: str
    reason: str
    at: dt.datetime = field(default_factory=utcnow)


class AdapterError(Exception):
    """Raised inside adapters to end a call with a given status; turned into a result by the base."""

    def __init__(self, status: CommandStatus, reason: str) -> None:
        super().__init__(reason)
        self.status: CommandStatus = status
        self.reason = reason


def clamp(setpoint: Setpoint, limits: SetpointLimits | None) -> tuple[Setpoint, bool]:
    """Return the setpoint in the limits' unit, clamped, and whether anything was cut."""
    values = [setpoint.value, *(p.value for p in setpoint.periods)]
    if not all(math.isfinite(v) for v in values):
        raise AdapterError("invalid", "setpoint is not a finite number")
    if limits is None:
        return setpoint, False
    try:
        scale = convert(1.0, setpoint.unit, limits.unit)
    except ValueError as exc:
        raise AdapterError("invalid", f"setpoint unit {setpoint.unit} but asset takes {limits.unit}") from exc

    def cut(v: float) -> float:
        v = min(max(v * scale, limits.min_value), limits.max_value)
        if limits.unit == "on_off":
            v = 1.0 if v >= 0.5 else 0.0
        return v

    periods = tuple(replace(p, value=cut(p.value)) for p in setpoint.periods)
    out = replace(setpoint, value=cut(setpoint.value), unit=limits.unit, periods=periods)
    was_cut = any(
        not math.isclose(a * scale, b, rel_tol=1e-9, abs_tol=1e-9)
        for a, b in zip(values, [out.value, *(p.value for p in periods)], strict=True)
    )
    return out, was_cut


def _classify(exc: BaseException) -> tuple[CommandStatus, str]:
    """Map any exception an adapter let through to a status and a readable reason."""
    if isinstance(exc, AdapterError):
        return exc.status, exc.reason
    if isinstance(exc, TimeoutError):
        return "timeout", "no answer in time"
    if isinstance(exc, ConnectionError | OSError):
        return "unreachable", f"{type(exc).__name__}: {exc}"
    return "error", f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class AdapterContext:
    """What an adapter may need beyond its endpoint: the protocol's session service (OCPP's central system, which
    chargers connect to) and the asset (a charger's voltage and phases turn kW into A)."""

    service: Any = None
    asset: Any = None


class DeviceAdapter(ABC):
    """Connects to one asset, sends it setpoints and reads its telemetry. Public calls never raise
    and never take longer than ``call_timeout_s``."""

    protocol: ClassVar[str] = ""

    @classmethod
    def for_endpoint(cls, asset_id: str, endpoint: Any, limits: SetpointLimits | None,
                     context: AdapterContext) -> Self:
        """How the adapter factory builds one for a device: ``cls(asset_id, endpoint, limits)`` unless the protocol
        needs its service or the asset."""
        return cls(asset_id, endpoint, limits)  # type: ignore[call-arg]

    def __init__(self, asset_id: str, limits: SetpointLimits | None = None, call_timeout_s: float = 10.0):
        self.asset_id = asset_id
        self.limits = limits
        self.call_timeout_s = call_timeout_s
        self.last_error = ""

    # --- public, never raising ------------------------------------------------------------
    async def connect(self) -> bool:
        """Open the connection; False (with ``last_error``) when the device is not there yet.
        Adapters reconnect by themselves on the next call."""
        try:
            await asyncio.wait_for(self._connect(), self.call_timeout_s)
        except Exception as exc:
            self.last_error = _classify(exc)[1]
            log.warning("%s: connect failed: %s", self.asset_id, self.last_error)
            return False
        self.last_error = ""
        return True

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._close(), self.call_timeout_s)
        except Exception as exc:
            log.warning("%s: close failed: %s", self.asset_id, _classify(exc)[1])

    async def send_setpoint(self, setpoint: Setpoint) -> CommandResult:
        t0 = time.perf_counter()
        sent: float | None = None
        clamped = False
        unit: str = setpoint.unit
        try:
            if setpoint.asset_id != self.asset_id:
                raise AdapterError("invalid", f"setpoint for {setpoint.asset_id} sent to {self.asset_id}")
            if setpoint.valid_until is not None and setpoint.valid_until <= utcnow():
                raise AdapterError("invalid", f"setpoint expired at {setpoint.valid_until.isoformat()}")
            command, clamped = clamp(setpoint, self.limits)
            sent, unit = command.value, command.unit
            status, reason = await asyncio.wait_for(self._send(command), self.call_timeout_s)
        except Exception as exc:
            status, reason = _classify(exc)
        if clamped:
            reason = "; ".join(
                r for r in (reason, f"clamped {setpoint.value:g} {setpoint.unit} to {sent:g} {unit}") if r
            )
        result = CommandResult(
            asset_id=self.asset_id,
            ok=status == "confirmed",
            status=status,
            requested=setpoint.value,
            sent=sent,
            unit=unit,
            clamped=clamped,
            reason=reason,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
        )
        level = logging.INFO if result.ok else logging.WARNING
        log.log(level, "%s: setpoint %s -> %s %s", self.asset_id, setpoint.value, status, reason)
        return result

    async def read_telemetry(self) -> Telemetry:
        try:
            return await asyncio.wait_for(self._read(), self.call_timeout_s)
        except Exception as exc:
            status, reason = _classify(exc)
            log.warning("%s: telemetry failed: %s", self.asset_id, reason)
            return Telemetry(
                asset_id=self.asset_id,
                at=utcnow(),
                connected=False,
                quality="unreachable" if status in ("unreachable", "timeout") else "invalid",
                notes=f"{status}: {reason}",
            )

    def take_events(self) -> list[AdapterEvent]:
        """The events since the last call of this (each reported once); none for most protocols."""
        return []

    async def __aenter__(self) -> DeviceAdapter:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- protocol specific ------------------------------------------------------------------
    @abstractmethod
    async def _connect(self) -> None:
        """Open the connection or raise."""

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    async def _send(self, command: Setpoint) -> tuple[CommandStatus, str]:
        """Send an already clamped setpoint (in the limits' unit); return status and reason."""

    @abstractmethod
    async def _read(self) -> Telemetry: ...


class SessionService(ABC):
    """A server a protocol's devices connect to (OCPP's central system), run by dispatch for as long as it runs.
    Built by the protocol's ``service`` factory from the portfolio and handed to each of the protocol's adapters.
    Like adapters, it never raises: what goes wrong comes back as text for a critical alarm of ``alarm_kind``."""

    alarm_kind: ClassVar[str] = "service"

    @abstractmethod
    async def open(self) -> list[str]:
        """Start serving; the problems (port taken, certificate unreadable), none when it serves."""

    def use_state_dir(self, folder: Path) -> None:
        """Keep what must outlive this process (sessions, transactions) in ``folder`` of the store, and start
        from what an earlier process left there. Called before :meth:`open`; most services keep nothing."""
        return None

    async def wait_for_devices(self, endpoints: Sequence[Any], timeout_s: float) -> None:
        """Give the devices at ``endpoints`` up to ``timeout_s`` to connect (at once when not serving)."""
        return None

    @abstractmethod
    async def close(self) -> None: ...
