"""Water heaters: one-node tank, standby loss at the thermostat temperature, hot-water draws, element on/off.

Tank: C = litres * 4.186/3600 kWh/K. Standby loss is the tank's UA at its thermostat temperature (the EU label's
"standby loss" figure is likewise one number at one temperature): a constant L K per interval. The mean tank
temperature is then a function of the cumulative number of element-intervals K[t] alone,

    T[t] = T0 - L*(t+1) - draws up to t / C + unmet draws up to t / C + (dt*P/C) * K[t] / count,

so the model holds K (integer, stepping 0..count per interval) and no temperature variables. With the minimum
and maximum written on K, each heater's own problem has an integral LP relaxation once the two rounding (chord)
rows per interval are added: a single heater is never a hard MIP, only the coupling through site and congestion
limits is. With the loss proportional to T - T_amb instead, the heating time enters every later temperature and a
single heater needed thousands of branch-and-bound nodes (docs/benchmarks.md). The error: UA * (T - T_thermostat)
per interval, e.g. 1.5 W/K * 10 K = 15 W on a tank running 10 K below its thermostat (the plan is then slightly
pessimistic: a colder tank loses less than planned).

``count`` identical heaters are one aggregate: K counts element-intervals over all of them. The dispatcher gives
the elements on to the tanks that have had the fewest heating intervals (round robin), so the tanks' cumulative
heating intervals differ by at most one: the coldest tank has floor(K/count), the hottest ceil(K/count). The
model holds both, S[t] (count*S <= K) and H[t] (count*H >= K), integers stepping 0/1: the minimum is held by the
coldest tank, the cut-out by the hottest; exact with a constant loss. The minimum (comfort, hygiene) is soft at
the comfort penalty; the maximum (the element's cut-out) is soft at a price far above anything heating could
gain, so it binds in practice yet rounding the integers never makes the model infeasible.

A tank cannot be colder than the water that refills it: a draw that would take it below the cold-water
temperature leaves the rest unmet (a variable per draw, priced above anything a warmer tank could save, so it is
only used where the tank is empty, and reported as ``hot_water_unmet``), never a temperature below what is
physical.
"""

from __future__ import annotations

import numpy as np

from flexopt.models.base import (
    AssetSchedule,
    CostTerms,
    Formulation,
    PowerTerms,
    ValueReader,
    add_row_arrays,
    add_row_triplets,
    add_var,
    as_matrix,
    interval_violations,
)
from flexopt.models.calendar import instants
from flexopt.models.registry import register
from flexopt.models.violations import Violation

WATER_KWH_PER_L_K = 4.186 / 3600
DEADBAND_K = 2.5  # unmanaged thermostat: on at thermostat - 2.5 K, off at thermostat + 2.5 K
MAX_TEMP_PENALTY_FACTOR = 2.0  # a K above the cut-out for one interval costs twice a K of unmet hot water
_EPS = 1e-9


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
    # True: element-intervals continuous (LP relaxation), for measuring what the integers cost
    relax_elements = False

    def _params(self) -> None:
        dt, h = self.ctx.dt_h, self.ctx.horizon
        J, T = len(self.items), h.n
        self.n = np.array([it.count for it in self.items], dtype=float)
        cap = np.array([it.asset.volume_l * WATER_KWH_PER_L_K for it in self.items])
        self.k_per_kwh = 1.0 / cap  # K per kWh into one tank
        self.elem = np.array([it.asset.element_kw for it in self.items])
        self.step = self.elem * dt / cap  # K per element-interval in one tank
        ua = np.array([it.asset.standby_loss_w_per_k / 1000 for it in self.items])
        ref = np.array([it.asset.thermostat_c - it.asset.ambient_temp_c for it in self.items])
        self.loss = dt * ua * ref / cap  # K per interval, at the thermostat temperature
        self.draw_k = np.array([draw_kwh(it.asset, self.ctx.site_horizon(it)) for it in self.items]).reshape(
            J, T) / cap[:, None]
        self.t0 = np.array([float(it.initial_state.get("temp_c", it.asset.initial_temp_c)) for it in self.items])
        # temperature with no heating at all
        self.free = self.t0[:, None] - np.cumsum(self.draw_k, axis=1) - self.loss[:, None] * np.arange(1, T + 1)
        self.lo = np.array([it.asset.min_temp_c for it in self.items])
        self.hi = np.array([max(it.asset.max_temp_c, self.t0[j]) for j, it in enumerate(self.items)])
        # no tank gets colder than the water refilling it (or than it was measured at the start)
        self.floor = np.array([min(it.asset.cold_water_temp_c, self.t0[j]) for j, it in enumerate(self.items)])
        self.cap_kwh = cap
        # Unmet hot water is physics, not a preference: the tank runs empty only when nothing else can prevent it.
        # Its price per K of one tank exceeds anything a warmer tank could save (comfort over the whole horizon and
        # the heat itself at 100 EUR/kWh), and the cut-out's price per K and interval exceeds it in turn.
        pen = self.ctx.penalties.comfort_eur_per_degc_h
        self.unmet_eur_per_k = self.n * (2 * pen * T * dt + 100.0 * cap)

    def build(self, block) -> None:
        self._params()
        J, T = len(self.items), self.ctx.n
        integer = not self.relax_elements
        steps = np.arange(1, T + 1)
        self.k = add_var(block, "element_intervals", np.zeros(J * T), (self.n[:, None] * steps).ravel(),
                         integer=integer)
        self.under = add_var(block, "below_min_c", np.zeros(J * T), np.full(J * T, np.inf))
        self.over = add_var(block, "above_max_c", np.zeros(J * T), np.full(J * T, np.inf))
        self.multi = [j for j, it in enumerate(self.items) if it.count > 1]
        m = len(self.multi)
        self.s = add_var(block, "coldest_intervals", np.zeros(m * T), np.tile(steps, m).astype(float),
                         integer=integer)
        self.hot = add_var(block, "hottest_intervals", np.zeros(m * T), np.tile(steps, m).astype(float),
                           integer=integer)
        # (variable list, offset) of the coldest and the hottest tank's cumulative heating intervals
        coldest = {j: (self.k, j * T) for j in range(J)}
        coldest.update({j: (self.s, q * T) for q, j in enumerate(self.multi)})
        hottest = {j: (self.k, j * T) for j in range(J)}
        hottest.update({j: (self.hot, q * T) for q, j in enumerate(self.multi)})
        self._steps(block, "element_steps", self.k, J, self.n)
        self._steps(block, "coldest_steps", self.s, m, np.ones(m))
        self._steps(block, "hottest_steps", self.hot, m, np.ones(m))
        # k >= n * coldest, n * hottest >= k (a tank of a group heats at most / at least the group's share)
        at = (np.asarray(self.multi, dtype=np.int64)[:, None] * T + np.arange(T)).ravel()
        n_rep = np.repeat(self.n[self.multi], T)
        k_at = np.asarray(self.k, dtype=np.int64)[at]
        add_row_arrays(block, "coldest_share", np.column_stack([np.ones(at.size), -n_rep]).reshape(-1, 2),
                       np.column_stack([k_at, self.s]).reshape(-1, 2), np.zeros(at.size), None)
        add_row_arrays(block, "hottest_share", np.column_stack([-np.ones(at.size), n_rep]).reshape(-1, 2),
                       np.column_stack([k_at, self.hot]).reshape(-1, 2), np.zeros(at.size), None)
        self._unmet(block)
        cells = np.arange(J * T)
        st = np.repeat(self.step, T)
        cold_x = self._cumulative_columns(self.k, self.s).ravel()
        hot_x = self._cumulative_columns(self.k, self.hot).ravel()
        # minimum, on the coldest tank: step*x + unmet + under >= lo - free, and its rounding row (valid with the
        # unmet draws on the left: they are >= 0 like `under`); the physical floor, hard: step*x + unmet >= floor
        need = (self.lo[:, None] - self.free).ravel()
        f, ok = self._fractions(need / st, low=True)
        chord = np.flatnonzero(ok)
        rows = np.concatenate([cells, np.full(J * T, -1)])
        rows[J * T + chord] = J * T + np.arange(chord.size)  # cell -> its chord row, after the J*T main rows
        self._family(block, "min_temp", J * T + chord.size,
                     [(cells, cold_x, st), (cells, np.asarray(self.under), np.ones(J * T)),
                      (J * T + np.arange(chord.size), cold_x[chord], st[chord] * f[chord]),
                      (J * T + np.arange(chord.size), np.asarray(self.under)[chord], np.ones(chord.size))],
                     [rows[:J * T], rows[J * T:]],
                     np.concatenate([need, st[chord] * f[chord] * np.ceil(need[chord] / st[chord])]), None)
        room_floor = (self.floor[:, None] - self.free).ravel()
        hard = np.flatnonzero(room_floor > 0)
        floor_rows = np.full(J * T, -1)
        floor_rows[hard] = np.arange(hard.size)
        self._family(block, "cold_water_floor", hard.size, [(np.arange(hard.size), cold_x[hard], st[hard])],
                     [floor_rows], room_floor[hard], None)
        # maximum (cut-out), on the hottest tank: step*y + unmet - over <= hi - free; its rounding row is written
        # without the unmet draws, which it still holds for (they only add to the left-hand side)
        room = (self.hi[:, None] - self.free).ravel()
        f, ok = self._fractions(room / st, low=False)
        chord = np.flatnonzero(ok)
        self._family(block, "max_temp", J * T + chord.size,
                     [(cells, hot_x, st), (cells, np.asarray(self.over), -np.ones(J * T)),
                      (J * T + np.arange(chord.size), hot_x[chord], st[chord] * (1 - f[chord])),
                      (J * T + np.arange(chord.size), np.asarray(self.over)[chord], -np.ones(chord.size))],
                     [cells], None,
                     np.concatenate([room, st[chord] * (1 - f[chord]) * np.floor(room[chord] / st[chord])]))

    def _cumulative_columns(self, own, group) -> np.ndarray:
        """(J, T) columns of each entry's cumulative element-intervals of one tank: the entry's own for a single
        heater, the group's coldest (or hottest) tank's for a group."""
        T = self.ctx.n
        cols = np.asarray(own, dtype=np.int64).reshape(len(self.items), T).copy()
        if self.multi:
            cols[self.multi] = np.asarray(group, dtype=np.int64).reshape(len(self.multi), T)
        return cols

    def _fractions(self, q: np.ndarray, low: bool) -> tuple[np.ndarray, np.ndarray]:
        """The fractional part ``f`` of ``q`` (element-intervals needed, or room for them) and where a rounding row
        applies: never with relaxed elements, where ``q`` is integral, or where the bound cannot bind (no need,
        negative room). The rows (chords of the integer hull, ``x`` integer, ``y >= 0``):
        ``x + y >= need``  =>  ``f*x + y >= f*ceil(need)``;
        ``x - y <= room``  =>  ``(1-f)*x - y <= (1-f)*floor(room)``."""
        f = q - np.floor(q)
        ok = (f >= _EPS) & (f <= 1 - _EPS) & ((q > 0) if low else (q >= 0)) & (not self.relax_elements)
        return f, ok

    def _family(self, block, name: str, k: int, terms: list, unmet_rows: list, lower, upper) -> None:
        """A family of ``k`` rows from its terms ``(row, column, coefficient)``, with the unmet draws up to each
        row's interval added to the rows ``unmet_rows`` maps each cell to (-1: none)."""
        r, c, v = (np.concatenate([t[i] for t in terms]) for i in range(3))
        cell, col = self._unmet_cells
        extra = [(rows[cell], col) for rows in unmet_rows]
        ur = np.concatenate([e[0] for e in extra])
        uc = np.concatenate([e[1] for e in extra])
        keep = ur >= 0
        add_row_triplets(block, name, np.concatenate([r, ur[keep]]), np.concatenate([c, uc[keep]]),
                         np.concatenate([v, np.ones(int(keep.sum()))]), k, lower, upper)

    def _unmet(self, block) -> None:
        """A variable per draw (K of one tank's temperature the draw could not take); ``_unmet_cells`` lists, for
        every cell (entry j, interval t) at or after a draw, the cell ``j*T + t`` and the draw's column: the unmet
        draws up to t count in the temperature at t."""
        T = self.ctx.n
        self.draw_at = [(j, t) for j in range(len(self.items)) for t in np.flatnonzero(self.draw_k[j] > 0)]
        self.unmet = add_var(block, "unmet_draw_c", np.zeros(len(self.draw_at)),
                             [self.draw_k[j, t] for j, t in self.draw_at])
        dj = np.array([j for j, _t in self.draw_at], dtype=np.int64)
        dt = np.array([t for _j, t in self.draw_at], dtype=np.int64)
        lengths = T - dt
        offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        self._unmet_cells = (np.repeat(dj * T + dt, lengths) + offset,
                             np.repeat(np.asarray(self.unmet, dtype=np.int64), lengths))

    def _steps(self, block, name: str, cum: list, entries: int, most: np.ndarray) -> None:
        """0 <= cum[t] - cum[t-1] <= most (the first interval is held by the variable's bound)."""
        T = self.ctx.n
        cum = np.asarray(cum, dtype=np.int64).reshape(entries, T)
        now, before = cum[:, 1:].ravel(), cum[:, :-1].ravel()
        add_row_arrays(block, name, np.tile([1.0, -1.0], (now.size, 1)), np.column_stack([now, before]).reshape(-1, 2),
                       np.zeros(now.size), np.repeat(np.asarray(most, dtype=float), T - 1))

    def round_integers(self, values: ValueReader) -> list:
        """Round the cumulative counts up (heat is never short by more than the relaxation allows), raised where
        the coldest tank's rounded share needs it, stepping at most ``count`` per interval and never taking the
        hottest tank past the cut-out; the coldest tank heats when its relaxed cumulative share passes a whole
        interval, the hottest is the rounded-up share."""
        if self.relax_elements:
            return []
        J, T = len(self.items), self.ctx.n
        want = np.ceil(as_matrix(values(self.block.element_intervals), J, T) - 1e-6)
        unmet = self._unmet_cumulative(values)
        pos = {j: q for q, j in enumerate(self.multi)}
        share_lp = np.ceil(values(self.block.coldest_intervals).reshape(len(self.multi), T) - 1e-6)
        k = np.zeros((J, T))
        s = np.zeros((len(self.multi), T))
        for j in range(J):
            n = self.n[j]
            # whole heating intervals the hottest tank may have had by t: count * that for the group
            room = n * np.floor((self.hi[j] - self.free[j] - unmet[j]) / self.step[j] + 1e-9)
            prev = prev_share = 0.0
            for t in range(T):
                target = want[j, t] if j not in pos else max(want[j, t], n * share_lp[pos[j], t])
                cum = min(max(target, prev), prev + n, max(room[t], prev))
                k[j, t] = prev = cum
                if j in pos:
                    share = max(min(share_lp[pos[j], t], np.floor(cum / n + 1e-9), prev_share + 1), prev_share)
                    s[pos[j], t] = prev_share = share
        out = [(self.block.element_intervals, k.ravel())]
        if self.multi:
            out.append((self.block.coldest_intervals, s.ravel()))
            out.append((self.block.hottest_intervals, np.ceil(k[self.multi] / self.n[self.multi, None] - 1e-9)
                        .ravel()))
        return out

    def _unmet_cumulative(self, values: ValueReader) -> np.ndarray:
        """(entries, T) unmet draws up to each interval, in K of one tank."""
        out = np.zeros((len(self.items), self.ctx.n))
        for (j, t), u in zip(self.draw_at, values(self.block.unmet_draw_c), strict=True):
            out[j, t:] += u
        return out

    def _on(self, values: ValueReader) -> np.ndarray:
        """Elements on per entry and interval."""
        J, T = len(self.items), self.ctx.n
        cum = as_matrix(values(self.block.element_intervals), J, T)
        on = np.diff(cum, axis=1, prepend=0.0)
        return on if self.relax_elements else np.round(on)

    def power(self) -> PowerTerms:
        J, T = len(self.items), self.ctx.n
        p = PowerTerms(np.zeros((J, T)))
        # power at t: element_kw x (cumulative element-intervals at t - at t-1)
        k = np.asarray(self.k, dtype=np.int64).reshape(J, T)
        p.add_grid(k.ravel(), np.repeat(self.elem, T))
        p.add_grid(np.roll(k, 1, axis=1).ravel(), (-self.elem[:, None] * (np.arange(T) > 0)).ravel())
        return p

    def cost(self) -> CostTerms:
        c = CostTerms()
        T, dt = self.ctx.n, self.ctx.dt_h
        pen = self.ctx.penalties.comfort_eur_per_degc_h
        c.add_many(np.repeat(pen * dt * self.n, T), self.under)
        c.add_many(np.repeat(MAX_TEMP_PENALTY_FACTOR * self.unmet_eur_per_k, T), self.over)
        c.add_many(self.unmet_eur_per_k[[j for j, _t in self.draw_at]], self.unmet)
        return c

    def extract(self, values: ValueReader) -> list[AssetSchedule]:
        on = self._on(values)
        temp = self.free + self._unmet_cumulative(values) + (self.step / self.n)[:, None] * np.cumsum(on, axis=1)
        # setpoint: share of the entry's elements switched on (0/1 for a single heater)
        return [AssetSchedule(on[j] * self.elem[j], on[j] / it.count, "1", temp[j], "degC", {"temp_c": temp[j]})
                for j, it in enumerate(self.items)]

    def baseline_kw(self) -> np.ndarray:
        """Hysteresis thermostat: on below thermostat - 2.5 K, off at thermostat + 2.5 K (stops mid-interval)."""
        J, T = len(self.items), self.ctx.n
        dt = self.ctx.dt_h
        out = np.zeros((J, T))
        for j, it in enumerate(self.items):
            low = it.asset.thermostat_c - DEADBAND_K
            high = min(it.asset.thermostat_c + DEADBAND_K, it.asset.max_temp_c)
            k_per_kw = dt * self.k_per_kwh[j]
            temp, heating = self.t0[j], self.t0[j] < low
            for t in range(T):
                heating = (heating or temp <= low) and temp < high
                free = temp - self.loss[j] - self.draw_k[j, t]
                p_unit = float(np.clip((high - free) / k_per_kw, 0.0, self.elem[j])) if heating else 0.0
                temp = free + k_per_kw * p_unit
                out[j, t] = p_unit * it.count
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
        unmet = values(self.block.unmet_draw_c)
        for (j, t), u in zip(self.draw_at, unmet, strict=True):
            if u * self.cap_kwh[j] <= 1e-3:
                continue
            it = self.items[j]
            kwh, a = u * self.cap_kwh[j], it.asset
            litres = kwh / (WATER_KWH_PER_L_K * (a.draw_temp_c - a.cold_water_temp_c))
            amount = np.zeros(self.ctx.n)
            amount[t] = kwh * it.count
            out += interval_violations(
                "hot_water_unmet", it, h, amount, "kWh",
                lambda m, _i, it=it, litres=litres, kwh=kwh: f"a draw the tank{'s' if it.count > 1 else ''} could "
                f"not supply: {m:.3f} kWh ({kwh:.3f} kWh, {litres:.1f} l at {it.asset.draw_temp_c:g} degC per tank)"
                f"; the tank is then at the cold-water temperature")
        return out

    def counts(self) -> dict[str, int]:
        return {"integers": 0 if self.relax_elements else len(self.k) + len(self.s) + len(self.hot)}
