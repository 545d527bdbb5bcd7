"""Start a simulator for every device of a portfolio: what ``flexopt simulate`` runs.

An asset with ``count`` N is N simulated devices at the addresses of ``flexopt.config.endpoints.device_endpoints``
(Modbus units, IEC 104 stations, cloud device ids, charge point ids), each with one device's ratings, so
dispatch meets the same devices it would in the field. Each protocol's registered simulator
(:class:`~flexopt.adapters.sim.base.ProtocolSimulator`) serves its devices; no protocol is named here.
"""

from __future__ import annotations

import logging
from typing import Any

from flexopt.adapters.factory import address_problems, device_label, limits_for
from flexopt.adapters.sim.base import NO_LIMITS, ProtocolSimulator, Running
from flexopt.config.endpoints import device_endpoints
from flexopt.config.protocols import protocol_of, resolve

log = logging.getLogger("flexopt.sim")

__all__ = ["PortfolioSimulation", "Running"]


def _range(asset: Any) -> tuple[float, float]:
    """What one device accepts (per-device limits, as the adapters clamp)."""
    limits = limits_for(asset)
    return (limits.min_value, limits.max_value) if limits else NO_LIMITS


class PortfolioSimulation:
    """One simulator per protocol of the portfolio, built device by device. ``options`` go to every protocol's
    simulator (``ocpp_url``, ``ocpp_retry_s``, ``central`` for OCPP). An unknown protocol, a portfolio whose
    devices share an address or a device a simulator cannot serve is a ValueError."""

    def __init__(self, portfolio: Any, **options: Any) -> None:
        self.portfolio = portfolio
        self.options = options
        self.simulators: dict[str, ProtocolSimulator] = {}
        self.summary: list[Running] = []
        self._build()

    @property
    def device_count(self) -> int:
        return sum(row.devices for row in self.summary)

    def _build(self) -> None:
        problems = address_problems(self.portfolio)
        if problems:
            raise ValueError("devices cannot be told apart:\n  " + "\n  ".join(problems))
        rows: dict[tuple[str, str], Running] = {}
        for _site, asset in self.portfolio.assets():
            if asset.endpoint is None:
                continue
            spec = protocol_of(asset.endpoint)
            if spec.name not in self.simulators:
                self.simulators[spec.name] = resolve(spec.simulator)(self.options)
            simulator = self.simulators[spec.name]
            lo, hi = _range(asset)
            for e in device_endpoints(asset.endpoint, asset.count):
                name = asset.id if asset.count == 1 else f"{asset.id}/{device_label(e)}"
                address = simulator.add(asset, e, name, lo, hi)
                row = rows.setdefault((spec.name, address), Running(spec.name, address))
                row.devices += 1
                if asset.id not in row.assets:
                    row.assets.append(asset.id)
        for (name, address), row in rows.items():
            notes = [f"{row.devices} devices" if row.devices != 1 else "1 device"]
            row.note = "; ".join(notes + self.simulators[name].notes(address))
        self.summary = list(rows.values())
        for simulator in self.simulators.values():
            self.summary += simulator.finish()

    async def start(self) -> None:
        for simulator in self.simulators.values():
            await simulator.start()

    async def stop(self) -> None:
        for simulator in reversed(self.simulators.values()):
            await simulator.stop()

    def tokens_to_export(self) -> dict[str, str]:
        """Env vars the adapters need for the simulated devices (set them before running flexopt)."""
        out: dict[str, str] = {}
        for simulator in self.simulators.values():
            out.update(simulator.env_to_export())
        return out
