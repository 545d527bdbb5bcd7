"""Re-solving the portfolio from the next interval, as an intraday run would, with extra limit windows: the
MILP behind every offer price and the flexibility envelope.

The start states are those ``flexopt schedule intraday`` would use (telemetry, else the stored schedule in force,
else the configuration) and the orders in force are binding, so an offer is priced on top of what the
portfolio is committed to. Nothing is written: these are what-ifs."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flexopt.config.loader import LoadedPortfolio
from flexopt.data.dso_limits import LimitWindow
from flexopt.data.inputs import Inputs
from flexopt.runs.horizon import DEFAULT_INTRADAY_H, MAX_HORIZON_H, plan_horizon
from flexopt.runs.intraday import StartStates, first_interval, start_states
from flexopt.runs.runner import ordered_windows
from flexopt.scheduling.problem import ScheduleResult, schedule
from flexopt.solver.options import SolveOptions
from flexopt.telemetry import ENV_VAR, TelemetryError, open_db, resolve_url


@dataclass
class Situation:
    """Where a what-if starts: first interval (local), its day, the horizon and the start states."""

    start: dt.datetime
    day: dt.date
    horizon_h: float
    states: StartStates


def intraday_start(loaded: LoadedPortfolio, now: dt.datetime) -> dt.datetime:
    info = loaded.portfolio.portfolio
    return first_interval(None, info.timezone, info.resolution_min, now)


def horizon_to(start: dt.datetime, until_utc: dt.datetime | None, resolution_min: int) -> float:
    """Hours from ``start`` covering ``until_utc`` (at least the intraday default, at most a week)."""
    if until_utc is None:
        return DEFAULT_INTRADAY_H
    step_h = resolution_min / 60
    hours = math.ceil((until_utc - start).total_seconds() / 3600 / step_h) * step_h
    return min(max(DEFAULT_INTRADAY_H, hours), MAX_HORIZON_H)


def open_telemetry(db: str | None, store: Path):
    """The telemetry database intraday would read (``db``, $FLEXOPT_DB, else the store's file when it exists)."""
    import os

    if not db and not os.environ.get(ENV_VAR, "").strip():
        default = Path(resolve_url(None, store).database or "")
        if not default.is_file():
            return None
    try:
        return open_db(resolve_url(db, store))
    except TelemetryError:
        return None


def situation(loaded: LoadedPortfolio, store: Path, now: dt.datetime, until_utc: dt.datetime | None,
              db: str | None) -> Situation:
    start = intraday_start(loaded, now)
    info = loaded.portfolio.portfolio
    database = open_telemetry(db, store)
    try:
        states = start_states(loaded, store, start.date(), start, db=database,
                              max_age=dt.timedelta(minutes=2 * info.resolution_min),
                              no_telemetry="no telemetry database")
    finally:
        if database is not None:
            database.close()
    return Situation(start, start.date(), horizon_to(start, until_utc, info.resolution_min), states)


def inputs_for(loaded: LoadedPortfolio, where: Situation, kind: str = "intraday") -> Inputs:
    """The inputs of the what-ifs from ``where``: read (and forecast) once, shared by all of them."""
    return Inputs(loaded, plan_horizon(loaded, kind, where.day, where.start, where.horizon_h).horizon)


def solve(loaded: LoadedPortfolio, store: Path, where: Situation, extra: list[LimitWindow], *,
          mip_gap: float, time_limit_s: float | None, inputs: Inputs | None = None) -> ScheduleResult:
    """The schedule from ``where`` with the orders in force and ``extra`` windows."""
    inputs = inputs or inputs_for(loaded, where)
    inputs.limit_windows = [*ordered_windows(loaded, store), *extra]
    options = SolveOptions(mip_gap=mip_gap, time_limit_s=time_limit_s)
    return schedule(loaded, inputs, options, initial_state=where.states.values or None)


def point_net(result: ScheduleResult, point_id: str) -> pd.Series:
    """Net power (kW, load convention) of a congestion point per interval start (UTC)."""
    rows = result.sites[(result.sites["level"] == "congestion_point") & (result.sites["id"] == point_id)]
    return pd.Series(rows["net_kw"].to_numpy(), index=pd.DatetimeIndex(rows["interval_start"]).tz_convert("UTC"))


def economic_cost(result: ScheduleResult, penalty_eur_per_kwh: float, dt_h: float) -> float:
    """The objective without the penalties of limit overflow: what serving the portfolio costs (energy, peaks,
    comfort, degradation), so that an unreachable limit is not priced as if its penalty were paid."""
    objective = float(result.kpis["solver"]["objective"])
    sites = result.sites
    over = 0.0
    for column, sign in (("import_limit_kw", 1.0), ("export_limit_kw", -1.0)):
        limit = sites[column].to_numpy(dtype=float)
        excess = sign * sites["net_kw"].to_numpy(dtype=float) - limit
        over += float(np.nansum(np.clip(np.where(np.isnan(limit), 0.0, excess), 0.0, None)))
    return objective - penalty_eur_per_kwh * over * dt_h
