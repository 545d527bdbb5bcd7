"""Water heaters: one-node tank with standby loss to ambient, hot-water draws, resistive element on/off.

Tank: C = litres * 4.186/3600 kWh/K; T[t] = a*T[t-1] + (1-a)*T_amb + b*P/n - draw/C with a = exp(-dt*UA/C)
(b = (1-a)/UA, or dt/C without loss). ``count`` identical heaters are one aggregate: an integer number of
elements on (0..count) and their mean tank temperature, instead of ``count`` symmetric binaries.

The mean alone would let half the tanks run cold while the other half is hotter. The minimum is therefore
held by the least-heated tank under round-robin dispatch (elements go to the tanks that have had fewest
heating intervals): it heats in interval t when u[t] = 1, and it has had no more than its share,
n * sum(u) <= sum(k). Without standby loss this is exact; with loss it ignores that the tanks of equal
count heated at slightly different times. The minimum (comfort, hygiene) is soft at the comfort penalty; the
maximum (the element's cut-out) is soft at ten times that, so it binds in practice yet rounding the integers
never makes the model infeasible.
"""

from __future__ import annotations

import numpy as np

from flexopt.models.base import (
    AssetSchedule,
    CostTerms,
    Formulation,
    PowerTerms,
    ValueReader,
    add_rows,
    add_var,
    as_matrix,
    interval_violations,
)
from flexopt.models.calendar import instants
from flexopt.models.registry import register
from flexopt.violations import Violation

WATER_KWH_PER_L_K = 4.186 / 3600
DEADBAND_K = 2.5  # unmanaged thermostat: on at thermostat - 2.5 K, off at thermostat + 2.5 K
MAX_TEMP_PENALTY_FACTOR = 10.0  # above the cut-out costs ten times the comfort penalty


def draw_kwh(asset, horizon) -> np.ndarray:
    """Heat taken from one tank per interval by the daily draws."""
    out = np.zeros(horizon.n)
    for d in asset.draws:
        kwh = d.litres * WATER_KWH_PER_L_K * (asset.draw_temp_c - asset.cold_water_temp_c)
        out[instants(horizon, d.at_local)] += kwh
    return out


@register
class WaterHeaterFormulation(Formulation):
    asset_type = "water_heater"
    state_keys = ("temp_c",)
    # True: element count continuous (LP relaxation), for measuring what the integers cost
    relax_elements = False

    def _params(self) -> None:
        dt, h = self.ctx.dt_h, self.ctx.horizon
        J = len(self.items)
        self.cap = np.array([it.asset.volume_l * WATER_KWH_PER_L_K for it in self.items])
        ua = np.array([it.asset.standby_loss_w_per_k / 1000 for it in self.items])
        self.a = np.exp(-dt * ua / self.cap)
        self.b = np.where(ua > 0, (1 - self.a) / np.where(ua > 0, ua, 1.0), dt / self.cap)
        self.amb = np.array([it.asset.ambient_temp_c for it in self.items])
        self.draw = np.array([draw_kwh(it.asset, h) for it in self.items]).reshape(J, h.n)
        self.t0 = np.array([float(it.initial_state.get("temp_c", it.asset.initial_temp_c)) for it in self.items])
        self.elem = np.array([it.asset.element_kw for it in self.items])

    def build(self, block) -> None:
        self._params()
        J, T = len(self.items), self.ctx.n
        counts = np.repeat([it.count for it in self.items], T).astype(float)
        self.on = add_var(block, "elements_on", np.zeros(J * T), counts, integer=not self.relax_elements)
        hi = np.repeat([max(it.asset.max_temp_c, self.t0[j]) for j, it in enumerate(self.items)], T)
        self.temp = add_var(block, "temp_c", np.full(J * T, -np.inf), np.full(J * T, np.inf))
        self.under = add_var(block, "below_min_c", np.zeros(J * T), np.full(J * T, np.inf))
        self.over = add_var(block, "above_max_c", np.zeros(J * T), np.full(J * T, np.inf))
        add_rows(block, "max_temp", [([1.0, -1.0], [self.temp[i], self.over[i]]) for i in range(J * T)], None, hi)
        rows, rhs = [], []
        for j, it in enumerate(self.items):
            a, n = self.a[j], it.count
            heat_per_on = self.b[j] * self.elem[j] / n  # K per element on (mean over the tanks)
            for t in range(T):
                i = j * T + t
                cols, vars_ = [1.0, -heat_per_on], [self.temp[i], self.on[i]]
                if t:
                    cols.append(-a)
                    vars_.append(self.temp[i - 1])
                rows.append((cols, vars_))
                rhs.append((1 - a) * self.amb[j] - self.draw[j, t] / self.cap[j] + (a * self.t0[j] if t == 0 else 0))
        add_rows(block, "dynamics", rows, rhs, rhs)
        lo = np.repeat([it.asset.min_temp_c for it in self.items], T)
        coldest = self._least_heated(block)
        add_rows(block, "min_temp", [([1.0, 1.0], [coldest[i], self.under[i]]) for i in range(J * T)], lo, None)

    def _least_heated(self, block) -> list:
        """Temperature variable the minimum applies to: the tank itself, or for count > 1 the least-heated tank."""
        T = self.ctx.n
        self.multi = [j for j, it in enumerate(self.items) if it.count > 1]
        m = len(self.multi)
        self.u = add_var(block, "coldest_on", np.zeros(m * T), np.ones(m * T), integer=not self.relax_elements)
        lag = add_var(block, "share_lag", np.zeros(m * T), np.full(m * T, np.inf))
        t_low = add_var(block, "coldest_temp_c", np.full(m * T, -np.inf), np.full(m * T, np.inf))
        share, dyn, rhs = [], [], []
        for k, j in enumerate(self.multi):
            n, a = self.items[j].count, self.a[j]
            for t in range(T):
                i, q = j * T + t, k * T + t
                # lag[t] = lag[t-1] + on[t] - n*u[t] >= 0: the coldest tank never gets more than its share
                cols, vars_ = [1.0, -1.0, float(n)], [lag[q], self.on[i], self.u[q]]
                dc, dv = [1.0, -self.b[j] * self.elem[j]], [t_low[q], self.u[q]]
                if t:
                    cols.append(-1.0)
                    vars_.append(lag[q - 1])
                    dc.append(-a)
                    dv.append(t_low[q - 1])
                share.append((cols, vars_))
                dyn.append((dc, dv))
                rhs.append((1 - a) * self.amb[j] - self.draw[j, t] / self.cap[j] + (a * self.t0[j] if t == 0 else 0))
        add_rows(block, "share", share, np.zeros(len(share)), np.zeros(len(share)))
        add_rows(block, "coldest_dynamics", dyn, rhs, rhs)
        out = list(self.temp)
        for k, j in enumerate(self.multi):
            out[j * T:(j + 1) * T] = t_low[k * T:(k + 1) * T]
        return out

    def round_integers(self, values: ValueReader) -> list:
        """Round cumulatively, so heat is neither lost nor added beyond one element-interval: K[t] = the relaxed
        cumulative count rounded up, raised where the coldest tank's rounded-up share needs it, stepping at most
        ``count`` per interval and never past the cut-out (simulated); the coldest tank heats when its relaxed
        cumulative share passes a whole interval."""
        if self.relax_elements:
            return []
        J, T = len(self.items), self.ctx.n
        on = as_matrix(values(self.block.elements_on), J, T)
        want = np.ceil(np.cumsum(on, axis=1) - 1e-6)
        pos = {j: q for q, j in enumerate(self.multi)}
        if self.multi:
            u = values(self.block.coldest_on).reshape(len(self.multi), T)
            share_lp = np.ceil(np.cumsum(u, axis=1) - 1e-6)
        k = np.zeros((J, T))
        shares = np.zeros((len(self.multi), T))
        for j, it in enumerate(self.items):
            n, prev, prev_share, temp = it.count, 0.0, 0.0, self.t0[j]
            step = self.b[j] * self.elem[j] / n  # mean temperature rise per element on
            for t in range(T):
                target = want[j, t]
                if j in pos:
                    target = max(target, n * share_lp[pos[j], t])
                cum = min(max(target, prev), prev + n)
                free = self.a[j] * temp + (1 - self.a[j]) * self.amb[j] - self.draw[j, t] / self.cap[j]
                room = np.floor((max(it.asset.max_temp_c, self.t0[j]) - free) / step + 1e-9)
                cum = prev + min(cum - prev, max(room, 0.0))  # never past the cut-out
                temp = free + step * (cum - prev)
                k[j, t] = cum - prev
                prev = cum
                if j in pos:
                    # follow the relaxation's timing for the coldest tank (not greedily early: its heat would be gone)
                    share = min(share_lp[pos[j], t], np.floor(cum / n + 1e-9), prev_share + 1)
                    share = max(share, prev_share)
                    shares[pos[j], t] = share - prev_share
                    prev_share = share
        out = [(self.block.elements_on, k.ravel())]
        if self.multi:
            out.append((self.block.coldest_on, shares.ravel()))
        return out

    def power(self) -> PowerTerms:
        J, T = len(self.items), self.ctx.n
        p = PowerTerms(np.zeros((J, T)))
        for j in range(J):
            for t in range(T):
                p.add(j, t, float(self.elem[j]), self.on[j * T + t])
        return p

    def cost(self) -> CostTerms:
        c = CostTerms()
        T, dt = self.ctx.n, self.ctx.dt_h
        pen = self.ctx.penalties.comfort_eur_per_degc_h
        for j, it in enumerate(self.items):
            for t in range(T):
                c.add(pen * dt * it.count, self.under[j * T + t])
                c.add(MAX_TEMP_PENALTY_FACTOR * pen * dt * it.count, self.over[j * T + t])
        return c

    def extract(self, values: ValueReader) -> list[AssetSchedule]:
        J, T = len(self.items), self.ctx.n
        on = as_matrix(values(self.block.elements_on), J, T)
        if not self.relax_elements:
            on = np.round(on)
        temp = as_matrix(values(self.block.temp_c), J, T)
        # setpoint: share of the entry's elements switched on (0/1 for a single heater)
        return [AssetSchedule(on[j] * self.elem[j], on[j] / it.count, "1", temp[j], "degC")
                for j, it in enumerate(self.items)]

    def baseline_kw(self) -> np.ndarray:
        """Hysteresis thermostat: on below thermostat - 2.5 K, off at thermostat + 2.5 K (stops mid-interval)."""
        J, T = len(self.items), self.ctx.n
        out = np.zeros((J, T))
        for j, it in enumerate(self.items):
            a, n = self.a[j], it.count
            low = it.asset.thermostat_c - DEADBAND_K
            high = min(it.asset.thermostat_c + DEADBAND_K, it.asset.max_temp_c)
            temp, heating = self.t0[j], self.t0[j] < low
            for t in range(T):
                heating = (heating or temp <= low) and temp < high
                free = a * temp + (1 - a) * self.amb[j] - self.draw[j, t] / self.cap[j]
                p_unit = float(np.clip((high - free) / self.b[j], 0.0, self.elem[j])) if heating else 0.0
                temp = free + self.b[j] * p_unit
                out[j, t] = p_unit * n
        return out

    def violations(self, values: ValueReader) -> list[Violation]:
        J, T, h = len(self.items), self.ctx.n, self.ctx.horizon
        under = as_matrix(values(self.block.below_min_c), J, T)
        over = as_matrix(values(self.block.above_max_c), J, T)
        out = []
        for j, it in enumerate(self.items):
            out += interval_violations("tank_temp_high", it, h, over[j], "degC",
                                       lambda m, i, it=it: f"tank up to {m:.2f} K above its cut-out "
                                                           f"{it.asset.max_temp_c:g} degC ({i:.2f} K·h)")
            out += interval_violations("tank_temp_low", it, h, under[j], "degC",
                                       lambda m, i, it=it: f"{'coldest ' if it.count > 1 else ''}tank up to "
                                                           f"{m:.2f} K below its minimum "
                                                           f"{it.asset.min_temp_c:g} degC ({i:.2f} K·h)")
        return out

    def counts(self) -> dict[str, int]:
        return {"integers": 0 if self.relax_elements else len(self.on) + len(self.u)}
