"""PV: forecast output fed in (negative power); curtailment where allowed, priced so it only happens
when it pays (negative export prices) or a limit forces it."""

from __future__ import annotations

import numpy as np

from flexopt.models.base import AssetSchedule, CostTerms, Formulation, PowerTerms, ValueReader, add_var
from flexopt.models.registry import register

# EUR per kWh curtailed: small enough never to matter against prices, large enough to break ties.
CURTAILMENT_EUR_PER_KWH = 1e-4


def generation_kw(asset, inputs) -> np.ndarray:
    """Expected output of all devices of the entry (positive kW), scaled to the array's peak, with the intraday
    forecast correction (load convention, so it is subtracted; it keeps the output within 0..peak)."""
    if asset.generation_kw is None:
        return np.zeros(inputs.horizon.n)
    gen = inputs.values(asset.generation_kw)
    if asset.series_peak_kw:
        gen = gen * asset.peak_kw / asset.series_peak_kw
    return np.clip(gen, 0.0, None) * asset.count - inputs.correction_kw(asset.id)


@register
class PvFormulation(Formulation):
    asset_type = "pv"

    def build(self, block) -> None:
        J, T = len(self.items), self.ctx.n
        self.gen = np.array([generation_kw(it.asset, self.ctx.inputs) for it in self.items]).reshape(J, T)
        self.curtailable = [j for j, it in enumerate(self.items) if it.asset.curtailable]
        ub = self.gen[self.curtailable].ravel() if self.curtailable else np.zeros(0)
        self.curt = add_var(block, "curtail_kw", np.zeros(ub.size), ub)

    def power(self) -> PowerTerms:
        T = self.ctx.n
        p = PowerTerms(-self.gen)
        for k, j in enumerate(self.curtailable):
            for t in range(T):
                if self.gen[j, t] > 0:
                    p.add(j, t, 1.0, self.curt[k * T + t])
        return p

    def cost(self) -> CostTerms:
        c = CostTerms()
        T = self.ctx.n
        for k, j in enumerate(self.curtailable):
            for t in range(T):
                if self.gen[j, t] > 0:
                    c.add(CURTAILMENT_EUR_PER_KWH * self.ctx.dt_h, self.curt[k * T + t])
        return c

    def extract(self, values: ValueReader) -> list[AssetSchedule]:
        T = self.ctx.n
        curt = np.zeros_like(self.gen)
        if self.curtailable:
            curt[self.curtailable] = values(self.block.curtail_kw).reshape(len(self.curtailable), T)
        out = []
        for j, it in enumerate(self.items):
            p = -self.gen[j] + curt[j]
            # setpoint: the output cap sent to each inverter (kW, positive); the nameplate where nothing is
            # curtailed, so that a sunnier day than forecast is never cut; none when not curtailable
            cap = np.where(curt[j] > 1e-6, -p / it.count, it.asset.peak_kw)
            sp = cap if it.asset.curtailable else np.full(T, np.nan)
            out.append(AssetSchedule(p, sp, "kW" if it.asset.curtailable else "", np.full(T, np.nan), ""))
        return out

    def baseline_kw(self) -> np.ndarray:
        return -self.gen.copy()
