"""Building zones and heat pumps: 1R1C, C dT/dt = (T_out - T_in)/R + COP*P (minus when cooling).

Discretised exactly for a piecewise-constant input: T[t] = a*T[t-1] + (1-a)*(T_out + R*COP*P/n) with
a = exp(-dt/(R*C)). ``count`` identical zones are one aggregate holding their common temperature;
``min_electric_kw`` > 0 adds an integer "units on" (0..count). A reversible unit (``mode: both``) runs one mode per
interval within its rating. Comfort bands are soft.
"""

from __future__ import annotations

import numpy as np

from flexopt.models.base import (
    TIE_BREAK_EUR_PER_KWH,
    AssetSchedule,
    CostTerms,
    Formulation,
    PowerTerms,
    ValueReader,
    add_one_mode_rows,
    add_row_arrays,
    add_rows,
    add_var,
    as_matrix,
    interval_violations,
)
from flexopt.models.calendar import window_mask
from flexopt.models.registry import register
from flexopt.models.violations import Violation


def comfort_band(asset, horizon) -> tuple[np.ndarray, np.ndarray]:
    """Allowed indoor temperature per interval: default band, windows override, overlaps intersect."""
    lo = np.full(horizon.n, asset.default_min_temp_c)
    hi = np.full(horizon.n, asset.default_max_temp_c)
    seen = np.zeros(horizon.n, dtype=bool)
    for w in asset.comfort:
        m = window_mask(horizon, w.start_local, w.end_local)
        lo[m] = np.where(seen[m], np.maximum(lo[m], w.min_temp_c), w.min_temp_c)
        hi[m] = np.where(seen[m], np.minimum(hi[m], w.max_temp_c), w.max_temp_c)
        seen |= m
    return lo, hi


class ThermalFormulation(Formulation):

    def _params(self) -> None:
        dt, h = self.ctx.dt_h, self.ctx.horizon
        self.a = np.array([np.exp(-dt / (it.asset.thermal_resistance_k_per_kw * it.asset.thermal_capacitance_kwh_per_k))
                           for it in self.items])
        self.g_heat = np.array([(1 - self.a[j]) * it.asset.thermal_resistance_k_per_kw * it.asset.cop_heating
                                for j, it in enumerate(self.items)])
        self.g_cool = np.array([(1 - self.a[j]) * it.asset.thermal_resistance_k_per_kw * it.asset.cop_cooling
                                for j, it in enumerate(self.items)])
        self.t_out = np.array([self.ctx.inputs.values(it.asset.outdoor_temp_c) for it in self.items]).reshape(
            len(self.items), h.n)
        bands = [comfort_band(it.asset, self.ctx.site_horizon(it)) for it in self.items]
        self.lo = np.array([b[0] for b in bands]).reshape(len(self.items), h.n)
        self.hi = np.array([b[1] for b in bands]).reshape(len(self.items), h.n)
        self.t0 = np.array([float(it.initial_state.get("temp_c", it.asset.initial_temp_c)) for it in self.items])
        self.heats = np.array([it.asset.mode in ("heating", "both") for it in self.items])
        self.cools = np.array([it.asset.mode in ("cooling", "both") for it in self.items])
        self.pmax = np.array([it.asset.max_electric_kw * it.count for it in self.items])

    def build(self, block) -> None:
        self._params()
        J, T = len(self.items), self.ctx.n
        self.ph = add_var(block, "heat_kw", np.zeros(J * T), np.repeat(self.pmax * self.heats, T))
        self.pc = add_var(block, "cool_kw", np.zeros(J * T), np.repeat(self.pmax * self.cools, T))
        self.temp = add_var(block, "temp_c", np.full(J * T, -np.inf), np.full(J * T, np.inf))
        self.under = add_var(block, "below_band_c", np.zeros(J * T), np.full(J * T, np.inf))
        self.over = add_var(block, "above_band_c", np.zeros(J * T), np.full(J * T, np.inf))
        # temp[t] - a*temp[t-1] - g_heat/n*heat[t] + g_cool/n*cool[t] = (1-a)*t_out[t] (+ a*t0 at t = 0); a mode
        # the unit lacks has coefficient 0 (no term)
        n = np.array([it.count for it in self.items], dtype=float)
        first = np.arange(J * T) % T == 0
        temp = np.asarray(self.temp)
        a_rep = np.repeat(self.a, T)
        coefs = np.column_stack([np.ones(J * T), np.repeat(-self.g_heat / n * self.heats, T),
                                 np.repeat(self.g_cool / n * self.cools, T), np.where(first, 0.0, -a_rep)])
        cols = np.column_stack([temp, self.ph, self.pc, np.where(first, temp, np.roll(temp, 1))])
        rhs = ((1 - self.a)[:, None] * self.t_out).ravel() + np.where(first, a_rep * np.repeat(self.t0, T), 0.0)
        add_row_arrays(block, "dynamics", coefs, cols, rhs, rhs)
        ones = np.ones(J * T)
        add_row_arrays(block, "band_low", np.column_stack([ones, ones]), np.column_stack([temp, self.under]),
                       self.lo.ravel(), None)
        add_row_arrays(block, "band_high", np.column_stack([ones, -ones]), np.column_stack([temp, self.over]),
                       None, self.hi.ravel())
        self._one_mode(block)
        self._on_off(block)

    def _one_mode(self, block) -> None:
        """A reversible unit heats or cools, never both: its total power stays within its rating, and where
        wasting energy could pay a binary per interval picks the mode (heat <= P*b, cool <= P*(1-b))."""
        T = self.ctx.n
        both = [j for j in range(len(self.items)) if self.heats[j] and self.cools[j]]
        at = (np.asarray(both, dtype=np.int64)[:, None] * T + np.arange(T)).ravel()
        add_row_arrays(block, "rating", np.ones((at.size, 2)),
                       np.column_stack([np.asarray(self.ph)[at], np.asarray(self.pc)[at]]).reshape(-1, 2),
                       None, np.repeat(self.pmax[both], T))
        self.moded = [j for j in both if self.ctx.exclusive_modes(self.items[j])]
        self.heating = add_var(block, "heating", np.zeros(len(self.moded) * T), np.ones(len(self.moded) * T),
                               integer=True)
        cols = [j * T + t for j in self.moded for t in range(T)]
        cap = np.repeat(self.pmax[self.moded], T)
        add_one_mode_rows(block, "one_mode", [self.ph[i] for i in cols], [self.pc[i] for i in cols], self.heating,
                          cap, cap)

    def _on_off(self, block) -> None:
        T = self.ctx.n
        self.switched = [j for j, it in enumerate(self.items) if it.asset.min_electric_kw > 0]
        ub = np.repeat([self.items[j].count for j in self.switched], T).astype(float)
        self.on = add_var(block, "units_on", np.zeros(ub.size), ub, integer=True)
        rows, lo, up = [], [], []
        for k, j in enumerate(self.switched):
            a = self.items[j].asset
            for t in range(T):
                i, on = j * T + t, self.on[k * T + t]
                p_c, p_v = self._elec(j, i)
                rows.append(([*p_c, -a.max_electric_kw], [*p_v, on]))
                lo.append(None)
                up.append(0.0)
                rows.append(([*p_c, -a.min_electric_kw], [*p_v, on]))
                lo.append(0.0)
                up.append(None)
        add_rows(block, "on_off", rows, lo, up)

    def _elec(self, j: int, i: int) -> tuple[list[float], list]:
        c, v = [], []
        if self.heats[j]:
            c.append(1.0)
            v.append(self.ph[i])
        if self.cools[j]:
            c.append(1.0)
            v.append(self.pc[i])
        return c, v

    def round_integers(self, values: ValueReader) -> list:
        """Units on: the fewest that can carry the relaxed electric power (temperatures are soft); the mode: the
        net effect of the relaxed heating and cooling on the temperature, which one mode alone reproduces."""
        J, T = len(self.items), self.ctx.n
        heat, cool = as_matrix(values(self.block.heat_kw), J, T), as_matrix(values(self.block.cool_kw), J, T)
        out = []
        if self.moded:
            m = self.moded
            warms = self.g_heat[m, None] * heat[m] >= self.g_cool[m, None] * cool[m]
            out.append((self.block.heating, warms.astype(float).ravel()))
        if self.switched:
            p = heat + cool
            on_all = []
            for j in self.switched:
                a = self.items[j].asset
                on = np.minimum(np.ceil(p[j] / a.max_electric_kw - 1e-6), self.items[j].count)
                on_all.append(np.where(p[j] >= 0.5 * a.min_electric_kw, np.maximum(on, 1), 0.0))
            out.append((self.block.units_on, np.concatenate(on_all)))
        return out

    def power(self) -> PowerTerms:
        J, T = len(self.items), self.ctx.n
        p = PowerTerms(np.zeros((J, T)))
        p.add_grid(self.ph, np.repeat(self.heats.astype(float), T))  # a mode the unit lacks: no term (0)
        p.add_grid(self.pc, np.repeat(self.cools.astype(float), T))
        return p

    def cost(self) -> CostTerms:
        c = CostTerms()
        T, dt = self.ctx.n, self.ctx.dt_h
        pen = self.ctx.penalties.comfort_eur_per_degc_h
        per_k = np.repeat([pen * dt * it.count for it in self.items], T)
        c.add_many(per_k, self.under)
        c.add_many(per_k, self.over)
        both = np.repeat(self.heats & self.cools, T)
        c.add_many(TIE_BREAK_EUR_PER_KWH * dt, np.asarray(self.ph)[both])
        c.add_many(TIE_BREAK_EUR_PER_KWH * dt, np.asarray(self.pc)[both])
        return c

    def extract(self, values: ValueReader) -> list[AssetSchedule]:
        J, T = len(self.items), self.ctx.n
        heat, cool = as_matrix(values(self.block.heat_kw), J, T), as_matrix(values(self.block.cool_kw), J, T)
        self.simultaneous_kwh = float(np.minimum(heat, cool).sum() * self.ctx.dt_h)
        p = heat + cool
        temp = as_matrix(values(self.block.temp_c), J, T)
        return [AssetSchedule(p[j], p[j] / it.count, "kW", temp[j], "degC", {"temp_c": temp[j]})
                for j, it in enumerate(self.items)]

    def baseline_kw(self) -> np.ndarray:
        """A thermostat holding the middle of the band (ideal controller within the power limits)."""
        J, T = len(self.items), self.ctx.n
        out = np.zeros((J, T))
        for j, it in enumerate(self.items):
            temp, n = self.t0[j], it.count
            for t in range(T):
                free = self.a[j] * temp + (1 - self.a[j]) * self.t_out[j, t]
                want = 0.5 * (self.lo[j, t] + self.hi[j, t]) - free
                heat = np.clip(want * n / self.g_heat[j], 0, self.pmax[j]) if self.heats[j] and want > 0 else 0.0
                cool = np.clip(-want * n / self.g_cool[j], 0, self.pmax[j]) if self.cools[j] and want < 0 else 0.0
                temp = free + (self.g_heat[j] * heat - self.g_cool[j] * cool) / n
                out[j, t] = heat + cool
        return out

    def violations(self, values: ValueReader) -> list[Violation]:
        J, T, h = len(self.items), self.ctx.n, self.ctx.horizon
        under = as_matrix(values(self.block.below_band_c), J, T)
        over = as_matrix(values(self.block.above_band_c), J, T)
        out = []
        for j, it in enumerate(self.items):
            out += interval_violations("comfort_low", it, h, under[j], "degC",
                                       lambda m, i: f"indoor temperature up to {m:.2f} K below the comfort band "
                                                    f"({i:.2f} K·h)")
            out += interval_violations("comfort_high", it, h, over[j], "degC",
                                       lambda m, i: f"indoor temperature up to {m:.2f} K above the comfort band "
                                                    f"({i:.2f} K·h)")
        return out

    def counts(self) -> dict[str, int]:
        return {"integers": len(self.on), "binaries": len(self.heating)}


@register
class ClimateFormulation(ThermalFormulation):
    asset_type = "climate"


@register
class HeatPumpFormulation(ThermalFormulation):
    asset_type = "heat_pump"
