"""What lives across dispatch rounds: the OCPP central system (with its TLS), the adapters and their
connections; problems at start become alarms of the first round, never exceptions."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import ssl
from typing import Any

from flexopt.adapters.alarms import Alarm
from flexopt.adapters.base import DeviceAdapter
from flexopt.adapters.factory import adapter_for_asset, address_problems
from flexopt.adapters.fanout import connect_all
from flexopt.adapters.group import GroupAdapter
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.config.endpoints import OcppCentralSystem
from flexopt.operations.round import RoundOptions, run_round
from flexopt.operations.schedules import ScheduleRun


class DispatchSession:
    """What lives across rounds: the OCPP central system, the adapters and their connections."""

    def __init__(self, portfolio: Any, connect_wait_s: float = 15.0) -> None:
        self.portfolio = portfolio
        self.assets = {a.id: a for _, a in portfolio.assets()}
        self.connect_wait_s = connect_wait_s
        self.central: CentralSystem | None = None
        self.adapters: dict[str, DeviceAdapter] = {}
        self.startup_alarms: list[Alarm] = []
        self.connected: dict[str, bool] = {}

    def _ocpp_ids(self) -> list[str]:
        ids = []
        for adapter in self.adapters.values():
            children = adapter.children if isinstance(adapter, GroupAdapter) else [adapter]
            ids += [c.cp_id for c in children if getattr(c, "protocol", "") == "ocpp"]
        return ids

    async def start(self) -> None:
        """Start the central system (when chargers need it), build and connect every adapter. Problems become
        alarms of the first round, never exceptions."""
        for problem in address_problems(self.portfolio):
            self.startup_alarms.append(Alarm("critical", problem.split(":")[0].split(" ")[0], "address_conflict",
                                             problem))
        needs_ocpp = any(a.endpoint is not None and a.endpoint.protocol == "ocpp" for a in self.assets.values())
        listening = False
        if needs_ocpp:
            cfg = self.portfolio.ocpp_central_system
            if cfg is None:  # the loader requires it; a Portfolio built in code may not have it
                cfg = OcppCentralSystem()
                self.startup_alarms.append(Alarm(
                    "critical", "*", "central_system",
                    f"no ocpp_central_system in the portfolio: using {cfg.host}:{cfg.port}"))
            # built even when it cannot listen: the chargers' adapters then report them unreachable
            try:
                context = _ssl(cfg)
                self.central = CentralSystem(cfg.host, cfg.port, ssl_context=context,
                                             response_timeout_s=cfg.response_timeout_s)
                await self.central.start()
                listening = True
            except OSError as exc:  # port taken, certificate unreadable (ssl.SSLError is an OSError)
                self.startup_alarms.append(Alarm("critical", "*", "central_system",
                                                 f"cannot listen at {cfg.host}:{cfg.port}: {exc}"))
                if self.central is None:
                    self.central = CentralSystem(cfg.host, cfg.port, response_timeout_s=cfg.response_timeout_s)
        for asset in self.assets.values():
            try:
                adapter = adapter_for_asset(asset, self.central)
            except Exception as exc:  # a configuration the adapters cannot serve: an alarm, not a crash
                self.startup_alarms.append(Alarm("critical", asset.id, "adapter", f"{type(exc).__name__}: {exc}"))
                continue
            if adapter is not None:
                self.adapters[asset.id] = adapter
        ids = self._ocpp_ids()
        if listening and ids:
            central = self.central
            assert central is not None
            await central.wait_for(lambda: all(central.is_connected(i) and central.chargers[i].booted for i in ids),
                                   self.connect_wait_s)
        self.connected = await connect_all(self.adapters)

    async def round(self, schedule: ScheduleRun | None, at: dt.datetime, options: RoundOptions) -> dict[str, Any]:
        extra, self.startup_alarms = self.startup_alarms, []
        record = await run_round(self.adapters, schedule, at, self.assets, options, extra)
        if self.connected:  # the first round says which devices were there when dispatch started
            record["connected_at_start"] = dict(self.connected)
            self.connected = {}
        return record

    async def close(self) -> None:
        await asyncio.gather(*(a.close() for a in self.adapters.values()), return_exceptions=True)
        if self.central is not None:
            await self.central.stop()


def _ssl(cfg: Any) -> ssl.SSLContext | None:
    if not cfg.tls_cert_file:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    return context


def next_boundary(now: dt.datetime, resolution_min: int) -> dt.datetime:
    """The next interval start after ``now`` (interval boundaries are whole multiples of the resolution in UTC,
    which is also local for every whole-quarter-hour offset)."""
    step = resolution_min * 60
    epoch = now.timestamp()
    return dt.datetime.fromtimestamp((math.floor(epoch / step) + 1) * step, dt.UTC)
