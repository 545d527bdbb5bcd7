"""Battery physics: power within the rating, one mode per interval, SoC band, terminal SoC at the end of each day.

With one mode per interval the SoC follows the net power alone:
``soc[t] = soc[t-1] + dt*(eta_c*max(p, 0) - max(-p, 0)/eta_d)``; a state column that does not is simultaneous
charging and discharging (energy burnt in the converter) or broken dynamics. The band and the terminal target
are checked on the SoC the net power gives, i.e. what the battery holds when the schedule is dispatched.

The terminal target holds at the end of every local day of the run's time zone inside the horizon (the last
interval of each day, wherever the horizon ends). A horizon that ends during a day must leave the target
reachable: SoC at its end at least the target less what the full charging power adds until that day's end.
"""

from __future__ import annotations

import numpy as np

from flexopt.check.breaches import Breach
from flexopt.check.context import AssetCase
from flexopt.check.local_time import LocalClock, day_ends, hours_to_midnight
from flexopt.check.registry import register_check


def start_soc_kwh(case: AssetCase) -> float:
    a = case.asset
    pct = case.initial.get("soc_pct", a.initial_soc_pct)
    return float(pct) / 100 * a.energy_kwh * case.count


def terminal_kwh(case: AssetCase) -> float:
    """The day's target: terminal_soc_pct, else the configured initial SoC (never an intraday start state)."""
    a = case.asset
    pct = a.terminal_soc_pct if a.terminal_soc_pct is not None else a.initial_soc_pct
    return pct / 100 * a.energy_kwh * case.count


def soc_flow_kwh(p: np.ndarray, dt_h: float, eta_c: float, eta_d: float) -> np.ndarray:
    return dt_h * (eta_c * np.clip(p, 0, None) - np.clip(-p, 0, None) / eta_d)


@register_check("battery")
def check(case: AssetCase) -> list[Breach]:
    a, n = case.asset, case.count
    p = case.power_kw
    out = case.power_limits(-n * a.max_discharge_kw, n * a.max_charge_kw,
                            f"{n} x -{a.max_discharge_kw:g}..{a.max_charge_kw:g} kW")
    start = start_soc_kwh(case)
    flow = soc_flow_kwh(p, case.dt_h, a.charge_efficiency, a.discharge_efficiency)
    soc = start + np.cumsum(flow)
    state = case.state_or(soc)
    expected = np.concatenate(([start], state[:-1])) + flow
    out += case.over("soc_dynamics", np.abs(state - expected), "kWh", value=state, limit=expected,
                     note="state vs SoC from the previous state and the net power")
    cap = a.energy_kwh * n
    lo = min(a.soc_min_pct / 100 * cap, start)
    hi = max(a.soc_max_pct / 100 * cap, start)
    out += case.over("soc_bounds", np.maximum(lo - soc, soc - hi), "kWh", value=soc,
                     limit=np.where(soc > hi, hi, lo), note=f"SoC from the power outside {lo:g}..{hi:g} kWh")
    target = terminal_kwh(case)
    h = case.horizon
    clock = LocalClock.of(h.index, h.ends, h.tz)  # the run's days (its date's time zone), not the site's clock
    ends = day_ends(clock)
    short = np.zeros(case.n)
    short[ends] = target - soc[ends]
    out += case.over("terminal_soc", short, "kWh", value=soc, limit=target,
                     note=f"SoC at the end of a local day below the target {target:g} kWh")
    if case.n - 1 not in set(ends.tolist()):
        reach = target - a.charge_efficiency * n * a.max_charge_kw * hours_to_midnight(clock)
        if reach > a.soc_min_pct / 100 * cap:  # at or below the band's floor it holds by itself
            short = np.zeros(case.n)
            short[-1] = reach - soc[-1]
            out += case.over("terminal_soc", short, "kWh", value=soc, limit=reach,
                             note=f"SoC at the horizon's end below {reach:g} kWh, from which full charging power "
                                  f"still reaches the target {target:g} kWh by the day's end")
    return out
