"""An asset of ``count`` identical devices driven as one: the same per-device setpoint goes to every
device, and the group answers with one result and one aggregated reading.

Why a group and not one adapter per device in ``dispatch``: the schedule, the alarms and the operator all
think in assets; the per-device detail stays available in ``last_results`` / ``last_telemetry`` for the
audit trail.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace

from flexopt.adapters.base import (
    AdapterEvent,
    CommandResult,
    CommandStatus,
    DeviceAdapter,
    Setpoint,
    Telemetry,
    TelemetryQuality,
    log,
    utcnow,
)

# Least to most serious: a group reports the most serious status among its devices.
STATUS_RANK: dict[str, int] = {
    "confirmed": 0, "unconfirmed": 1, "rejected": 2, "timeout": 3, "error": 4, "invalid": 5, "unreachable": 6,
}
_QUALITY_RANK: dict[str, int] = {"good": 0, "questionable": 1, "invalid": 2, "unreachable": 3}


def worst_status(statuses: Sequence[str]) -> CommandStatus:
    return max(statuses, key=lambda s: STATUS_RANK.get(s, 4), default="error")  # type: ignore[return-value]


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _sum(values: list[float]) -> float | None:
    return float(sum(values)) if values else None


class GroupAdapter(DeviceAdapter):
    """``children`` are the adapters of the asset's devices (each with per-device limits);
    ``devices`` names them for reasons and the audit (default: the children's asset ids)."""

    protocol = "group"

    def __init__(self, asset_id: str, children: list[DeviceAdapter], devices: list[str] | None = None) -> None:
        if not children:
            raise ValueError(f"{asset_id}: a group needs at least one device")
        if devices is not None and len(devices) != len(children):
            raise ValueError(f"{asset_id}: {len(devices)} device names for {len(children)} devices")
        super().__init__(asset_id, children[0].limits, call_timeout_s=max(c.call_timeout_s for c in children) + 1.0)
        self.children = list(children)
        self.devices = list(devices) if devices is not None else [c.asset_id for c in children]
        self.last_results: list[CommandResult] = []
        self.last_telemetry: list[Telemetry] = []
        self.last_connected: list[bool] = []
        # on/off shares: intervals each device was switched on, and the split last sent (re-sent unchanged when the
        # same interval is dispatched again)
        self.on_intervals: list[int] = [0] * len(self.children)
        self._last_split: tuple[object, float, list[float]] | None = None

    @property
    def count(self) -> int:
        return len(self.children)

    # --- public, never raising ------------------------------------------------------------------
    async def connect(self) -> bool:
        """True only when every device connected; the others reconnect on their next call."""
        oks = await asyncio.gather(*(c.connect() for c in self.children), return_exceptions=True)
        self.last_connected = [o is True for o in oks]
        down = [d for d, ok in zip(self.devices, self.last_connected, strict=True) if not ok]
        self.last_error = f"{len(down)} of {self.count} devices not connected: {', '.join(down)}" if down else ""
        return not down

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.children), return_exceptions=True)

    async def send_setpoint(self, setpoint: Setpoint) -> CommandResult:
        t0 = time.perf_counter()
        if setpoint.asset_id != self.asset_id:
            results = [self._failed(setpoint, d, "invalid", f"setpoint for {setpoint.asset_id} sent to {self.asset_id}")
                       for d in self.devices]
        else:
            outcomes = await asyncio.gather(
                *(c.send_setpoint(replace(setpoint, asset_id=c.asset_id, value=v))
                  for c, v in zip(self.children, self.split(setpoint), strict=True)),
                return_exceptions=True,
            )
            results = [
                o if isinstance(o, CommandResult)
                else self._failed(setpoint, c.asset_id, "error", f"{type(o).__name__}: {o}")
                for c, o in zip(self.children, outcomes, strict=True)
            ]
        self.last_results = results
        result = self._combine(setpoint, results, (time.perf_counter() - t0) * 1000.0)
        log.log(logging.INFO if result.ok else logging.WARNING, "%s: group setpoint %s -> %s %s", self.asset_id,
                setpoint.value, result.status, result.reason)
        return result

    async def read_telemetry(self) -> Telemetry:
        outcomes = await asyncio.gather(*(c.read_telemetry() for c in self.children), return_exceptions=True)
        readings = [
            o if isinstance(o, Telemetry)
            else Telemetry(asset_id=c.asset_id, at=utcnow(), connected=False, quality="invalid",
                           notes=f"error: {type(o).__name__}: {o}")
            for c, o in zip(self.children, outcomes, strict=True)
        ]
        self.last_telemetry = readings
        return self._aggregate(readings)

    def split(self, setpoint: Setpoint) -> list[float]:
        """The value for each device: the same per-device setpoint, except an on/off share strictly between 0
        and 1 (the schedule's "k of N elements on"), which switches round(share x N) devices fully on and the
        rest off: the coldest devices as measured, else those switched on for the fewest intervals so far.

        That round robin keeps every device's heating within one interval of the others, which is what the
        schedule assumed for its coldest and hottest tank (models/water_heater.py). Dispatching the same interval
        again repeats its split instead of counting it twice."""
        n, v = self.count, setpoint.value
        if not (setpoint.unit == "on_off" and 0.0 < v < 1.0 and not setpoint.periods):
            return [v] * n
        key = setpoint.valid_from
        if key is not None and self._last_split is not None and self._last_split[:2] == (key, v):
            return list(self._last_split[2])
        chosen = self._coldest_first()[:round(v * n)]
        values = [0.0] * n
        for i in chosen:
            values[i] = 1.0
            self.on_intervals[i] += 1
        self._last_split = (key, v, values)
        return list(values)

    def _coldest_first(self) -> list[int]:
        """Device positions, coldest first by the last reading when every device reported a temperature, else by
        fewest intervals on; ties keep the device order."""
        temps = [t.temp_c if t.quality == "good" else None for t in self.last_telemetry]
        if len(temps) == self.count and all(x is not None and x == x for x in temps):
            return sorted(range(self.count), key=lambda i: (temps[i], self.on_intervals[i], i))
        return sorted(range(self.count), key=lambda i: (self.on_intervals[i], i))

    def take_events(self) -> list[AdapterEvent]:
        """The devices' events, each naming its device."""
        return [replace(e, reason=f"{d}: {e.reason}") for d, c in zip(self.devices, self.children, strict=True)
                for e in c.take_events()]

    # --- combining ------------------------------------------------------------------------------
    def _failed(self, setpoint: Setpoint, asset_id: str, status: CommandStatus, reason: str) -> CommandResult:
        return CommandResult(asset_id=asset_id, ok=False, status=status, requested=setpoint.value, sent=None,
                             unit=setpoint.unit, reason=reason)

    def _combine(self, setpoint: Setpoint, results: list[CommandResult], latency_ms: float) -> CommandResult:
        n = len(results)
        confirmed = sum(r.ok for r in results)
        failing = [f"{d} ({r.status}: {r.reason})" if r.reason else f"{d} ({r.status})"
                   for d, r in zip(self.devices, results, strict=True) if not r.ok]
        sent = next((r for r in results if r.sent is not None), None)
        sents = [r.sent for r in results if r.sent is not None]
        clamped = next((r for r in results if r.clamped), None)
        parts = [f"{confirmed} of {n} devices confirmed"]
        if sents and len(set(sents)) > 1:
            parts.append("per device " + ", ".join(f"{d} {r.sent:g}" for d, r in zip(self.devices, results,
                                                                                        strict=True)
                                                   if r.sent is not None))
        if failing:  # the first ten; every device's result is in last_results
            parts.append("failed: " + ", ".join(failing[:10]) + (f" (+{len(failing) - 10} more)" if len(failing) > 10
                                                                   else ""))
        if clamped is not None:
            parts.append(f"clamped {setpoint.value:g} {setpoint.unit} to {clamped.sent:g} {clamped.unit} per device")
        return CommandResult(
            asset_id=self.asset_id,
            ok=confirmed == n,
            status=worst_status([r.status for r in results]),
            requested=setpoint.value,
            sent=statistics.fmean(sents) if sents else None,  # the per-device value, or the mean of a split
            unit=sent.unit if sent is not None else setpoint.unit,
            clamped=clamped is not None,
            reason="; ".join(parts),
            latency_ms=latency_ms,
        )

    def _aggregate(self, readings: list[Telemetry]) -> Telemetry:
        """Powers and energy add up over the devices that answered; V, SoC and temperatures average."""
        up = [t for t in readings if t.connected]
        missing = [d for d, t in zip(self.devices, readings, strict=True) if not t.connected]

        def vals(name: str) -> list:
            return [v for t in up if (v := getattr(t, name)) is not None]

        notes = []
        if missing:
            notes.append(f"{len(missing)} of {self.count} devices unreachable: {', '.join(missing)}")
        notes += [f"{d}: {t.notes}" for d, t in zip(self.devices, readings, strict=True) if t.connected and t.notes]
        if not up:
            quality: TelemetryQuality = "unreachable"
        else:
            worst = max((t.quality for t in up), key=lambda q: _QUALITY_RANK.get(q, 2))
            quality = "questionable" if missing and worst == "good" else worst
        available = vals("available")
        plugged, charging = vals("ev_plugged"), vals("ev_charging")
        return Telemetry(
            asset_id=self.asset_id,
            at=max((t.at for t in readings), default=utcnow()),
            connected=bool(up),
            available=all(available) if available else None,
            voltage_v=_mean(vals("voltage_v")),
            active_power_kw=_sum(vals("active_power_kw")),
            reactive_power_kvar=_sum(vals("reactive_power_kvar")),
            soc_pct=_mean(vals("soc_pct")),
            temp_c=_mean(vals("temp_c")),
            ev_plugged=any(plugged) if plugged else None,
            ev_charging=any(charging) if charging else None,
            ev_energy_kwh=_sum(vals("ev_energy_kwh")),
            setpoint=_mean(vals("setpoint")),
            quality=quality,
            notes="; ".join(notes),
            extra={"devices": float(self.count), "devices_answering": float(len(up))},
        )

    # --- DeviceAdapter internals (unused: the public calls above fan out to the children) ---------
    async def _connect(self) -> None:
        if not await self.connect():
            raise ConnectionError(self.last_error)

    async def _close(self) -> None:
        await self.close()

    async def _send(self, command: Setpoint) -> tuple[CommandStatus, str]:
        r = await self.send_setpoint(command)
        return r.status, r.reason

    async def _read(self) -> Telemetry:
        return await self.read_telemetry()
