"""Battery (BESS): charge/discharge power, SoC dynamics with efficiencies, soft terminal SoC, degradation.

The terminal SoC is the day's target: it holds at the end of every local day inside the horizon (a rolling
horizon that crosses midnight keeps the scheduled day's target at its midnight, not at the horizon's end). A
horizon that ends during a day keeps that day's target reachable: at its last interval the SoC is at least the
target less what full charging power can add until the day's end, and what it lacks of the target there is
charged at the price of putting it back after the horizon (the site's lowest import price of the horizon's last
24 h, over the charging efficiency): without it, energy taken now and left to be recharged after the horizon would
look free, and an evening run would empty the battery after midnight for nothing.

The charge/discharge exclusivity binary is added only where dumping energy through simultaneous
charge and discharge could pay (negative prices, export limits with uncurtailable generation); with
positive prices and round-trip efficiency below 1 the LP never does it.
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
from flexopt.models.calendar import day_ends, hours_to_next_midnight
from flexopt.models.registry import register
from flexopt.models.violations import Violation


@register
class BatteryFormulation(Formulation):
    asset_type = "battery"

    def _params(self) -> None:
        n_t = self.ctx.n
        self.cap_kwh = np.array([it.asset.energy_kwh * it.count for it in self.items])
        self.pc_max = np.array([it.asset.max_charge_kw * it.count for it in self.items])
        self.pd_max = np.array([it.asset.max_discharge_kw * it.count for it in self.items])
        self.soc0_kwh = np.array([self._start_pct(it) / 100 * it.asset.energy_kwh * it.count for it in self.items])
        # the day's target: an intraday run starts from a measured SoC but must still end where the day should
        self.term_kwh = np.array([
            (it.asset.terminal_soc_pct if it.asset.terminal_soc_pct is not None else it.asset.initial_soc_pct)
            / 100 * it.asset.energy_kwh * it.count for it in self.items])
        self.lo_kwh = np.array([it.asset.soc_min_pct / 100 * it.asset.energy_kwh * it.count for it in self.items])
        self.hi_kwh = np.array([it.asset.soc_max_pct / 100 * it.asset.energy_kwh * it.count for it in self.items])
        self.binary = np.array([self.ctx.exclusive_modes(it) for it in self.items], dtype=bool)
        self.n_t = n_t
        self.terminal = self._terminal_rows()

    def _terminal_rows(self) -> list[tuple[int, int, float, str]]:
        """(entry, interval, target kWh, what) of every terminal row: each local day's end in the horizon, and
        the horizon's end when it is not one (the target less what full charging adds by the day's end); notes in
        ``ends_mid_day`` whether it is not."""
        ends = day_ends(self.ctx.horizon)
        rows = [(j, int(t), float(self.term_kwh[j]), "day") for t in ends for j in range(len(self.items))]
        last = self.n_t - 1
        self.ends_mid_day = last not in set(ends.tolist())
        if self.ends_mid_day:
            hours = hours_to_next_midnight(self.ctx.horizon)
            for j, it in enumerate(self.items):
                reach = self.term_kwh[j] - it.asset.charge_efficiency * self.pc_max[j] * hours
                if reach > self.lo_kwh[j] + 1e-9:  # below the SoC band the row could never bind
                    rows.append((j, last, float(reach), "reach"))
        return sorted(rows, key=lambda r: (r[0], r[1]))

    @staticmethod
    def _start_pct(item) -> float:
        pct = item.initial_state.get("soc_pct", item.asset.initial_soc_pct)
        if not 0 <= pct <= 100:
            raise ValueError(f"initial state of {item.asset.id}: soc_pct {pct} must lie in 0..100")
        return float(pct)

    def build(self, block) -> None:
        self._params()
        J, T, dt = len(self.items), self.n_t, self.ctx.dt_h
        # the start SoC may lie outside the band (intraday state); the band then applies from the first step
        lo = np.minimum(np.repeat(self.lo_kwh, T), np.repeat(np.maximum(self.soc0_kwh, 0), T))
        hi = np.maximum(np.repeat(self.hi_kwh, T), np.repeat(self.soc0_kwh, T))
        self.pc = add_var(block, "charge_kw", np.zeros(J * T), np.repeat(self.pc_max, T))
        self.pd = add_var(block, "discharge_kw", np.zeros(J * T), np.repeat(self.pd_max, T))
        self.soc = add_var(block, "soc_kwh", lo, hi)
        n_term = len(self.terminal)
        self.short = add_var(block, "terminal_short_kwh", np.zeros(n_term), np.full(n_term, np.inf))
        # a horizon that ends during a day: what the SoC lacks there of the day's target, to be bought back later
        self.refill = list(range(J)) if self.ends_mid_day else []
        self.lack = add_var(block, "refill_kwh", np.zeros(len(self.refill)), np.full(len(self.refill), np.inf))
        # soc[t] - soc[t-1] - dt*eta_c*charge[t] + dt/eta_d*discharge[t] = 0 (soc[-1]: the start SoC, on the right)
        ec = np.repeat([dt * it.asset.charge_efficiency for it in self.items], T)
        ed = np.repeat([dt / it.asset.discharge_efficiency for it in self.items], T)
        first = np.arange(J * T) % T == 0
        soc = np.asarray(self.soc)
        prev = np.where(first, soc, np.roll(soc, 1))  # the first interval's "previous" term has coefficient 0
        rhs = np.where(first, np.repeat(self.soc0_kwh, T), 0.0)
        add_row_arrays(block, "soc_balance", np.column_stack([np.ones(J * T), -ec, ed, np.where(first, 0.0, -1.0)]),
                       np.column_stack([soc, self.pc, self.pd, prev]), rhs, rhs)
        add_rows(block, "terminal_soc",
                 [([1.0, 1.0], [self.soc[j * T + t], self.short[k]]) for k, (j, t, _, _) in enumerate(self.terminal)],
                 [target for _, _, target, _ in self.terminal], None)
        add_rows(block, "refill",
                 [([1.0, 1.0], [self.soc[j * T + T - 1], self.lack[r]]) for r, j in enumerate(self.refill)],
                 [float(self.term_kwh[j]) for j in self.refill], None)
        idx = np.flatnonzero(self.binary)
        if idx.size:
            self.mode = add_var(block, "charging", np.zeros(idx.size * T), np.ones(idx.size * T), integer=True)
            cols = [j * T + t for j in idx for t in range(T)]
            add_one_mode_rows(block, "exclusive", [self.pc[i] for i in cols], [self.pd[i] for i in cols], self.mode,
                              np.repeat(self.pc_max[idx], T), np.repeat(self.pd_max[idx], T))

    def power(self) -> PowerTerms:
        p = PowerTerms(np.zeros((len(self.items), self.n_t)))
        p.add_grid(self.pc, 1.0)
        p.add_grid(self.pd, -1.0)
        return p

    def cost(self) -> CostTerms:
        c = CostTerms()
        T, dt = self.n_t, self.ctx.dt_h
        c.add_many(np.repeat([(it.asset.degradation_cost_eur_per_kwh + TIE_BREAK_EUR_PER_KWH) * dt
                              for it in self.items], T), self.pd)
        for k in range(len(self.terminal)):
            c.add(self.ctx.penalties.terminal_soc_eur_per_kwh, self.short[k])
        for r, j in enumerate(self.refill):
            it = self.items[j]
            price = self.ctx.refill_price_eur_per_kwh.get(it.site.id, 0.0)
            c.add(price / it.asset.charge_efficiency, self.lack[r])
        return c

    def extract(self, values: ValueReader) -> list[AssetSchedule]:
        J, T = len(self.items), self.n_t
        pc = as_matrix(values(self.block.charge_kw), J, T)
        pd = as_matrix(values(self.block.discharge_kw), J, T)
        soc = as_matrix(values(self.block.soc_kwh), J, T)
        self.simultaneous_kwh = float(np.minimum(pc, pd).sum() * self.ctx.dt_h)
        out = []
        for j, it in enumerate(self.items):
            p = pc[j] - pd[j]
            out.append(AssetSchedule(p, p / it.count, "kW", soc[j], "kWh",
                                     {"soc_pct": 100.0 * soc[j] / (it.asset.energy_kwh * it.count)}))
        return out

    def baseline_kw(self) -> np.ndarray:
        return np.zeros((len(self.items), self.ctx.n))

    def round_integers(self, values: ValueReader) -> list:
        if not self.binary.any():
            return []
        T = self.n_t
        idx = np.flatnonzero(self.binary)
        pc = values(self.block.charge_kw).reshape(-1, T)[idx]
        pd = values(self.block.discharge_kw).reshape(-1, T)[idx]
        # the mode of the relaxation's net effect on the SoC, which one mode alone reproduces
        eta_c = np.array([self.items[j].asset.charge_efficiency for j in idx])[:, None]
        eta_d = np.array([self.items[j].asset.discharge_efficiency for j in idx])[:, None]
        return [(self.block.charging, (eta_c * pc >= pd / eta_d).astype(float).ravel())]

    def violations(self, values: ValueReader) -> list[Violation]:
        short = values(self.block.terminal_short_kwh)
        out = []
        for k, (j, t, target, what) in enumerate(self.terminal):
            if short[k] > 1e-3:
                amount = np.zeros(self.n_t)
                amount[t] = short[k]
                if what == "day":
                    day = self.ctx.horizon.local[t].date()
                    text = f"at the end of {day}, below the day's terminal target {target:.3f} kWh"
                else:
                    text = (f"at the horizon's end, below {target:.3f} kWh, from which full charging power can still "
                            f"reach the day's target {self.term_kwh[j]:.3f} kWh by midnight")
                out += interval_violations("terminal_soc", self.items[j], self.ctx.horizon, amount, "kWh",
                                           lambda m, _i, text=text: f"SoC {m:.3f} kWh {text}")
        return out

    def counts(self) -> dict[str, int]:
        return {"binaries": int(self.binary.sum()) * self.n_t}
