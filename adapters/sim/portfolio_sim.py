"""Start a simulator for every endpoint of a portfolio: what ``flexopt simulate`` runs.

Endpoints that share a server (one Modbus port, one RTU port, one cloud base URL) share one
simulator. Charge points connect to the central system at ``ocpp_url`` and keep retrying.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flexopt.adapters.factory import limits_for, setpoint_unit
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.adapters.sim.bess_rtu import BessRtu
from flexopt.adapters.sim.bms import BmsSimulator
from flexopt.adapters.sim.charge_point import Ev, SimChargePoint
from flexopt.adapters.sim.device_cloud import DeviceCloud

log = logging.getLogger("flexopt.sim")
DEFAULT_TOKEN = "sim-token"


@dataclass
class Running:
    """One line of the summary: what runs where, for which assets."""

    protocol: str
    address: str
    assets: list[str] = field(default_factory=list)
    note: str = ""


def _range(asset: Any) -> tuple[float, float]:
    limits = limits_for(asset)
    return (limits.min_value, limits.max_value) if limits else (-1e9, 1e9)


class PortfolioSimulation:
    def __init__(self, portfolio: Any, ocpp_url: str = "ws://127.0.0.1:9000", central: bool = False) -> None:
        self.portfolio = portfolio
        self.ocpp_url = ocpp_url.rstrip("/")
        self.run_central = central
        self.rtus: dict[tuple[str, int], BessRtu] = {}
        self.bms: dict[tuple[str, int], BmsSimulator] = {}
        self.clouds: dict[str, DeviceCloud] = {}
        self.chargers: list[SimChargePoint] = []
        self.central: CentralSystem | None = None
        self.summary: list[Running] = []
        self._tasks: list[asyncio.Task] = []
        self._build()

    # --- building -----------------------------------------------------------------------------
    def _build(self) -> None:
        rows: dict[tuple[str, str], Running] = {}
        passwords: dict[str, str | None] = {}
        for _site, asset in self.portfolio.assets():
            e = asset.endpoint
            if e is None:
                continue
            lo, hi = _range(asset)
            if e.protocol == "iec104":
                rtu = self.rtus.setdefault((e.host, e.port), BessRtu(e.host, e.port))
                energy = getattr(asset, "energy_kwh", 100.0) * asset.count
                power = max(abs(lo), abs(hi)) if (lo, hi) != (-1e9, 1e9) else 100.0
                soc = getattr(asset, "initial_soc_pct", 50.0)
                rtu.add(asset.id, e.points, e.common_address, energy_kwh=energy, max_power_kw=power, soc_pct=soc)
                key = ("iec104", f"{e.host}:{e.port}")
            elif e.protocol == "modbus":
                sim = self.bms.setdefault((e.host, e.port), BmsSimulator(e.host, e.port))
                kind = self._bms_kind(asset, e)
                state = {"pv_available_kw": 0.6 * asset.peak_kw * asset.count} if kind == "pv" else {}
                sim.add(asset.id, e, kind, min_value=lo, max_value=hi, **state)
                key = ("modbus", f"{e.host}:{e.port}")
            elif e.protocol == "http":
                cloud = self._cloud(e)
                kind, state = self._cloud_kind(asset, e)
                cloud.add_device(asset.id, e, kind, min_value=lo, max_value=hi, **state)
                key = ("http", e.base_url)
            else:
                password = os.environ.get(e.password_env) if e.password_env else None
                passwords[e.charge_point_id] = password
                ev = Ev(max_w=getattr(asset, "max_charge_kw", 11.0) * 1000.0)
                self.chargers.append(SimChargePoint(e.charge_point_id, self.ocpp_url, e.version, password=password,
                                                    connector_id=e.connector_id, ev=ev, max_w=ev.max_w))
                key = ("ocpp", self.ocpp_url)
            rows.setdefault(key, Running(*key)).assets.append(asset.id)
        if self.chargers:
            rows[("ocpp", self.ocpp_url)].note = f"{len(self.chargers)} charge points"
        for url, cloud in self.clouds.items():
            rows[("http", url)].note = f"token {'from env' if cloud.token != DEFAULT_TOKEN else DEFAULT_TOKEN}"
        if self.run_central and self.chargers:
            u = urlsplit(self.ocpp_url)
            self.central = CentralSystem(u.hostname or "127.0.0.1", u.port or 9000)
            for cp_id, password in passwords.items():
                self.central.register(cp_id, password)
            rows[("ocpp-csms", self.ocpp_url)] = Running("ocpp-csms", self.ocpp_url, [], "embedded central system")
        self.summary = list(rows.values())

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
            rated = getattr(asset, "element_kw", 2.0) * asset.count
            return "water_heater", {"max_kw": rated, "temp_c": getattr(asset, "initial_temp_c", 55.0)}
        if asset.type == "battery":
            return "battery", {"soc_pct": asset.initial_soc_pct, "energy_kwh": asset.energy_kwh * asset.count}
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
        self._tasks = [asyncio.create_task(cp.run_forever()) for cp in self.chargers]

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

