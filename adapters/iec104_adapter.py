"""IEC 60870-5-104: an active-power setpoint (C_SE_NC_1) and measured P, Q, V, SoC, availability.

The stations (common addresses) behind one RTU or gateway (host:port) share one connection, and so one child
process: many RTUs accept a single controlling station, and each child costs about 40 MB.

The c104 client runs in a child process per connection (:mod:`flexopt.adapters.iec104_worker`, the protocol logic
in :mod:`flexopt.adapters.iec104_link`): c104 2.2.1 crashes its process with SIGSEGV when a device accepts the TCP
connection and closes it (FIN, and often RST), and no device may take dispatch down. A child that dies fails its
call as ``unreachable``, becomes a ``client_crashed`` event (a critical alarm of the round) and is started again on
the next call after a backoff (0.5 s doubling to 5 s while it keeps dying). This process never loads c104.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flexopt.adapters.base import (
    AdapterError,
    AdapterEvent,
    CommandStatus,
    DeviceAdapter,
    Setpoint,
    SetpointLimits,
    Telemetry,
    convert,
    utcnow,
)
from flexopt.adapters.worker import Death, WorkerDied, WorkerFailed, WorkerProcess
from flexopt.config.endpoints import Iec104Endpoint

WORKER_MODULE = "flexopt.adapters.iec104_worker"
START_S = 5.0  # what starting the child (a Python process importing c104) may add to a call, on a loaded machine


class _Gateway:
    """The child process of one host:port, shared by the adapters of the stations behind it; its deaths are told to
    each of them (every adapter reports them in its own round's alarms)."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.loop = asyncio.get_running_loop()  # its child's pipes live in this loop
        self.users: set[int] = set()
        self.deaths: list[Death] = []

    def collect(self) -> list[Death]:
        self.deaths += self.worker.take_deaths()
        return self.deaths


_GATEWAYS: dict[tuple[int, str, int], _Gateway] = {}


def _gateway(endpoint: Iec104Endpoint, link_wait_s: float, user: object) -> _Gateway:
    loop = asyncio.get_running_loop()
    key = (id(loop), endpoint.host, endpoint.port)
    gateway = _GATEWAYS.get(key)
    if gateway is None or gateway.loop is not loop:  # none yet, or one left by a loop that is gone (its id reused)
        e = endpoint
        worker = WorkerProcess(WORKER_MODULE, [e.model_dump_json(), repr(link_wait_s)],
                               name=f"IEC 104 client for {e.host}:{e.port}")
        gateway = _GATEWAYS[key] = _Gateway(worker)
    gateway.users.add(id(user))
    return gateway


async def _release(gateway: _Gateway, user: object) -> None:
    gateway.users.discard(id(user))
    if not gateway.users:
        for key, value in list(_GATEWAYS.items()):
            if value is gateway:
                del _GATEWAYS[key]
        await gateway.worker.close()


class Iec104Adapter(DeviceAdapter):
    protocol = "iec104"

    def __init__(
        self,
        asset_id: str,
        endpoint: Iec104Endpoint,
        limits: SetpointLimits | None = None,
        link_wait_s: float | None = None,
    ) -> None:
        cmd_s = endpoint.command_timeout_ms / 1000.0
        if link_wait_s is None:  # how long a call waits for a dropped link to come back: 2 s, less for fast RTUs
            link_wait_s = min(2.0, max(0.5, 2 * cmd_s))
        self.op_timeout_s = link_wait_s + 2 * cmd_s + 2.0 + START_S  # then the child is taken as hung and killed
        super().__init__(asset_id, limits, call_timeout_s=self.op_timeout_s + 1.0)
        self.endpoint = endpoint
        self.link_wait_s = link_wait_s
        self._gateway: _Gateway | None = None
        self._deaths_told = 0

    @property
    def gateway(self) -> _Gateway:
        """The connection (child process) of this RTU's host:port, shared with its other stations."""
        if self._gateway is None:
            self._gateway = _gateway(self.endpoint, self.link_wait_s, self)
            self._deaths_told = len(self._gateway.collect())
        return self._gateway

    @property
    def worker(self) -> WorkerProcess:
        return self.gateway.worker

    @property
    def is_open(self) -> bool:
        """The link is up, as its child process last said."""
        return self.worker.alive and self.worker.events.get("state") == "OPEN"

    async def _call(self, op: str, **args: Any) -> Any:
        e = self.endpoint
        try:
            result = await self.worker.call(op, self.op_timeout_s, endpoint=e.model_dump_json(),
                                            ca=e.common_address, **args)
        except WorkerFailed as exc:
            raise AdapterError(exc.status, exc.reason) from None  # type: ignore[arg-type]
        except WorkerDied as exc:
            raise AdapterError("unreachable", str(exc)) from None
        if isinstance(result, dict) and result.get("open"):
            self.worker.healthy()
        return result

    # --- DeviceAdapter --------------------------------------------------------------------------
    async def _connect(self) -> None:
        await self._call("connect")

    async def _close(self) -> None:
        if self._gateway is not None:
            gateway, self._gateway = self._gateway, None
            gateway.collect()
            await _release(gateway, self)

    async def _send(self, command: Setpoint) -> tuple[CommandStatus, str]:
        try:
            value_kw = convert(command.value, command.unit, "kW")
        except ValueError as exc:
            raise AdapterError("invalid", f"IEC 104 setpoints are active power; got {command.unit}") from exc
        result = await self._call("send", value_kw=value_kw)
        return result["status"], result["reason"]

    async def _read(self) -> Telemetry:
        result = await self._call("read")
        return Telemetry(asset_id=self.asset_id, at=utcnow(), connected=True, quality=result["quality"],
                         notes=result["notes"], **result["data"])

    def take_events(self) -> list[AdapterEvent]:
        """The deaths of the client process since the last call of this, as one critical ``client_crashed``."""
        if self._gateway is None:
            return []
        history = self._gateway.collect()
        deaths, self._deaths_told = history[self._deaths_told:], len(history)
        if not deaths:
            return []
        times = "once" if len(deaths) == 1 else f"{len(deaths)} times"
        return [AdapterEvent("critical", "client_crashed",
                             f"{self.worker.name} died {times} (last: {deaths[-1].reason}); restarted on the next "
                             "call with backoff", deaths[-1].at)]
