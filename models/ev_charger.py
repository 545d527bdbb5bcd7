"""EV chargers: daily sessions with energy needed by departure (soft), minimum charging current as a real
on/off decision, and V2G discharge on bidirectional chargers.

The state is the energy put into the vehicle battery since arrival: charging adds efficiency x drawn energy,
discharging takes drawn energy / efficiency, so cycling a car costs its losses. Where the vehicle battery is known
its energy stays between the minimum SoC (V2G) and full in every interval.

A session seen by ``units`` identical chargers is one aggregate with an integer "chargers on" (0..units)
instead of one binary per charger: the set of reachable total powers is the same (k*min .. k*max for k
on), without the symmetry of interchangeable chargers.

Cars measured at the start of an intraday run (``vehicles_plugged`` in the start state): each plugged car sits in a
session of the start's local day that departs after the start -- the sessions under way first, then the later ones,
soonest departure first, up to each session's units; cars beyond those join the session departing next. A session
under way keeps only the cars measured (none: it is dropped from the start; later sessions stay); a later session
gives its early cars a visit from the start to its departure and keeps the rest for its arrival. Without
``vehicles_plugged`` the configured sessions stand as they are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from flexopt.models.base import (
    TIE_BREAK_EUR_PER_KWH,
    AssetSchedule,
    CostTerms,
    Formulation,
    PowerTerms,
    ValueReader,
    add_one_mode_rows,
    add_rows,
    add_var,
)
from flexopt.models.calendar import daily_occurrences, minutes
from flexopt.models.registry import register
from flexopt.models.violations import Violation


@dataclass
class Visit:
    """One occurrence of a daily session inside the horizon."""

    entry: int
    idx: np.ndarray  # interval indices while plugged in
    units: int
    target_kwh: float  # energy wanted in the vehicle battery by the end of idx (total over units)
    start_kwh: float  # delivered before idx[0]
    lo_kwh: float  # lowest delivered energy allowed in any interval (negative with V2G: below arrival)
    hi_kwh: float  # highest delivered energy in any interval: the vehicle battery is full (inf when unknown)
    soft_hi_kwh: float  # delivered energy above this at departure is priced (chargers with a minimum current)
    charge_kw: float  # totals over units
    discharge_kw: float
    min_kw: float  # per charger when on; 0 = no on/off decision
    eta_charge: float
    eta_discharge: float
    exclusive: bool  # a binary keeps charging and discharging apart
    label: str
    offset: int = 0  # position of idx[0] in the flat variables
    session: Any = None  # the EvSession it is an occurrence of
    day: dt.date | None = None  # local day of idx[0]
    arrive: pd.Timestamp | None = None  # instants the cars are plugged in [arrive, depart)
    depart: pd.Timestamp | None = None
    running: bool = False  # plugged in before the horizon starts: starts from the start state's energy


@register
class EvChargerFormulation(Formulation):
    asset_type = "ev_charger"

    def _visits(self) -> list[Visit]:
        visits = []
        for j, it in enumerate(self.items):
            h = self.ctx.site_horizon(it)
            own = [self._visit(j, it, h, s, idx, s.units or it.count)
                   for s in it.asset.sessions for idx in daily_occurrences(h, s.arrival_local, s.departure_local)]
            plugged = it.initial_state.get("vehicles_plugged")
            if plugged is not None:
                own = self._plugged_at_start(j, it, h, own, round(plugged))
            delivered = it.initial_state.get("energy_delivered_kwh")
            running = [v for v in own if v.running]
            if delivered is not None and running:
                total_units = sum(v.units for v in running)
                for v in running:
                    v.start_kwh = float(delivered) * v.units / total_units
                    v.hi_kwh = max(v.hi_kwh, v.start_kwh)
                    v.lo_kwh = min(v.lo_kwh, v.start_kwh)
                    v.soft_hi_kwh = max(v.soft_hi_kwh, v.start_kwh)  # energy already in the car is no decision
            visits += own
        return visits

    def _visit(self, j: int, it, h, s, idx: np.ndarray, u: int, from_start: bool = False) -> Visit:
        """The visit of session ``s`` over the intervals ``idx`` with ``u`` cars (from the horizon start when the
        cars were measured plugged in before their arrival)."""
        a = it.asset
        end_local = h.local[-1] + pd.Timedelta(hours=self.ctx.dt_h)
        first_min = h.local_minutes()[0]
        need = s.energy_kwh * u
        lo, hi = 0.0, np.inf
        if s.vehicle_battery_kwh is not None:
            # the vehicle battery bounds the energy in every interval: full at the top, the minimum SoC
            # at the bottom (V2G); arriving with `energy_kwh` missing from full when no SoC is given
            cap = s.vehicle_battery_kwh * u
            arr = (s.arrival_soc_pct / 100 * cap) if s.arrival_soc_pct is not None else max(cap - need, 0)
            hi = cap - arr
            if a.max_discharge_kw > 0:
                lo = min(s.min_soc_pct / 100 * cap - arr, 0.0)
        # a charger that is on delivers at least min power for an interval: allow that overshoot
        soft_hi = need + a.charge_efficiency * a.min_charge_kw * u * self.ctx.dt_h
        target = need
        depart = _instant(h.local[idx[-1]].date(), s.departure_local, h.tz)  # DST-safe wall clock
        if idx[-1] == h.n - 1 and depart > end_local:
            # the horizon ends before departure: only keep the target reachable after the horizon
            hours_left = (depart - end_local).total_seconds() / 3600
            target = max(need - a.charge_efficiency * a.max_charge_kw * u * hours_left, 0.0)
        day = h.local[idx[0]].date()
        arrive = h.index[0] if from_start else _instant(day, s.arrival_local, h.tz)
        label = f"{'start' if from_start else format(s.arrival_local, '%H:%M')}-{s.departure_local:%H:%M}"
        return Visit(j, idx, u, target, 0.0, lo, hi, soft_hi, a.max_charge_kw * u, a.max_discharge_kw * u,
                     a.min_charge_kw, a.charge_efficiency, a.discharge_efficiency,
                     a.max_discharge_kw > 0 and self.ctx.exclusive_modes(it), label, session=s, day=day,
                     arrive=arrive, depart=_instant(day, s.departure_local, h.tz),
                     running=from_start or bool(idx[0] == 0 and minutes(s.arrival_local) < first_min))

    def _plugged_at_start(self, j: int, it, h, own: list[Visit], plugged: int) -> list[Visit]:
        """The visits of the start's local day redone for the ``plugged`` cars measured at the start (module
        docstring); visits of later days stay."""
        start, day0 = h.index[0], h.local[0].date()
        out = [v for v in own if v.day != day0]
        due = []  # sessions of the start's day still to depart: (under way, departure, session, its visit)
        for s in it.asset.sessions:
            departure = _instant(day0, s.departure_local, h.tz)
            if departure > start:
                visit = next((v for v in own if v.session is s and v.day == day0), None)
                due.append((_instant(day0, s.arrival_local, h.tz) < start, departure, s, visit))
        left = plugged
        for under_way, _departure, s, visit in sorted(due, key=lambda d: (not d[0], d[1])):
            units = s.units or it.count
            here = min(units, left)
            left -= here
            if under_way:
                if here and visit is not None:
                    out.append(visit if here == units else self._visit(j, it, h, s, visit.idx, here))
                continue
            now = _from_start(h, s.departure_local)
            if here and now.size:
                out.append(self._visit(j, it, h, s, now, here, from_start=True))
            if units > here and visit is not None:
                out.append(visit if here == 0 else self._visit(j, it, h, s, visit.idx, units - here))
        if left and due:  # more cars than sessions: they leave with the session departing next
            s = min(due, key=lambda d: d[1])[2]
            now = _from_start(h, s.departure_local)
            if now.size:
                out.append(self._visit(j, it, h, s, now, left, from_start=True))
        return out

    def build(self, block) -> None:
        dt = self.ctx.dt_h
        self.visits = self._visits()
        off = 0
        for v in self.visits:
            v.offset = off
            off += v.idx.size

        def per_interval(attr: str) -> np.ndarray:
            return np.concatenate([np.full(v.idx.size, getattr(v, attr)) for v in self.visits]) if off else np.zeros(0)

        self.c = add_var(block, "charge_kw", np.zeros(off), per_interval("charge_kw"))
        self.d = add_var(block, "discharge_kw", np.zeros(off), per_interval("discharge_kw"))
        self.e = add_var(block, "delivered_kwh", per_interval("lo_kwh"), per_interval("hi_kwh"))
        n_v = len(self.visits)
        self.short = add_var(block, "short_kwh", np.zeros(n_v), np.full(n_v, np.inf))
        self.excess = add_var(block, "excess_kwh", np.zeros(n_v), np.full(n_v, np.inf))
        rows, rhs = [], []
        for v in self.visits:
            for q in range(v.idx.size):
                i = v.offset + q
                cols, vars_ = [1.0, -dt * v.eta_charge], [self.e[i], self.c[i]]
                if v.discharge_kw > 0:
                    cols.append(dt / v.eta_discharge)
                    vars_.append(self.d[i])
                if q:
                    cols.append(-1.0)
                    vars_.append(self.e[i - 1])
                rows.append((cols, vars_))
                rhs.append(0.0 if q else v.start_kwh)
        add_rows(block, "energy", rows, rhs, rhs)
        add_rows(block, "departure", [([1.0, 1.0], [self.e[v.offset + v.idx.size - 1], self.short[k]])
                                      for k, v in enumerate(self.visits)],
                 [v.target_kwh for v in self.visits], None)
        # soft, so rounding the chargers-on integers can never make the model infeasible
        add_rows(block, "vehicle_full", [([1.0, -1.0], [self.e[v.offset + v.idx.size - 1], self.excess[k]])
                                         for k, v in enumerate(self.visits)],
                 None, [v.soft_hi_kwh for v in self.visits])
        self._one_mode(block)
        self._on_off(block)

    def _one_mode(self, block) -> None:
        """Where wasting energy could pay, a binary per interval: the vehicles charge or discharge, not both."""
        moded = [k for k, v in enumerate(self.visits) if v.exclusive]
        size = sum(self.visits[k].idx.size for k in moded)
        self.charging = add_var(block, "charging", np.zeros(size), np.ones(size), integer=True)
        self.mode_pos: dict[int, int] = {}
        cols, c_max, d_max, pos = [], [], [], 0
        for k in moded:
            v = self.visits[k]
            self.mode_pos[k] = pos
            cols += range(v.offset, v.offset + v.idx.size)
            c_max += [v.charge_kw] * v.idx.size
            d_max += [v.discharge_kw] * v.idx.size
            pos += v.idx.size
        add_one_mode_rows(block, "one_mode", [self.c[i] for i in cols], [self.d[i] for i in cols], self.charging,
                          c_max, d_max)

    def _on_off(self, block) -> None:
        self.switched = [k for k, v in enumerate(self.visits) if v.min_kw > 0]
        pos, ub = {}, []
        for k in self.switched:
            pos[k] = len(ub)
            ub += [self.visits[k].units] * self.visits[k].idx.size
        self.on = add_var(block, "chargers_on", np.zeros(len(ub)), np.array(ub, dtype=float), integer=True)
        rows, lo, up = [], [], []
        for k in self.switched:
            v = self.visits[k]
            per_max = v.charge_kw / v.units
            per_dis = v.discharge_kw / v.units
            for q in range(v.idx.size):
                i, on = v.offset + q, self.on[pos[k] + q]
                rows.append(([1.0, -per_max], [self.c[i], on]))  # c <= on * max
                lo.append(None)
                up.append(0.0)
                rows.append(([1.0, -v.min_kw], [self.c[i], on]))  # c >= on * min
                lo.append(0.0)
                up.append(None)
                if v.discharge_kw > 0:  # chargers that charge cannot discharge
                    rows.append(([1.0, per_dis], [self.d[i], on]))
                    lo.append(None)
                    up.append(v.discharge_kw)
        add_rows(block, "on_off", rows, lo, up)
        self.on_pos = pos

    def round_integers(self, values: ValueReader) -> list:
        """Chargers on: per visit, enough to carry the relaxed energy (:func:`_chargers_on`); the mode: the net
        effect."""
        c, d = values(self.block.charge_kw), values(self.block.discharge_kw)
        out = []
        if self.mode_pos:  # the relaxation's net effect on the vehicles' energy, which one mode alone reproduces
            modes = [v.eta_charge * c[v.offset:v.offset + v.idx.size] >= d[v.offset:v.offset + v.idx.size]
                     / v.eta_discharge for k, v in enumerate(self.visits) if k in self.mode_pos]
            out.append((self.block.charging, np.concatenate(modes).astype(float)))
        if self.switched:
            ons = []
            for k in self.switched:
                v = self.visits[k]
                ons.append(_chargers_on(c[v.offset:v.offset + v.idx.size], v.charge_kw / v.units, v.min_kw, v.units))
            out.append((self.block.chargers_on, np.concatenate(ons)))
        return out

    def power(self) -> PowerTerms:
        p = PowerTerms(np.zeros((len(self.items), self.ctx.n)))
        if not self.visits:
            return p
        entry = np.concatenate([np.full(v.idx.size, v.entry) for v in self.visits])
        t = np.concatenate([v.idx for v in self.visits])
        v2g = np.concatenate([np.full(v.idx.size, v.discharge_kw > 0) for v in self.visits])
        p.add_many(entry, t, 1.0, self.c)
        p.add_many(entry[v2g], t[v2g], -1.0, np.asarray(self.d)[v2g])
        return p

    def cost(self) -> CostTerms:
        c = CostTerms()
        for k, v in enumerate(self.visits):
            c.add(self.ctx.penalties.ev_energy_eur_per_kwh, self.short[k])
            c.add(self.ctx.penalties.ev_energy_eur_per_kwh, self.excess[k])
            if v.discharge_kw > 0:
                for q in range(v.idx.size):
                    c.add(TIE_BREAK_EUR_PER_KWH * self.ctx.dt_h, self.d[v.offset + q])
        return c

    def extract(self, values: ValueReader) -> list[AssetSchedule]:
        J, T = len(self.items), self.ctx.n
        c, d, e = values(self.block.charge_kw), values(self.block.discharge_kw), values(self.block.delivered_kwh)
        self.simultaneous_kwh = float(np.minimum(c, d).sum() * self.ctx.dt_h)
        power = np.zeros((J, T))
        state = np.full((J, T), np.nan)
        plugged, carried = np.zeros((J, T)), np.full((J, T), np.nan)
        ends = self.ctx.horizon.ends
        for v in self.visits:
            sl = slice(v.offset, v.offset + v.idx.size)
            power[v.entry, v.idx] += c[sl] - d[sl]
            state[v.entry, v.idx] = np.nan_to_num(state[v.entry, v.idx]) + e[sl]
            # what a run starting at an interval's end starts from: the cars still there at that instant (one
            # leaving then is gone, one arriving then not yet there) and the energy in them
            there = np.asarray((v.arrive < ends) & (ends < v.depart))
            energy = np.full(T, v.start_kwh)
            energy[v.idx] = e[sl]
            plugged[v.entry, there] += v.units
            carried[v.entry, there] = np.nan_to_num(carried[v.entry, there]) + energy[there]
        return [AssetSchedule(power[j], power[j] / it.count, "kW", state[j], "kWh",
                              {"energy_delivered_kwh": carried[j], "vehicles_plugged": plugged[j]})
                for j, it in enumerate(self.items)]

    def baseline_kw(self) -> np.ndarray:
        """Unmanaged charging: full power from arrival until the energy is in."""
        dt = self.ctx.dt_h
        out = np.zeros((len(self.items), self.ctx.n))
        for v in self.visits:
            left = max(min(v.target_kwh, v.hi_kwh) - v.start_kwh, 0.0)
            for t in v.idx:
                kwh = min(v.eta_charge * v.charge_kw * dt, left)
                out[v.entry, t] += kwh / (v.eta_charge * dt)
                left -= kwh
        return out

    def violations(self, values: ValueReader) -> list[Violation]:
        h = self.ctx.horizon
        short, excess = values(self.block.short_kwh), values(self.block.excess_kwh)
        out = []
        for k, v in enumerate(self.visits):
            for kind, amount, detail in (
                ("ev_energy", short[k], f"got {v.target_kwh - short[k]:.3f} of {v.target_kwh:.3f} kWh by departure"),
                ("ev_energy_excess", excess[k], f"got {excess[k]:.3f} kWh more than {v.soft_hi_kwh:.3f} kWh (its "
                                                "need plus one interval at the minimum current)"),
            ):
                if amount > 1e-3:
                    it = self.items[v.entry]
                    out.append(Violation(
                        kind=kind, site_id=it.site.id, asset_id=it.asset.id, congestion_point=None,
                        start=h.index[v.idx[0]], end=h.ends[v.idx[-1]], amount=float(amount), unit="kWh",
                        detail=f"session {v.label} ({v.units} charger(s)) {detail}"))
        return out

    def counts(self) -> dict[str, int]:
        return {"integers": len(self.on), "binaries": len(self.charging)}


def _chargers_on(charge_kw: np.ndarray, per_max: float, per_min: float, units: int) -> np.ndarray:
    """Chargers on per interval of one visit, from the relaxation's charging power ``charge_kw``.

    Where the fewest chargers that carry the relaxed power can also hold it above their minimum, that many: the
    relaxed power stays possible there. Elsewhere (the relaxation charged less than the chargers' minimum) the
    whole chargers it used, plus one more in as many of those intervals as their remainders add up to (in
    chargers at full power, rounded up), largest remainder first: the chargers on can still carry the relaxed
    energy within those same intervals, and an extra one sits where the relaxation charged most. Rounding each
    interval alone turned the small remainders off and left their energy to intervals already at full power or
    to a site limit shared with other devices: the car was short at departure."""
    charge_kw = np.clip(charge_kw, 0.0, per_max * units)
    full = charge_kw / per_max
    up = np.minimum(np.ceil(full - 1e-6), units)
    holds = up * per_min <= charge_kw + 1e-6
    on = np.where(holds, up, np.floor(full + 1e-6))
    rest = np.where(holds, 0.0, np.clip(full - on, 0.0, None))
    extra = int(np.ceil(rest.sum() - 1e-6))
    if extra > 0:
        order = np.argsort(-rest, kind="stable")[:extra]
        on[order[rest[order] > 1e-6]] += 1
    return on


def _instant(day: dt.date, at: dt.time, tz: str) -> pd.Timestamp:
    """A local wall-clock time of a day as a UTC instant (first occurrence when repeated, after the jump when the
    clock skips it)."""
    return pd.Timestamp(dt.datetime.combine(day, at)).tz_localize(
        ZoneInfo(tz), ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def _from_start(h, departure: dt.time) -> np.ndarray:
    """The intervals from the horizon start to a departure the same local day (a car measured plugged in)."""
    for idx in daily_occurrences(h, h.local[0].time(), departure):
        if idx[0] == 0:
            return idx
    return np.zeros(0, dtype=int)
