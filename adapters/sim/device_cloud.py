"""A simulated vendor cloud for splits, water heaters and power-controlled sites over HTTP/JSON.

Its routes and JSON shapes come from each device's HttpEndpoint (the same mapping the adapter uses,
read in reverse), so any configured vendor layout can be simulated. Token-protected; faults
(status codes, Retry-After, non-JSON bodies, slow answers) can be queued for tests.
:class:`HttpSimulator` is the protocol's simulator for ``flexopt simulate``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from flexopt.adapters.base import TELEMETRY_FIELDS, convert
from flexopt.adapters.http_mapping import field_for, find_placeholder, render_path, set_path
from flexopt.adapters.sim.base import ProtocolSimulator
from flexopt.adapters.sim.http_server import HttpServer, Request, Response
from flexopt.config.endpoints import HttpEndpoint

Kind = Literal["split", "water_heater", "power", "battery", "pv"]
DEFAULT_TOKEN = "sim-token"  # what a simulated cloud accepts when the token's environment variable is not set


@dataclass
class CloudDevice:
    """Simple physics, advanced on every access: a split drives the room to its setpoint, a water
    heater heats while on (up to its thermostat), a power device draws what it is told (a battery
    also integrates its SoC)."""

    asset_id: str
    endpoint: HttpEndpoint
    kind: Kind
    min_value: float
    max_value: float
    max_kw: float = 3.0
    temp_c: float = 20.0
    setpoint: float = 0.0
    power_kw: float = 0.0
    soc_pct: float | None = None  # batteries only
    energy_kwh: float = 10.0
    online: bool = True
    clock: Callable[[], float] = time.monotonic  # seconds; a replay's simulated clock
    pv_profile: Callable[[float], float] | None = None  # available PV kW at a clock time (a replay's day)
    pv_available_kw: float = 0.0
    last: float | None = None

    def __post_init__(self) -> None:
        self.last = self.clock()

    def advance(self) -> None:
        now = self.clock()
        dt_s, self.last = now - self.last, now
        if self.kind == "split":
            gap = self.setpoint - self.temp_c
            self.power_kw = min(self.max_kw, 0.3 + 0.5 * abs(gap)) if abs(gap) > 0.05 else 0.3
            self.temp_c += max(-abs(gap), min(abs(gap), gap * 0.1 * dt_s))
        elif self.kind == "water_heater":  # a relay (on_off) or a power setpoint (kW/W)
            unit = self.endpoint.setpoint_unit
            want = (self.max_kw if self.setpoint >= 0.5 else 0.0) if unit == "on_off" else convert(
                self.setpoint, unit, "kW")
            self.power_kw = max(0.0, want) if self.temp_c < 75.0 else 0.0
            self.temp_c = min(75.0, self.temp_c + (0.05 * dt_s if self.power_kw > 0 else -0.001 * dt_s))
        elif self.kind == "pv":  # setpoint = export limit in kW (curtailment)
            if self.pv_profile is not None:
                self.pv_available_kw = self.pv_profile(now)
            limit = convert(self.setpoint, self.endpoint.setpoint_unit, "kW")
            self.power_kw = -min(self.pv_available_kw, max(limit, 0.0)) if self.online else 0.0
        else:
            if self.soc_pct is not None:  # a battery: SoC integrates, power stops at empty/full
                delta = 100.0 * self.power_kw * dt_s / 3600 / self.energy_kwh
                self.soc_pct = min(100.0, max(0.0, self.soc_pct + delta))
            p = convert(self.setpoint, self.endpoint.setpoint_unit, "kW")
            full = self.soc_pct is not None and ((p > 0 and self.soc_pct >= 100) or (p < 0 and self.soc_pct <= 0))
            self.power_kw = 0.0 if full else p

    def reading(self, name: str) -> object:
        target, factor = field_for(name, TELEMETRY_FIELDS)
        values = {
            "available": self.online,
            "active_power_kw": self.power_kw,
            "temp_c": self.temp_c if self.kind in ("split", "water_heater") else None,
            "soc_pct": self.soc_pct,
            "setpoint": self.setpoint,
        }
        v = values.get(target or name)
        return v / factor if isinstance(v, float) and factor != 1.0 else v


@dataclass
class Fault:
    status: int
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"


class DeviceCloud:
    def __init__(self, token: str | None = "sim-token", host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.devices: dict[tuple[str, str], tuple[CloudDevice, str]] = {}
        self.faults: deque[Fault] = deque()
        self.delay_s = 0.0
        self.requests: list[tuple[float, str, str, int]] = []  # (monotonic, method, path, status)
        self.server = HttpServer(self._handle, host, port)

    @property
    def url(self) -> str:
        return self.server.url

    def add_device(self, asset_id: str, endpoint: HttpEndpoint, kind: Kind, min_value: float, max_value: float,
                   path_asset_id: str | None = None, **state: float) -> CloudDevice:
        """A device at the routes its endpoint names; ``{asset_id}`` there is ``path_asset_id`` (the portfolio
        asset's id, the same for every device of a counted asset), else ``asset_id``."""
        dev = CloudDevice(asset_id, endpoint, kind, min_value, max_value, **state)
        values = {"device_id": endpoint.device_id, "asset_id": path_asset_id or asset_id}
        for spec, role in ((endpoint.setpoint, "setpoint"), (endpoint.telemetry, "telemetry")):
            path = render_path(spec.path, values)
            self.devices[(spec.method, path)] = (dev, role)
        return dev

    def inject(self, status: int, times: int = 1, retry_after: str | None = None, body: bytes | None = None,
               content_type: str = "application/json") -> None:
        """The next ``times`` requests (any device) get this answer instead of the real one."""
        self.faults.extend(Fault(status, retry_after, body, content_type) for _ in range(times))

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def _handle(self, req: Request) -> Response:
        resp = await self._answer(req)
        self.requests.append((time.monotonic(), req.method, req.path, resp.status))
        return resp

    async def _answer(self, req: Request) -> Response:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.token and req.headers.get("authorization") != f"Bearer {self.token}":
            return Response.json({"error": "invalid token"}, 401)
        if self.faults:
            f = self.faults.popleft()
            headers = {"Content-Type": f.content_type} | ({"Retry-After": f.retry_after} if f.retry_after else {})
            return Response(f.status, f.body if f.body is not None else b'{"error": "injected"}', headers)
        hit = self.devices.get((req.method, req.path))
        if hit is None:
            return Response.json({"error": f"no route {req.method} {req.path}"}, 404)
        dev, role = hit
        dev.advance()
        spec = dev.endpoint.setpoint if role == "setpoint" else dev.endpoint.telemetry
        if role == "setpoint":
            found = find_placeholder(spec.body, req.json()) if spec.body is not None else None
            if found is None:
                return Response.json({"error": "no value in body"}, 422)
            name, raw = found
            value = (1.0 if raw else 0.0) if name == "on" else float(raw)
            if not dev.min_value <= value <= dev.max_value:
                return Response.json({"error": f"value {value} outside [{dev.min_value}, {dev.max_value}]"}, 422)
            dev.setpoint = value
            dev.advance()
            reply: dict = {"status": "accepted", "value": value}
        else:
            reply = {}
        for name, path in spec.fields.items():
            value = "accepted" if name == "status" else dev.reading(name)
            if value is not None:
                set_path(reply, path, value)
        return Response.json(reply)


class HttpSimulator(ProtocolSimulator):
    """The portfolio's cloud devices: one simulated cloud per base URL (plain http), each device at its own
    routes; a cloud takes the token from its ``token_env`` variable, else :data:`DEFAULT_TOKEN`."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.clouds: dict[str, DeviceCloud] = {}
        self._token_envs: set[str] = set()

    def add(self, asset: Any, endpoint: Any, name: str, lo: float, hi: float) -> str:
        e = endpoint
        cloud = self._cloud(e)
        kind, state = self._kind(asset, e)
        if self.options.get("clock") is not None:
            state["clock"] = self.options["clock"].monotonic
        if kind == "pv" and asset.id in (self.options.get("pv_profiles") or {}):
            state["pv_profile"] = self.options["pv_profiles"][asset.id]
        routes = len(cloud.devices)
        cloud.add_device(name, e, kind, min_value=lo, max_value=hi, path_asset_id=asset.id, **state)
        if len(cloud.devices) != routes + 2:
            raise ValueError(f"{name}: its setpoint/telemetry paths at {e.base_url} are another device's too "
                             "(put {device_id} in the paths)")
        return e.base_url

    def _cloud(self, e: HttpEndpoint) -> DeviceCloud:
        if e.base_url not in self.clouds:
            u = urlsplit(e.base_url)
            if u.scheme != "http":
                raise ValueError(f"{e.base_url}: the simulated cloud serves plain http only")
            token = os.environ.get(e.token_env) if e.token_env else None
            token = token or (DEFAULT_TOKEN if e.token_env else None)
            self.clouds[e.base_url] = DeviceCloud(token=token, host=u.hostname or "127.0.0.1", port=u.port or 80)
        if e.token_env:
            self._token_envs.add(e.token_env)
        return self.clouds[e.base_url]

    @staticmethod
    def _kind(asset: Any, e: HttpEndpoint) -> tuple[Kind, dict[str, float]]:
        unit = e.device_unit()
        if unit == "degC":
            return "split", {"temp_c": getattr(asset, "initial_temp_c", 21.0)}
        if unit == "on_off" or asset.type == "water_heater":
            rated = getattr(asset, "element_kw", 2.0)
            return "water_heater", {"max_kw": rated, "temp_c": getattr(asset, "initial_temp_c", 55.0)}
        if asset.type == "battery":
            return "battery", {"soc_pct": asset.initial_soc_pct, "energy_kwh": asset.energy_kwh}
        if asset.type == "pv":
            return "pv", {"pv_available_kw": 0.6 * asset.peak_kw}
        return "power", {}

    def notes(self, address: str) -> list[str]:
        return [f"token {'from env' if self.clouds[address].token != DEFAULT_TOKEN else DEFAULT_TOKEN}"]

    def env_to_export(self) -> dict[str, str]:
        return {env: DEFAULT_TOKEN for env in sorted(self._token_envs) if not os.environ.get(env)}

    async def start(self) -> None:
        for cloud in self.clouds.values():
            await cloud.start()

    async def stop(self) -> None:
        for cloud in self.clouds.values():
            await cloud.stop()
