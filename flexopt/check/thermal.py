"""Building zones and heat pumps (1R1C): power within the rating and minimum, one mode per interval, comfort.

``T[t] = a*T[t-1] + (1-a)*T_out[t] +/- g*p/count`` with ``a = exp(-dt/(R*C))``, ``g = (1-a)*R*COP`` (+ heating with
cop_heating, - cooling with cop_cooling); the ``count`` zones share one temperature. In each interval the state
column must follow heating with the whole power (mode heating or both) or cooling with the whole power (cooling or
both): following neither is heating and cooling at once, or broken dynamics. Comfort is checked on the
temperature the power gives, the mode of each interval being the one the state column follows most closely; after
an interval that follows neither, the simulation goes on from the state column (what the power would have done
there depends on a split the schedule does not say), so the breach is reported once, where it happens.
"""

from __future__ import annotations

import numpy as np

from flexopt.check import tolerances
from flexopt.check.breaches import Breach
from flexopt.check.context import AssetCase
from flexopt.check.local_time import window_mask
from flexopt.check.registry import register_check


def comfort_band(case: AssetCase) -> tuple[np.ndarray, np.ndarray]:
    """Allowed band per interval: a window covers the intervals starting inside it; overlapping windows
    intersect; the default band elsewhere."""
    a = case.asset
    lo, hi = np.full(case.n, a.default_min_temp_c), np.full(case.n, a.default_max_temp_c)
    covered = np.zeros(case.n, dtype=bool)
    for w in a.comfort:
        m = window_mask(case.clock, w.start_local, w.end_local)
        lo[m] = np.where(covered[m], np.maximum(lo[m], w.min_temp_c), w.min_temp_c)
        hi[m] = np.where(covered[m], np.minimum(hi[m], w.max_temp_c), w.max_temp_c)
        covered |= m
    return lo, hi


@register_check("climate", "heat_pump")
def check(case: AssetCase) -> list[Breach]:
    a, n = case.asset, case.count
    p = case.power_kw
    out = case.power_limits(0.0, n * a.max_electric_kw, f"0..{n} x {a.max_electric_kw:g} kW")
    if a.min_electric_kw > 0:
        running = p > tolerances.POWER_KW
        out += case.over("min_power", np.where(running, a.min_electric_kw - p, 0.0), "kW", value=p,
                         limit=a.min_electric_kw, note=f"running below the minimum {a.min_electric_kw:g} kW")
    r, c = a.thermal_resistance_k_per_kw, a.thermal_capacitance_kwh_per_k
    decay = np.exp(-case.dt_h / (r * c))
    gains = {}  # K per kW of electric power per zone, by mode
    if a.mode in ("heating", "both"):
        gains["heating"] = (1 - decay) * r * a.cop_heating / n
    if a.mode in ("cooling", "both"):
        gains["cooling"] = -(1 - decay) * r * a.cop_cooling / n
    outdoor = case.values(a.outdoor_temp_c)
    t0 = float(case.initial.get("temp_c", a.initial_temp_c))
    state = case.rows.state
    simulated, expected, mismatch = np.zeros(case.n), np.zeros(case.n), np.zeros(case.n)
    prev_state = prev_sim = t0
    for t in range(case.n):
        free = decay * prev_state + (1 - decay) * outdoor[t]
        options = {mode: free + g * p[t] for mode, g in gains.items()}
        if case.rows.present[t] and np.isfinite(state[t]):
            mode = min(options, key=lambda m: abs(options[m] - state[t]))
            mismatch[t] = abs(options[mode] - state[t])
        else:
            mode = next(iter(options))
            mismatch[t] = 0.0 if not case.rows.present[t] else np.nan
        expected[t] = options[mode]
        simulated[t] = decay * prev_sim + (1 - decay) * outdoor[t] + gains[mode] * p[t]
        if mismatch[t] > tolerances.TEMP_K:
            # the split of the power between heating and cooling is unknowable: go on from the state column
            simulated[t] = state[t]
        prev_state = state[t] if case.rows.present[t] else simulated[t]
        prev_sim = simulated[t]
    out += case.over("thermal_mode", mismatch, "K", value=state, limit=expected,
                     note=f"state vs {' or '.join(gains)} with the whole power from the previous state")
    lo, hi = comfort_band(case)
    out += case.over("comfort_low", lo - simulated, "K", value=simulated, limit=lo,
                     note="temperature from the power below the comfort band")
    out += case.over("comfort_high", simulated - hi, "K", value=simulated, limit=hi,
                     note="temperature from the power above the comfort band")
    return out
