"""Daily local-time patterns (sessions, comfort windows, draws) laid onto a UTC horizon, DST included."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from flexopt.data.inputs import Horizon


def minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def local_days(horizon: Horizon) -> np.ndarray:
    """Local calendar day of each interval start, as an integer day number."""
    def compute() -> np.ndarray:
        loc = horizon.local
        return (loc.normalize().tz_localize(None) - np.datetime64("1970-01-01")).days.to_numpy()
    return horizon.remember("local_days", compute)


def day_ends(horizon: Horizon) -> np.ndarray:
    """Indices of the last interval of each local day inside the horizon: its end lies on the next local day
    (midnight, or the first instant of a day whose midnight the clock skips). A day's terminal conditions hold
    there, wherever the horizon itself ends."""
    ends = horizon.ends.tz_convert(horizon.tz).tz_localize(None).normalize()
    return np.flatnonzero(horizon.local.tz_localize(None).normalize() != ends)


def hours_to_next_midnight(horizon: Horizon) -> float:
    """Elapsed hours from the horizon's end to the next local midnight (0 when it ends at one; DST-safe)."""
    last_start = horizon.local[-1]
    midnight = pd.Timestamp(dt.datetime.combine(last_start.date() + dt.timedelta(days=1), dt.time())).tz_localize(
        ZoneInfo(horizon.tz), ambiguous=True, nonexistent="shift_forward")
    return max((midnight - horizon.ends[-1]).total_seconds() / 3600.0, 0.0)


def start_end_minutes(horizon: Horizon) -> tuple[np.ndarray, np.ndarray]:
    """Local minutes since midnight of each interval start and end (end of the last interval of a day = 1440)."""
    start = horizon.local_minutes()
    end = start + round(horizon.dt_h * 60)
    return start, end


def window_mask(horizon: Horizon, start_local: dt.time, end_local: dt.time) -> np.ndarray:
    """Intervals whose start lies in the daily window [start, end); end <= start wraps over midnight."""
    m = horizon.local_minutes()
    a, b = minutes(start_local), minutes(end_local)
    if b > a:
        return (m >= a) & (m < b)
    return (m >= a) | (m < b)


def daily_occurrences(horizon: Horizon, start_local: dt.time, end_local: dt.time) -> list[np.ndarray]:
    """Per local day, the interval indices fully inside [start, end) of that day (start < end, same day)."""
    return list(horizon.remember(("daily_occurrences", start_local, end_local),
                                 lambda: tuple(_daily_occurrences(horizon, start_local, end_local))))


def _daily_occurrences(horizon: Horizon, start_local: dt.time, end_local: dt.time) -> list[np.ndarray]:
    s, e = start_end_minutes(horizon)
    days = local_days(horizon)
    a, b = minutes(start_local), minutes(end_local)
    inside = (s >= a) & (e <= b) & (e > s)
    out = []
    for d in np.unique(days):
        idx = np.flatnonzero(inside & (days == d))
        if idx.size:
            out.append(idx)
    return out


def instants(horizon: Horizon, at_local: dt.time) -> np.ndarray:
    """Indices of the intervals containing the daily instant ``at_local`` (one per local day at most). On a DST
    fall-back day the first of the two occurrences counts; on a spring-forward day a time the clock skips happens
    when it jumps (02:30 becomes 03:00)."""
    return horizon.remember(("instants", at_local), lambda: _instants(horizon, at_local))


def _instants(horizon: Horizon, at_local: dt.time) -> np.ndarray:
    zone = ZoneInfo(horizon.tz)
    hits = []
    for ordinal in np.unique(local_days(horizon)):
        day = dt.date(1970, 1, 1) + dt.timedelta(days=int(ordinal))
        when = pd.Timestamp(dt.datetime.combine(day, at_local)).tz_localize(
            zone, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
        t = np.flatnonzero((horizon.index <= when) & (horizon.ends > when))
        if t.size:
            hits.append(int(t[0]))
    return np.array(hits, dtype=int)
