"""What lives across dispatch rounds: the protocols' session services (OCPP's central system), the adapters and
their connections; problems at start become alarms of the first round, never exceptions."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path
from typing import Any

from flexopt.adapters.alarms import Alarm
from flexopt.adapters.base import DeviceAdapter, SessionService
from flexopt.adapters.factory import adapter_for_asset, address_problems
from flexopt.adapters.fanout import connect_all
from flexopt.config.endpoints import device_endpoints
from flexopt.config.protocols import ProtocolError, protocol_of, resolve
from flexopt.operations.round import RoundOptions, run_round
from flexopt.operations.schedules import ScheduleRun


class DispatchSession:
    """What lives across rounds: the session services, the adapters and their connections."""

    def __init__(self, portfolio: Any, connect_wait_s: float = 15.0, state_dir: Path | None = None) -> None:
        self.portfolio = portfolio
        self.state_dir = state_dir  # where session services keep what outlives the process (OCPP transactions)
        self.assets = {a.id: a for _, a in portfolio.assets()}
        self.connect_wait_s = connect_wait_s
        self.services: dict[str, SessionService] = {}
        self.adapters: dict[str, DeviceAdapter] = {}
        self.startup_alarms: list[Alarm] = []
        self.connected: dict[str, bool] = {}

    async def start(self) -> None:
        """Start the session service of every protocol that has one (before the adapters, which are given it),
        build and connect every adapter, and give devices that connect to us time to come. Problems become
        alarms of the first round, never exceptions."""
        for problem in address_problems(self.portfolio):
            self.startup_alarms.append(Alarm("critical", problem.split(":")[0].split(" ")[0], "address_conflict",
                                             problem))
        await self._start_services()
        for asset in self.assets.values():
            try:
                adapter = adapter_for_asset(asset, self.services)
            except Exception as exc:  # a configuration the adapters cannot serve: an alarm, not a crash
                self.startup_alarms.append(Alarm("critical", asset.id, "adapter", f"{type(exc).__name__}: {exc}"))
                continue
            if adapter is not None:
                self.adapters[asset.id] = adapter
        await asyncio.gather(*(service.wait_for_devices(self._endpoints(name), self.connect_wait_s)
                               for name, service in self.services.items()))
        self.connected = await connect_all(self.adapters)

    async def _start_services(self) -> None:
        specs: dict[str, Any] = {}
        for asset in self.assets.values():
            try:
                spec = protocol_of(asset.endpoint) if asset.endpoint is not None else None
            except ProtocolError:
                continue  # its adapter cannot be built either: that is the asset's alarm
            if spec is not None and spec.service is not None:
                specs.setdefault(spec.name, spec)
        for name, spec in specs.items():
            try:
                service = resolve(spec.service)(self.portfolio)
            except Exception as exc:
                self.startup_alarms.append(Alarm("critical", "*", "service", f"{name}: {type(exc).__name__}: {exc}"))
                continue
            # kept even when it cannot serve: the protocol's adapters then report their devices unreachable
            self.services[name] = service
            if self.state_dir is not None:
                service.use_state_dir(self.state_dir / name)
            for problem in await service.open():
                self.startup_alarms.append(Alarm("critical", "*", service.alarm_kind, problem))

    def _endpoints(self, protocol: str) -> list[Any]:
        """The devices of the protocol whose adapters were built."""
        return [e for asset_id in self.adapters for e in _devices(self.assets[asset_id]) if e.protocol == protocol]

    async def round(self, schedule: ScheduleRun | None, at: dt.datetime, options: RoundOptions) -> dict[str, Any]:
        extra, self.startup_alarms = self.startup_alarms, []
        record = await run_round(self.adapters, schedule, at, self.assets, options, extra)
        if self.connected:  # the first round says which devices were there when dispatch started
            record["connected_at_start"] = dict(self.connected)
            self.connected = {}
        return record

    async def close(self) -> None:
        await asyncio.gather(*(a.close() for a in self.adapters.values()), return_exceptions=True)
        for service in self.services.values():
            await service.close()


def _devices(asset: Any) -> list[Any]:
    return device_endpoints(asset.endpoint, asset.count) if asset.endpoint is not None else []


def next_boundary(now: dt.datetime, resolution_min: int) -> dt.datetime:
    """The next interval start after ``now`` (interval boundaries are whole multiples of the resolution in UTC,
    which is also local for every whole-quarter-hour offset)."""
    step = resolution_min * 60
    epoch = now.timestamp()
    return dt.datetime.fromtimestamp((math.floor(epoch / step) + 1) * step, dt.UTC)
