"""Start a simulator for every device of a portfolio: what ``flexopt simulate`` runs.

An asset with ``count`` N is N simulated devices at the addresses of ``flexopt.config.endpoints.device_endpoints``
(Modbus units, IEC 104 stations, cloud device ids, charge point ids), each with one device's ratings, so
dispatch meets the same devices it would in the field. Devices that share a server (one Modbus port, one
RTU port, one cloud base URL) share one simulator. Charge points connect to the central system at
``ocpp_url`` and keep retrying.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flexopt.adapters.factory import address_problems, device_label, limits_for, setpoint_unit
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.adapters.sim.bess_rtu import BessRtu
from flexopt.adapters.sim.bms import BmsSimulator
from flexopt.adapters.sim.charge_point import Ev, SimChargePoint
from flexopt.adapters.sim.device_cloud import DeviceCloud
from flexopt.config.endpoints import device_endpoints

log = logging.getLogger("flexopt.sim")
DEFAULT_TOKEN = "sim-token"


@dataclass
class Running:
    """One line of the summary: what runs where, for which assets."""

    protocol: str
    address: str
    assets: list[str] = field(default_factory=list)
    note: str = ""
    devices: int = 0


def _range(asset: Any) -> tuple[float, float]:
    """What one device accepts (per-device limits, as the adapters clamp)."""
    limits = limits_for(asset)
    return (limits.min_value, limits.max_value) if limits else (-1e9, 1e9)


class PortfolioSimulation:
    def __init__(self, portfolio: Any, ocpp_url: str = "ws://127.0.0.1:9000", central: bool = False,
                 ocpp_retry_s: float = 2.0) -> None:
        self.portfolio = portfolio
        self.ocpp_url = ocpp_url.rstrip("/")
        self.run_central = central
        self.ocpp_retry_s = ocpp_retry_s
        self.rtus: dict[tuple[str, int], BessRtu] = {}
        self.bms: dict[tuple[str, int], BmsSimulator] = {}
        self.clouds: dict[str, DeviceCloud] = {}
        self.chargers: list[SimChargePoint] = []
        self.central: CentralSystem | None = None
        self.summary: list[Running] = []
        self._tasks: list[asyncio.Task] = []
        self._build()

    @property
    def device_count(self) -> int:
        return sum(row.devices for row in self.summary if row.protocol != "ocpp-csms")

    def charger(self, cp_id: str) -> SimChargePoint:
        return next(cp for cp in self.chargers if cp.cp_id == cp_id)

    # --- building -----------------------------------------------------------------------------
    def _build(self) -> None:
        problems = address_problems(self.portfolio)
        if problems:
            raise ValueError("devices cannot be told apart:\n  " + "\n  ".join(problems))
        rows: dict[tuple[str, str], Running] = {}
        passwords: dict[str, str | None] = {}
        for _site, asset in self.portfolio.assets():
            if asset.endpoint is None:
                continue
            lo, hi = _range(asset)
            for e in device_endpoints(asset.endpoint, asset.count):
                name = asset.id if asset.count == 1 else f"{asset.id}/{device_label(e)}"
                key = self._add_device(asset, e, name, lo, hi, passwords)
                row = rows.setdefault(key, Running(*key))
                row.devices += 1
                if asset.id not in row.assets:
                    row.assets.append(asset.id)
        for key, row in rows.items():
            notes = [f"{row.devices} devices" if row.devices != 1 else "1 device"]
            if key[0] == "http":
                cloud = self.clouds[key[1]]
                notes.append(f"token {'from env' if cloud.token != DEFAULT_TOKEN else DEFAULT_TOKEN}")
            row.note = "; ".join(notes)
        if self.run_central and self.chargers:
            u = urlsplit(self.ocpp_url)
            self.central = CentralSystem(u.hostname or "127.0.0.1", u.port or 9000)
            for cp_id, password in passwords.items():
                self.central.register(cp_id, password)
            rows[("ocpp-csms", self.ocpp_url)] = Running("ocpp-csms", self.ocpp_url, [], "embedded central system")
        self.summary = list(rows.values())

    def _add_device(self, asset: Any, e: Any, name: str, lo: float, hi: float,
                    passwords: dict[str, str | None]) -> tuple[str, str]:
        """One simulated device with one device's ratings; returns its summary row key."""
        if e.protocol == "iec104":
            rtu = self.rtus.setdefault((e.host, e.port), BessRtu(e.host, e.port))
            power = max(abs(lo), abs(hi)) if (lo, hi) != (-1e9, 1e9) else 100.0
            rtu.add(name, e.points, e.common_address, energy_kwh=getattr(asset, "energy_kwh", 100.0),
                    max_power_kw=power, soc_pct=getattr(asset, "initial_soc_pct", 50.0))
            return ("iec104", f"{e.host}:{e.port}")
        if e.protocol == "modbus":
            sim = self.bms.setdefault((e.host, e.port), BmsSimulator(e.host, e.port))
            kind = self._bms_kind(asset, e)
            state = {"pv_available_kw": 0.6 * asset.peak_kw} if kind == "pv" else {}
            sim.add(name, e, kind, min_value=lo, max_value=hi, **state)
            return ("modbus", f"{e.host}:{e.port}")
        if e.protocol == "http":
            cloud = self._cloud(e)
            kind, state = self._cloud_kind(asset, e)
            routes = len(cloud.devices)
            cloud.add_device(name, e, kind, min_value=lo, max_value=hi, **state)
            if len(cloud.devices) != routes + 2:
                raise ValueError(f"{name}: its setpoint/telemetry paths at {e.base_url} are another device's too "
                                 "(put {device_id} in the paths)")
            return ("http", e.base_url)
        password = os.environ.get(e.password_env) if e.password_env else None
        passwords[e.charge_point_id] = password
        ev = Ev(max_w=getattr(asset, "max_charge_kw", 11.0) * 1000.0)
        cp = SimChargePoint(e.charge_point_id, self.ocpp_url, e.version, password=password,
                            connector_id=e.connector_id, ev=ev, max_w=ev.max_w)
        # profiles in amps mean the charger's own wiring (a 3.7 kW wallbox is one phase of 16 A)
        cp.book.voltage_v, cp.book.phases = getattr(asset, "voltage_v", 230.0), getattr(asset, "phases", 3)
        self.chargers.append(cp)
        return ("ocpp", self.ocpp_url)

    def _cloud(self, e: Any) -> DeviceCloud:
        if e.base_url not in self.clouds:
            u = urlsplit(e.base_url)
            if u.scheme != "http":
                raise ValueError(f"{e.base_url}: the simulated cloud serves plain http only")
            token = os.environ.get(e.token_env) if e.token_env else None
            token = token or (DEFAULT_TOKEN if e.token_env else None)
            self.clouds[e.base_url] = DeviceCloud(token=token, host=u.hostname or "127.0.0.1", port=u.port or 80)
        return self.clouds[e.base_url]

    @staticmethod
    def _bms_kind(asset: Any, e: Any) -> Any:
        kind = {"pv": "pv", "ev_charger": "charger", "battery": "battery"}.get(asset.type)
        return kind or ("climate" if setpoint_unit(e) == "degC" else "power")

    @staticmethod
    def _cloud_kind(asset: Any, e: Any) -> tuple[str, dict[str, float]]:
        unit = setpoint_unit(e)
        if unit == "degC":
            return "split", {"temp_c": getattr(asset, "initial_temp_c", 21.0)}
        if unit == "on_off" or asset.type == "water_heater":
            rated = getattr(asset, "element_kw", 2.0)
            return "water_heater", {"max_kw": rated, "temp_c": getattr(asset, "initial_temp_c", 55.0)}
        if asset.type == "battery":
            return "battery", {"soc_pct": asset.initial_soc_pct, "energy_kwh": asset.energy_kwh}
        return "power", {}

    # --- running ------------------------------------------------------------------------------
    async def start(self) -> None:
        for rtu in self.rtus.values():
            await asyncio.to_thread(rtu.start)
        for sim in self.bms.values():
            await sim.start()
        for cloud in self.clouds.values():
            await cloud.start()
        if self.central is not None:
            await self.central.start()
        self._tasks = [asyncio.create_task(cp.run_forever(self.ocpp_retry_s)) for cp in self.chargers]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.central is not None:
            await self.central.stop()
        for cloud in self.clouds.values():
            await cloud.stop()
        for sim in self.bms.values():
            await sim.stop()
        for rtu in self.rtus.values():
            await asyncio.to_thread(rtu.stop)

    def tokens_to_export(self) -> dict[str, str]:
        """Env vars the adapters need for the simulated clouds (set them before running flexopt)."""
        out = {}
        for _site, asset in self.portfolio.assets():
            e = asset.endpoint
            if e is not None and e.protocol == "http" and e.token_env and not os.environ.get(e.token_env):
                out[e.token_env] = DEFAULT_TOKEN
        return out

