"""What every per-asset check receives: the asset, its rows on the horizon, its start state, its clock, inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flexopt.check.breaches import Breach, over
from flexopt.check.horizon import RunHorizon
from flexopt.check.local_time import LocalClock
from flexopt.check.rows import AssetRows
from flexopt.config.portfolio import AssetBase, Site
from flexopt.data.inputs import Inputs


@dataclass
class AssetCase:
    site: Site
    asset: AssetBase
    rows: AssetRows
    initial: dict  # run.json initial_state of this asset ({} for a day-ahead run)
    clock: LocalClock  # wall clock of the site
    horizon: RunHorizon
    inputs: Inputs
    states: dict[str, np.ndarray] = field(default_factory=dict)  # states.parquet by key (the type's keys)

    @property
    def dt_h(self) -> float:
        return self.horizon.dt_h

    @property
    def n(self) -> int:
        return self.horizon.n

    @property
    def count(self) -> int:
        return self.asset.count

    @property
    def power_kw(self) -> np.ndarray:
        """The schedule's power; 0 where the row is missing (reported as missing_row)."""
        return np.where(self.rows.present, self.rows.power_kw, 0.0)

    def state_or(self, simulated: np.ndarray) -> np.ndarray:
        """The schedule's state, the simulated one where the row is missing (so a gap is reported only once)."""
        return np.where(self.rows.present, self.rows.state, simulated)

    def state(self, key: str) -> np.ndarray:
        """A state of states.parquet on the horizon; NaN where the run has none (older runs have no file)."""
        return self.states.get(key, np.full(self.n, np.nan))

    def values(self, ref) -> np.ndarray:
        return self.inputs.values(ref)

    def over(self, kind: str, amount, unit: str, **kw) -> list[Breach]:
        return over(kind, amount, unit, site_id=self.site.id, asset_id=self.asset.id, **kw)

    def power_limits(self, low_kw, high_kw, note: str) -> list[Breach]:
        """power_limit breaches where the power leaves [low_kw, high_kw] (numbers or arrays)."""
        p = self.power_kw
        low, high = np.broadcast_to(low_kw, p.shape), np.broadcast_to(high_kw, p.shape)
        return self.over("power_limit", np.maximum(p - high, low - p), "kW", value=p,
                         limit=np.where(p > high, high, low), note=note)
