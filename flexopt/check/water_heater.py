"""Water heaters: whole elements on, every tank of a group simulated, tank limits, draws the tank cannot supply.

Tank ``C = volume_l*4.186/3600`` kWh/K; standby loss the documented constant
``L = dt*UA*(thermostat_c - ambient_temp_c)/C`` K per interval; a daily draw takes
``litres*4.186/3600*(draw_temp_c - cold_water_temp_c)`` kWh from each tank in the interval holding it. A group's
``k = p/element_kw`` elements go to the ``k`` tanks that have heated fewest intervals so far (round robin), and
``T_i[t] = T_i[t-1] - L - draw/C + (element_kw*dt/C)*on_i[t]`` for every tank. A tank is never colder than the cold
water that refills it: a draw that would take it lower asks for more hot water than it holds (hot_water_unmet).
"""

from __future__ import annotations

import numpy as np

from flexopt.check.breaches import Breach
from flexopt.check.context import AssetCase
from flexopt.check.local_time import instant_intervals
from flexopt.check.registry import register_check

WATER_KWH_PER_L_K = 4.186 / 3600


def draws_kwh(case: AssetCase) -> np.ndarray:
    """Heat each tank gives to draws per interval."""
    a = case.asset
    out = np.zeros(case.n)
    for d in a.draws:
        out[instant_intervals(case.clock, d.at_local)] += d.litres * WATER_KWH_PER_L_K * (a.draw_temp_c -
                                                                                          a.cold_water_temp_c)
    return out


def simulate(case: AssetCase, elements_on: np.ndarray) -> dict[str, np.ndarray]:
    """Coldest, hottest and mean tank temperature and hot water unmet (kWh, whole group) per interval."""
    a, n = case.asset, case.count
    cap = a.volume_l * WATER_KWH_PER_L_K
    step = a.element_kw * case.dt_h / cap
    loss = case.dt_h * a.standby_loss_w_per_k / 1000 * (a.thermostat_c - a.ambient_temp_c) / cap
    drawn = draws_kwh(case) / cap
    tanks = np.full(n, float(case.initial.get("temp_c", a.initial_temp_c)))
    floor = min(a.cold_water_temp_c, float(tanks[0]))  # a tank measured colder at the start is not warmed by water
    heated = np.zeros(n, dtype=int)
    out = {key: np.zeros(case.n) for key in ("coldest", "hottest", "mean", "unmet_kwh")}
    for t in range(case.n):
        on = np.zeros(n)
        on[np.argsort(heated, kind="stable")[:elements_on[t]]] = 1.0
        heated += on.astype(int)
        tanks = tanks - loss - drawn[t] + step * on
        # below cold water: the part a draw took is hot water the tank could not give; standby loss alone only
        # brings a tank to the cold water's temperature (the constant loss is not meant for a cold tank)
        out["unmet_kwh"][t] = np.clip(floor - tanks, 0, drawn[t]).sum() * cap
        tanks = np.maximum(tanks, floor)
        out["coldest"][t], out["hottest"][t], out["mean"][t] = tanks.min(), tanks.max(), tanks.mean()
    return out


@register_check("water_heater")
def check(case: AssetCase) -> list[Breach]:
    a, n = case.asset, case.count
    p = case.power_kw
    k = p / a.element_kw
    whole = np.clip(np.round(k), 0, n)
    out = case.over("element_steps", np.abs(k - whole) * a.element_kw, "kW", value=p, limit=whole * a.element_kw,
                    note=f"power not a whole number of {a.element_kw:g} kW elements (0..{n})")
    sim = simulate(case, whole.astype(int))
    t0 = float(case.initial.get("temp_c", a.initial_temp_c))
    state = case.state_or(sim["mean"])
    expected = np.concatenate(([t0], state[:-1])) + np.diff(sim["mean"], prepend=t0)
    out += case.over("tank_state", np.abs(state - expected), "K", value=state, limit=expected,
                     note="mean tank temperature vs the simulated tanks, from the previous state")
    group = "coldest tank" if n > 1 else "tank"
    out += case.over("tank_temp_low", a.min_temp_c - sim["coldest"], "K", value=sim["coldest"], limit=a.min_temp_c,
                     note=f"{group} below its minimum")
    group = "hottest tank" if n > 1 else "tank"
    out += case.over("tank_temp_high", sim["hottest"] - a.max_temp_c, "K", value=sim["hottest"],
                     limit=a.max_temp_c, note=f"{group} above its cut-out")
    out += case.over("hot_water_unmet", sim["unmet_kwh"], "kWh", value=sim["unmet_kwh"], limit=0.0,
                     note="draws larger than the heat the tanks hold above cold water")
    return out
