"""Uncontrolled consumption: a given series (forecast upstream by Inputs), no decisions."""

from __future__ import annotations

import numpy as np

from flexopt.models.base import AssetSchedule, Formulation, PowerTerms, ValueReader
from flexopt.models.registry import register


@register
class LoadFormulation(Formulation):
    asset_type = "load"

    def build(self, block) -> None:
        inputs = self.ctx.inputs
        self.kw = np.array([inputs.values(it.asset.power_kw) * it.count + inputs.correction_kw(it.asset.id)
                            for it in self.items])
        self.kw = self.kw.reshape(len(self.items), self.ctx.n)

    def power(self) -> PowerTerms:
        return PowerTerms(self.kw.copy())

    def extract(self, values: ValueReader) -> list[AssetSchedule]:
        nan = np.full(self.ctx.n, np.nan)
        return [AssetSchedule(self.kw[j].copy(), nan, "", nan, "") for j in range(len(self.items))]

    def baseline_kw(self) -> np.ndarray:
        return self.kw.copy()
