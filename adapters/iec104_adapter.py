"""IEC 60870-5-104: an active-power setpoint (C_SE_NC_1) and measured P, Q, V, SoC, availability.

The c104 client runs in a child process per connection (:mod:`flexopt.adapters.iec104_worker`, the protocol logic
in :mod:`flexopt.adapters.iec104_link`): c104 2.2.1 crashes its process with SIGSEGV when a device accepts the TCP
connection and closes it (FIN, and often RST), and no device may take dispatch down. A child that dies fails its
call as ``unreachable``, becomes a ``client_crashed`` event (a critical alarm of the round) and is started again on
the next call after a backoff (0.5 s doubling to 5 s while it keeps dying). This process never loads c104.
"""

from __future__ import annotations

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
from flexopt.adapters.worker import WorkerDied, WorkerFailed, WorkerProcess
from flexopt.config.endpoints import Iec104Endpoint

WORKER_MODULE = "flexopt.adapters.iec104_worker"
START_S = 5.0  # what starting the child (a Python process importing c104) may add to a call, on a loaded machine


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
        e = endpoint
        self.worker = WorkerProcess(WORKER_MODULE, [e.model_dump_json(), repr(link_wait_s)],
                                    name=f"IEC 104 client for {e.host}:{e.port} CA {e.common_address}")

    @property
    def is_open(self) -> bool:
        """The link is up, as its child process last said."""
        return self.worker.alive and self.worker.events.get("state") == "OPEN"

    async def _call(self, op: str, **args: Any) -> Any:
        try:
            result = await self.worker.call(op, self.op_timeout_s, **args)
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
        await self.worker.close()

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
        deaths = self.worker.take_deaths()
        if not deaths:
            return []
        times = "once" if len(deaths) == 1 else f"{len(deaths)} times"
        return [AdapterEvent("critical", "client_crashed",
                             f"{self.worker.name} died {times} (last: {deaths[-1].reason}); restarted on the next "
                             "call with backoff", deaths[-1].at)]
