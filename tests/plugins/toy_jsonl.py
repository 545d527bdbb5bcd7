"""A toy protocol as a plug-in would ship it, touching no file of flexopt: devices that speak one JSON object per
line over TCP. Its endpoint class, its adapter and its simulator, registered once as ``PROTOCOL``.

Wire format, one line each way: ``{"op": "set", "unit": "bess-1", "kw": 5.0}`` -> ``{"ok": true, "kw": 5.0}``, and
``{"op": "read", "unit": "bess-1"}`` -> ``{"ok": true, "kw": 5.0, "setpoint": 5.0}``; a refusal is
``{"ok": false, "error": "..."}``. The simulator refuses setpoints outside the device's ratings (so an unclamped
value would show) and prints every setpoint it takes as ``jsonl-sim: <unit> set <kw>`` on stdout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from flexopt.adapters.base import CommandStatus, DeviceAdapter, Setpoint, SetpointLimits, Telemetry, utcnow
from flexopt.adapters.sim.base import ProtocolSimulator
from flexopt.config.protocols import EndpointBase, Protocol


class JsonlEndpoint(EndpointBase):
    """A device at ``unit`` behind a line-based JSON server."""

    protocol: Literal["jsonl"]
    host: str
    port: int = Field(ge=1, le=65535)
    unit: str = Field(min_length=1, description="the device's name at its server")

    def device(self, k: int) -> JsonlEndpoint:
        return self.model_copy(update={"unit": f"{self.unit}-{k}"})

    def address(self) -> tuple:
        return (self.host, self.port, self.unit)

    def label(self) -> str:
        return self.unit


class JsonlAdapter(DeviceAdapter):
    """One device; one connection, one request line and one answer line at a time."""

    protocol = "jsonl"

    def __init__(self, asset_id: str, endpoint: JsonlEndpoint, limits: SetpointLimits | None = None) -> None:
        super().__init__(asset_id, limits, call_timeout_s=3.0)
        self.endpoint = endpoint
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> None:
        if self._stream is None:
            self._stream = await asyncio.open_connection(self.endpoint.host, self.endpoint.port)

    async def _close(self) -> None:
        if self._stream is not None:
            writer = self._stream[1]
            self._stream = None
            writer.close()
            await writer.wait_closed()

    async def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            try:
                await self._connect()
                assert self._stream is not None
                reader, writer = self._stream
                writer.write(json.dumps({**message, "unit": self.endpoint.unit}).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
                if not line:
                    raise ConnectionError("the device closed the connection")
                return json.loads(line)
            except BaseException:
                self._stream = None  # reconnect on the next call
                raise

    async def _send(self, command: Setpoint) -> tuple[CommandStatus, str]:
        reply = await self._call({"op": "set", "kw": command.value})
        if not reply["ok"]:
            return "rejected", reply["error"]
        return ("confirmed", "") if reply["kw"] == command.value else ("unconfirmed", f"device says {reply['kw']}")

    async def _read(self) -> Telemetry:
        reply = await self._call({"op": "read"})
        return Telemetry(self.asset_id, utcnow(), connected=True, available=reply["ok"],
                         active_power_kw=reply.get("kw"), setpoint=reply.get("setpoint"))


class JsonlSimulator(ProtocolSimulator):
    """One asyncio TCP server per host:port, each device by its unit; power follows the setpoint at once."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.devices: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
        self.received: list[tuple[str, float]] = []
        self._servers: list[asyncio.Server] = []

    def add(self, asset: Any, endpoint: Any, name: str, lo: float, hi: float) -> str:
        units = self.devices.setdefault((endpoint.host, endpoint.port), {})
        units[endpoint.unit] = {"lo": lo, "hi": hi, "kw": 0.0, "setpoint": None}
        return f"{endpoint.host}:{endpoint.port}"

    async def start(self) -> None:
        for (host, port), units in self.devices.items():
            self._servers.append(await asyncio.start_server(lambda r, w, u=units: self._serve(u, r, w), host, port))

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    async def _serve(self, units: dict[str, dict[str, Any]], reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(json.dumps(self._answer(units, json.loads(line))).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _answer(self, units: dict[str, dict[str, Any]], request: dict[str, Any]) -> dict[str, Any]:
        device = units.get(request.get("unit"))
        if device is None:
            return {"ok": False, "error": f"no unit {request.get('unit')!r}"}
        if request["op"] == "read":
            return {"ok": True, "kw": device["kw"], "setpoint": device["setpoint"]}
        kw = float(request["kw"])
        if not device["lo"] <= kw <= device["hi"]:
            return {"ok": False, "error": f"{kw} kW is outside {device['lo']}..{device['hi']}"}
        device["kw"] = device["setpoint"] = kw
        self.received.append((request["unit"], kw))
        print(f"jsonl-sim: {request['unit']} set {kw}", flush=True)
        return {"ok": True, "kw": kw}


PROTOCOL = Protocol("jsonl", JsonlEndpoint, adapter=JsonlAdapter, simulator=JsonlSimulator)
