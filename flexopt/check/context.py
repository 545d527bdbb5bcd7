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
    correction_kw: np.ndarray | None = None  # corrections.parquet: kW added to its forecast power (load convention)
    stated_forecast_kw: np.ndarray | None = None  # corrections.parquet: the forecast power it says it corrected

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

    def corrected(self, forecast_kw: np.ndarray) -> np.ndarray:
        """An uncontrolled power (load convention, all devices) as the run had to take it: its forecast plus the
        intraday correction the run states in corrections.parquet."""
        return forecast_kw if self.correction_kw is None else forecast_kw + self.correction_kw

    def correction_breaches(self, forecast_kw: np.ndarray, low_kw: float, high_kw: float) -> list[Breach]:
        """A corrected forecast must start from the portfolio's own forecast (``forecast_kw``, recomputed here) and
        stay within [low_kw, high_kw] once corrected."""
        if self.stated_forecast_kw is None:
            return []
        stated = self.stated_forecast_kw
        base = self.over("forecast_correction", np.where(np.isnan(stated), 0.0, np.abs(stated - forecast_kw)), "kW",
                         value=stated, limit=forecast_kw, note="corrections.parquet corrects another forecast than "
                         "the portfolio's series give")
        corrected = self.corrected(forecast_kw)
        return base + self.over("forecast_correction", np.maximum(corrected - high_kw, low_kw - corrected), "kW",
                                value=corrected, limit=np.where(corrected > high_kw, high_kw, low_kw),
                                note="corrected forecast outside what the asset can do")

    def over(self, kind: str, amount, unit: str, **kw) -> list[Breach]:
        return over(kind, amount, unit, site_id=self.site.id, asset_id=self.asset.id, **kw)

    def power_limits(self, low_kw, high_kw, note: str) -> list[Breach]:
        """power_limit breaches where the power leaves [low_kw, high_kw] (numbers or arrays)."""
        p = self.power_kw
        low, high = np.broadcast_to(low_kw, p.shape), np.broadcast_to(high_kw, p.shape)
        return self.over("power_limit", np.maximum(p - high, low - p), "kW", value=p,
                         limit=np.where(p > high, high, low), note=note)
