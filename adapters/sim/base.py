"""What every protocol's simulator does for ``flexopt simulate``: take the portfolio's devices one by one, serve
them, say where. :class:`~flexopt.adapters.sim.portfolio_sim.PortfolioSimulation` builds one per protocol through
the protocol registry, so a plug-in protocol brings its own and nothing here names one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NO_LIMITS = (-1e9, 1e9)  # the (lo, hi) of a device whose asset has no setpoint limits


@dataclass
class Running:
    """One line of the summary: what runs where, for which assets."""

    protocol: str
    address: str
    assets: list[str] = field(default_factory=list)
    note: str = ""
    devices: int = 0


class ProtocolSimulator(ABC):
    """The simulated devices of one protocol in one portfolio. Devices at one server address (host:port, base URL)
    share one server. ``options`` are those of ``flexopt simulate`` (e.g. ``ocpp_url``); each protocol reads its
    own."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    @abstractmethod
    def add(self, asset: Any, endpoint: Any, name: str, lo: float, hi: float) -> str:
        """Simulate one device with one device's ratings (``lo``..``hi``: what it accepts, :data:`NO_LIMITS` when
        unlimited); return the address it is served at (one summary line per address). A configuration the
        simulator cannot serve is a ValueError."""

    def notes(self, address: str) -> list[str]:
        """What the summary line of ``address`` should say besides its device count."""
        return []

    def finish(self) -> list[Running]:
        """Called once every device is added; extra summary lines (an embedded server)."""
        return []

    def env_to_export(self) -> dict[str, str]:
        """Environment variables flexopt needs to reach these simulated devices (tokens), with their values."""
        return {}

    @abstractmethod
    async def start(self) -> None:
        """Start serving (OSError when a port is taken)."""

    @abstractmethod
    async def stop(self) -> None: ...
