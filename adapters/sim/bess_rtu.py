"""A simulated BESS RTU on IEC 60870-5-104 (c104 server).

The active-power setpoint (C_SE_NC_1) sets P (load convention: positive charges), returned at once
through the related P point; SoC integrates P on a 100 ms timer and P drops to zero at the SoC
limits. The RTU can be told to reject commands (negative confirmation), to answer slowly, or to go
down and come back on the same port. :class:`Iec104Simulator` is the protocol's simulator for ``flexopt simulate``.
"""

# No "from __future__ import annotations": c104 checks callback annotations as real types.

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import c104

from flexopt.adapters.sim.base import NO_LIMITS, ProtocolSimulator
from flexopt.config.endpoints import Iec104Points


@dataclass
class BessState:
    asset_id: str
    points: Iec104Points
    common_address: int
    energy_kwh: float = 100.0
    max_power_kw: float = 50.0
    soc_pct: float = 50.0
    setpoint_kw: float = 0.0
    power_kw: float = 0.0
    voltage_v: float = 400.0
    available: bool = True
    time_scale: float = 1.0  # > 1 runs the battery faster than the wall clock
    measured_type: str = "short_float"  # or scaled: M_ME_NB_1 integers of physical / measured_scale[quantity]
    measured_scale: dict[str, float] = field(default_factory=dict)
    point_types: dict[str, str] = field(default_factory=dict)  # a quantity's own type where it differs
    clock: Callable[[], float] = time.monotonic  # seconds; a replay's simulated clock
    last: float | None = None

    def __post_init__(self) -> None:
        self.last = self.clock()

    def type_of(self, quantity: str) -> str:
        return self.point_types.get(quantity, self.measured_type)

    def advance(self) -> None:
        now = self.clock()
        dt_h, self.last = (now - self.last) * self.time_scale / 3600.0, now
        self.soc_pct = min(100.0, max(0.0, self.soc_pct + 100.0 * self.power_kw * dt_h / self.energy_kwh))
        p = max(-self.max_power_kw, min(self.max_power_kw, self.setpoint_kw))
        if (p > 0 and self.soc_pct >= 100.0) or (p < 0 and self.soc_pct <= 0.0) or not self.available:
            p = 0.0
        self.power_kw = p


class BessRtu:
    """One c104 server with one or more batteries (each at its common address and IOAs)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2404) -> None:
        self.host, self.port = host, port
        self.reject = False
        self.delay_s = 0.0  # the command handler sleeps this long before confirming
        self.commands: list[tuple[str, float]] = []
        self.batteries: dict[str, BessState] = {}
        self._lock = threading.Lock()
        self._server: c104.Server | None = None
        self._points: dict[str, dict[str, c104.Point]] = {}

    def add(self, asset_id: str, points: Iec104Points, common_address: int = 1, **state: float) -> BessState:
        bess = BessState(asset_id, points, common_address, **state)
        self.batteries[asset_id] = bess
        return bess

    def start(self) -> None:
        server = c104.Server(ip=self.host, port=self.port, tick_rate_ms=50)
        for bess in self.batteries.values():
            station = server.get_station(bess.common_address) or server.add_station(
                common_address=bess.common_address
            )
            self._points[bess.asset_id] = self._add_points(station, bess)
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._points.clear()

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.is_running

    def set_available(self, asset_id: str, available: bool) -> None:
        with self._lock:
            self.batteries[asset_id].available = available
            self._publish(asset_id)

    # --- internals ----------------------------------------------------------------------------
    def _add_points(self, station: c104.Station, bess: BessState) -> dict[str, c104.Point]:
        p = bess.points
        pts: dict[str, c104.Point] = {}
        measured = {
            "p": p.active_power_ioa,
            "q": p.reactive_power_ioa,
            "v": p.voltage_ioa,
            "soc": p.soc_ioa,
        }
        quantity = {"p": "active_power", "q": "reactive_power", "v": "voltage", "soc": "soc"}
        for key, ioa in measured.items():
            if ioa is not None:
                kind = c104.Type.M_ME_NB_1 if bess.type_of(quantity[key]) == "scaled" else c104.Type.M_ME_NC_1
                pts[key] = station.add_point(io_address=ioa, type=kind, report_ms=1000)
        if p.availability_ioa is not None:
            pts["avail"] = station.add_point(io_address=p.availability_ioa, type=c104.Type.M_SP_NA_1, report_ms=1000)
        pts["sp"] = station.add_point(
            io_address=p.setpoint_ioa,
            type=c104.Type.C_SE_NC_1,
            related_io_address=p.active_power_ioa,
            related_io_autoreturn=True,
        )
        asset_id = bess.asset_id

        def on_setpoint(
            point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
        ) -> c104.ResponseState:
            return self._on_setpoint(asset_id, float(point.value))

        def on_timer(point: c104.Point) -> None:
            with self._lock:
                self._publish(asset_id)

        pts["sp"].on_receive(callable=on_setpoint)
        pts["p"].on_timer(callable=on_timer, interval_ms=100)
        with self._lock:
            self._points[asset_id] = pts
            self._publish(asset_id)
        return pts

    def _on_setpoint(self, asset_id: str, value: float) -> c104.ResponseState:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            bess = self.batteries[asset_id]
            if self.reject or not bess.available or abs(value) > bess.max_power_kw:
                return c104.ResponseState.FAILURE
            bess.advance()
            bess.setpoint_kw = value
            self.commands.append((asset_id, value))
            self._publish(asset_id)
        return c104.ResponseState.SUCCESS

    def _publish(self, asset_id: str) -> None:
        """Advance the physics and write the measured points (caller holds the lock)."""
        bess = self.batteries[asset_id]
        bess.advance()
        pts = self._points.get(asset_id, {})
        values = {"p": bess.power_kw, "q": 0.0, "v": bess.voltage_v, "soc": bess.soc_pct, "avail": bess.available}
        quantity = {"p": "active_power", "q": "reactive_power", "v": "voltage", "soc": "soc"}
        for key, value in values.items():
            if key not in pts:
                continue
            if key in quantity and bess.type_of(quantity[key]) == "scaled":
                raw = round(float(value) / bess.measured_scale.get(quantity[key], 1.0))
                value = c104.Int16(max(-32768, min(32767, raw)))
            pts[key].value = value


class Iec104Simulator(ProtocolSimulator):
    """The portfolio's IEC 104 devices: one RTU per host:port, one battery station per device."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.rtus: dict[tuple[str, int], BessRtu] = {}

    def add(self, asset: Any, endpoint: Any, name: str, lo: float, hi: float) -> str:
        e = endpoint
        rtu = self.rtus.setdefault((e.host, e.port), BessRtu(e.host, e.port))
        power = max(abs(lo), abs(hi)) if (lo, hi) != NO_LIMITS else 100.0
        clock = self.options.get("clock")
        rtu.add(name, e.points, e.common_address, energy_kwh=getattr(asset, "energy_kwh", 100.0),
                max_power_kw=power, soc_pct=getattr(asset, "initial_soc_pct", 50.0), measured_type=e.measured_type,
                measured_scale=dict(e.measured_scale), point_types=dict(e.point_types),
                **({"clock": clock.monotonic} if clock is not None else {}))
        return f"{e.host}:{e.port}"

    async def start(self) -> None:
        for rtu in self.rtus.values():
            await asyncio.to_thread(rtu.start)

    async def stop(self) -> None:
        for rtu in self.rtus.values():
            await asyncio.to_thread(rtu.stop)
