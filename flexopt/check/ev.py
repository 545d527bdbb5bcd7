"""EV chargers: power only while a vehicle is plugged in, within the chargers' rating and minimum current; the
energy that reaches the vehicle battery, its capacity and minimum SoC, and the energy needed by departure.

Energy into the vehicle battery (the state column, since arrival):
``e[t] = e[t-1] + dt*(eta_c*max(p, 0) - max(-p, 0)/eta_d)``, starting at 0 at arrival, or at run.json's
``energy_delivered_kwh`` for a visit already running when an intraday run starts. Bounds and departure are checked
on the energy the power gives. Visits of one entry that overlap in time are checked as their aggregate (the sum
of their energies; the state column holds only that sum), and the breach says so.

Cars measured at an intraday start (run.json ``initial_state`` ``vehicles_plugged``) change the visits of the
start's local day: each car sits in a session that departs after the start, those under way first, then later ones,
soonest departure first, up to the session's units; cars beyond them go with the session departing next. A session
under way keeps only its measured cars (none: no visit, no energy owed); a later session's early cars are a visit
from the start to its departure, its other cars still arrive as configured.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from flexopt.check import tolerances
from flexopt.check.breaches import Breach
from flexopt.check.context import AssetCase
from flexopt.check.local_time import clock_minutes, local_instant, session_visits
from flexopt.check.registry import register_check
from flexopt.config.portfolio import EvSession


@dataclass
class Visit:
    """One occurrence of a daily session on the horizon."""

    day: dt.date
    idx: np.ndarray  # plugged intervals
    session: EvSession
    units: int
    running: bool  # plugged in before the horizon starts (intraday)
    hours_after_end: float  # > 0 when the horizon ends before departure


def min_charge_kw(asset) -> float:
    """Lowest charging power of one charger that is on: AC needs the minimum current on every phase; DC none."""
    if asset.current_type == "dc":
        return 0.0
    return min(asset.max_charge_kw, asset.min_current_a * asset.voltage_v * asset.phases / 1000.0)


def visits(case: AssetCase) -> list[Visit]:
    h, tz = case.horizon, case.clock.tz
    out = []
    for s in case.asset.sessions:
        for day, idx in session_visits(case.clock, s.arrival_local, s.departure_local):
            running = bool(idx[0] == 0 and local_instant(day, s.arrival_local, tz) < h.index[0])
            out.append(_occurrence(case, day, idx, s, s.units or case.count, running))
    plugged = case.initial.get("vehicles_plugged")
    return out if plugged is None else measured_at_start(case, out, round(float(plugged)))


def _occurrence(case: AssetCase, day: dt.date, idx: np.ndarray, s: EvSession, units: int, running: bool) -> Visit:
    h = case.horizon
    departure = local_instant(day, s.departure_local, case.clock.tz)
    after = (departure - h.ends[-1]).total_seconds() / 3600 if idx[-1] == h.n - 1 else 0.0
    return Visit(day, idx, s, units, running, max(after, 0.0))


def measured_at_start(case: AssetCase, vs: list[Visit], plugged: int) -> list[Visit]:
    """The visits with the start's local day redone for ``plugged`` cars measured at the start (module docstring)."""
    start, tz = case.horizon.index[0], case.clock.tz
    day0 = start.tz_convert(tz).date()
    out = [v for v in vs if v.day != day0]
    due = []
    for s in case.asset.sessions:
        departure = local_instant(day0, s.departure_local, tz)
        if departure > start:
            mine = [v for v in vs if v.session is s and v.day == day0]
            due.append((local_instant(day0, s.arrival_local, tz) < start, departure, s, mine[0] if mine else None))
    due.sort(key=lambda d: (not d[0], d[1]))
    left = plugged
    for under_way, _departure, s, v in due:
        units = s.units or case.count
        here = min(units, left)
        left -= here
        if under_way:
            if here and v is not None:
                out.append(_occurrence(case, day0, v.idx, s, here, True))
            continue
        early = _from_start(case, day0, s)
        if here and early.size:
            out.append(_occurrence(case, day0, early, s, here, True))
        if units > here and v is not None:
            out.append(_occurrence(case, day0, v.idx, s, units - here, False))
    if left and due:
        s = min(due, key=lambda d: d[1])[2]
        early = _from_start(case, day0, s)
        if early.size:
            out.append(_occurrence(case, day0, early, s, left, True))
    return out


def _from_start(case: AssetCase, day0: dt.date, s: EvSession) -> np.ndarray:
    """Intervals from the horizon start to the session's departure on the start's local day."""
    clock = case.clock
    idx = np.flatnonzero((clock.day == day0.toordinal()) & (clock.end_min <= clock_minutes(s.departure_local)))
    return idx if idx.size and idx[0] == 0 else np.zeros(0, dtype=int)


def overlapping(vs: list[Visit]) -> list[list[Visit]]:
    """Visits grouped where their plugged intervals overlap (a group of one is the usual case)."""
    groups: list[list[Visit]] = []
    end = -1
    for v in sorted(vs, key=lambda v: (v.idx[0], v.idx[-1])):
        if groups and v.idx[0] <= end:
            groups[-1].append(v)
            end = max(end, int(v.idx[-1]))
        else:
            groups.append([v])
            end = int(v.idx[-1])
    return groups


@register_check("ev_charger")
def check(case: AssetCase) -> list[Breach]:
    a = case.asset
    p = case.power_kw
    vs = visits(case)
    units = np.zeros(case.n)
    for v in vs:
        units[v.idx] += v.units
    plugged = units > 0
    out = case.over("ev_unplugged", np.where(plugged, 0.0, np.abs(p)), "kW", value=p, limit=0.0,
                    note="power while no vehicle is plugged in")
    high, low = units * a.max_charge_kw, -units * a.max_discharge_kw
    out += case.over("power_limit", np.where(plugged, np.maximum(p - high, low - p), 0.0), "kW", value=p,
                     limit=np.where(p > high, high, low), note=f"plugged units x -{a.max_discharge_kw:g}.."
                                                               f"{a.max_charge_kw:g} kW")
    p_min = min_charge_kw(a)
    charging = plugged & (p > tolerances.POWER_KW)
    out += case.over("min_power", np.where(charging, p_min - p, 0.0), "kW", value=p, limit=p_min,
                     note=f"charging below one charger's minimum {p_min:g} kW")
    state = case.rows.state
    stray = case.rows.present & ~plugged & np.isfinite(state)
    out += case.over("ev_state", np.where(stray, np.abs(state), 0.0), "kWh", value=state, limit=np.nan,
                     note="energy shown while no vehicle is plugged in (NaN expected)")
    for group in overlapping(vs):
        out += _group(case, group)
    return out


def _group(case: AssetCase, group: list[Visit]) -> list[Breach]:
    a, dt_h = case.asset, case.dt_h
    ts = np.unique(np.concatenate([v.idx for v in group]))
    p = case.power_kw[ts]
    flow = dt_h * (a.charge_efficiency * np.clip(p, 0, None) - np.clip(-p, 0, None) / a.discharge_efficiency)
    e0 = float(case.initial.get("energy_delivered_kwh", 0.0) or 0.0) if any(v.running for v in group) else 0.0
    energy = e0 + np.cumsum(flow)  # into the group's vehicles since the first arrival (departed ones included)
    single = len(group) == 1
    note = "" if single else f" (aggregate of {len(group)} overlapping visits)"
    active = np.array([[t in set(v.idx.tolist()) for t in ts] for v in group])  # visit x interval
    # state column: one step from the previous state, where no vehicle left in between
    present, raw = case.rows.present[ts], case.rows.state[ts]
    reported = np.where(present, raw, energy) if single else _continue_missing(raw, present, flow, e0)
    expected = np.concatenate(([e0], reported[:-1])) + flow
    left = np.concatenate(([False], (active[:, :-1] & ~active[:, 1:]).any(axis=0)))
    mismatch = np.where(left, 0.0, np.abs(reported - expected))
    out = _at(case, ts, "ev_state", mismatch, "kWh", reported, expected,
              f"state vs the energy the power gives (eta_c {a.charge_efficiency:g}, "
              f"eta_d {a.discharge_efficiency:g}){note}")
    # vehicle battery: capacity, minimum SoC (V2G) or no energy taken (one-way); on the energy the power gives
    inside = reported if not single else energy
    arr, lo, cap = np.zeros(ts.size), np.zeros(ts.size), np.zeros(ts.size)
    known = True
    for k, v in enumerate(group):
        arr_v, lo_v, cap_v = _vehicle(a, v)
        known &= cap_v is not None
        arr += active[k] * arr_v
        lo += active[k] * lo_v
        cap += active[k] * (cap_v or 0.0)
    if known:
        out += _at(case, ts, "ev_battery_full", arr + inside - cap, "kWh", arr + inside, cap,
                   f"vehicle battery above its capacity{note}")
    out += _at(case, ts, "ev_battery_empty", lo - (arr + inside), "kWh", arr + inside, lo,
               f"vehicle battery below its minimum{note}")
    # departure: what left by each departure must have got its energy (a visit cut by the horizon end need only
    # stay reachable at full power until it leaves)
    need_by = np.zeros(ts.size)
    for v in group:
        need = v.session.energy_kwh * v.units
        need -= a.charge_efficiency * v.units * a.max_charge_kw * v.hours_after_end
        need_by[np.searchsorted(ts, v.idx[-1])] += need
    ends = np.zeros(ts.size, dtype=bool)
    for v in group:
        ends[np.searchsorted(ts, v.idx[-1])] = True
    short = np.where(ends, np.cumsum(need_by) - energy, 0.0)
    cut = any(v.hours_after_end > 0 for v in group)
    out += _at(case, ts, "ev_energy", short, "kWh", energy, np.cumsum(need_by),
               "energy at departure below the need" + (" (reachable after the horizon end)" if cut else "") + note)
    return out


def _vehicle(a, v: Visit) -> tuple[float, float, float | None]:
    """Arrival energy, lowest allowed and capacity of the visit's vehicles (kWh, all units)."""
    s = v.session
    if s.vehicle_battery_kwh is None:
        return 0.0, 0.0, None
    cap = s.vehicle_battery_kwh * v.units
    arr = s.arrival_soc_pct / 100 * cap if s.arrival_soc_pct is not None else max(cap - s.energy_kwh * v.units, 0.0)
    lo = min(s.min_soc_pct / 100 * cap, arr) if a.max_discharge_kw > 0 else arr
    return arr, lo, cap


def _continue_missing(raw: np.ndarray, present: np.ndarray, flow: np.ndarray, e0: float) -> np.ndarray:
    """An aggregate's states, missing rows continued from the previous state (so a gap is reported only once)."""
    out = raw.copy()
    prev = e0
    for k in range(out.size):
        if not present[k]:
            out[k] = prev + flow[k]
        prev = out[k]
    return out


def _at(case: AssetCase, ts: np.ndarray, kind: str, amount: np.ndarray, unit: str, value, limit,
        note: str) -> list[Breach]:
    """Breaches of values given on the intervals ``ts`` only."""
    full = np.zeros(case.n)
    full[ts] = amount
    val, lim = np.full(case.n, np.nan), np.full(case.n, np.nan)
    val[ts], lim[ts] = value, limit
    return case.over(kind, full, unit, value=val, limit=lim, note=note)
