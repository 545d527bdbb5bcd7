"""The flexibility envelope: per congestion point and ISP, how far the portfolio can move its net power up and
down from its schedule, and what a kWh of that move costs.

For each block of ISPs (``block_h``, the whole day by default) and direction, the day is solved again with a
limit window asking the point's net power to move by more than its devices' rated power in every ISP of the
block; the soft limit makes the solver go as far as the devices allow, all ISPs of the block at once. The move is
the difference to the reference solve (the schedule) per ISP; its cost per kWh is the block's extra cost (without
limit penalties) over the energy moved. A block of one ISP gives the most each ISP can do alone; a longer block
what it can hold across the block (less for storage, which must recharge)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from flexopt.data.dso_limits import LimitWindow
from flexopt.runs.intraday import StartStates
from flexopt.uftp import resolve

COLUMNS = ("congestion_point", "entity", "block", "interval_start", "interval_end", "scheduled_kw", "up_kw",
           "down_kw", "max_kw", "min_kw", "up_cost_eur_per_kwh", "down_cost_eur_per_kwh")


def reach_kw(loaded, point_id: str) -> float:
    """More than the point's flexible devices can move it: their rated power, both ways, plus 1 kW."""
    return 1.0 + 2 * sum(asset.rated_power_kw * asset.count for site, asset in loaded.portfolio.assets()
                         if site.congestion_point == point_id and asset.flexible)


def envelope(loaded, store: Path, day: dt.date, *, block_h: float = 24.0, mip_gap: float = 0.001,
             time_limit_s: float | None = None, points: list[str] | None = None) -> pd.DataFrame:
    from flexopt.runs.horizon import plan_horizon

    horizon = plan_horizon(loaded, "day-ahead", day, None, None).horizon
    start = horizon.index[0].to_pydatetime()
    where = resolve.Situation(start.astimezone(loaded.portfolio.tz), day,
                              len(horizon.index) * loaded.portfolio.portfolio.resolution_min / 60, StartStates())
    penalty, dt_h = loaded.portfolio.penalties.limit_eur_per_kwh, loaded.portfolio.portfolio.resolution_min / 60
    inputs = resolve.inputs_for(loaded, where, "day-ahead")
    reference = resolve.solve(loaded, store, where, [], mip_gap=mip_gap, time_limit_s=time_limit_s, inputs=inputs)
    base_cost = resolve.economic_cost(reference, penalty, dt_h)
    uftp = loaded.portfolio.uftp
    ids = points or [cp.id for cp in loaded.portfolio.congestion_points]
    per_block = max(1, round(block_h / dt_h))
    frames = []
    for point_id in ids:
        p0 = resolve.point_net(reference, point_id)
        reach = reach_kw(loaded, point_id)
        up, down = np.zeros(len(p0)), np.zeros(len(p0))
        up_cost, down_cost = np.full(len(p0), np.nan), np.full(len(p0), np.nan)
        blocks = np.arange(len(p0)) // per_block
        for b in np.unique(blocks):
            idx = np.flatnonzero(blocks == b)
            for sign, moved, cost in ((1.0, up, up_cost), (-1.0, down, down_cost)):
                windows = [LimitWindow(point_id, p0.index[i], p0.index[i] + pd.Timedelta(hours=dt_h),
                                       float(p0.iloc[i]) - reach if sign < 0 else None,
                                       -(float(p0.iloc[i]) + reach) if sign > 0 else None) for i in idx]
                result = resolve.solve(loaded, store, where, windows, mip_gap=mip_gap, time_limit_s=time_limit_s,
                                       inputs=inputs)
                net = resolve.point_net(result, point_id)
                move = np.clip(sign * (net.iloc[idx].to_numpy() - p0.iloc[idx].to_numpy()), 0.0, None)
                moved[idx] = move
                energy = float(move.sum() * dt_h)
                extra = resolve.economic_cost(result, penalty, dt_h) - base_cost
                cost[idx] = extra / energy if energy > 1e-6 else np.nan
        frames.append(pd.DataFrame({
            "congestion_point": point_id, "entity": (uftp.entity_of(point_id) if uftp else None) or "",
            "block": blocks, "interval_start": p0.index, "interval_end": p0.index + pd.Timedelta(hours=dt_h),
            "scheduled_kw": p0.to_numpy(), "up_kw": up, "down_kw": down, "max_kw": p0.to_numpy() + up,
            "min_kw": p0.to_numpy() - down, "up_cost_eur_per_kwh": up_cost, "down_cost_eur_per_kwh": down_cost}))
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)] if frames else pd.DataFrame(columns=list(COLUMNS))
