"""Daily local-time patterns on a UTC horizon, from their definitions (written here again, not the model's).

* a daily window ``[start, end)`` (comfort) covers the intervals whose local start lies in it; ``end <= start``
  wraps over midnight;
* a session ``[arrival, departure)`` covers, on each local day, the intervals lying fully inside it on the wall
  clock: local start >= arrival and local end <= departure, the end read on the wall clock of the instant it
  happens (the last interval of a day ends at 24:00);
* a daily instant (a hot-water draw) falls in the interval holding it; on a fall-back day the first of the two
  occurrences counts, on a spring-forward day a time in the skipped hour happens when the clock jumps.

Calendars are in the site's time zone (the portfolio's when the site has none).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class LocalClock:
    """Wall clock of every interval of a horizon in one time zone."""

    tz: str
    index: pd.DatetimeIndex  # UTC starts
    ends: pd.DatetimeIndex  # UTC ends
    day: np.ndarray  # local date (ordinal) of each interval start
    start_min: np.ndarray  # local minutes after midnight of each start
    end_min: np.ndarray  # local minutes of each end, counted from the midnight that starts the interval's day

    @classmethod
    def of(cls, index: pd.DatetimeIndex, ends: pd.DatetimeIndex, tz: str) -> LocalClock:
        start, end = index.tz_convert(tz), ends.tz_convert(tz)
        day = np.array([d.toordinal() for d in start.date])
        end_day = np.array([d.toordinal() for d in end.date])
        return cls(tz, index, ends, day, _minutes(start), (end_day - day) * 1440 + _minutes(end))

    def days(self) -> list[dt.date]:
        """Every local date the horizon touches (the last interval's end included)."""
        first = self.day[0]
        last = self.ends[-1].tz_convert(self.tz).date().toordinal()
        return [dt.date.fromordinal(d) for d in range(first, last + 1)]


def _minutes(local: pd.DatetimeIndex) -> np.ndarray:
    return (local.hour * 60 + local.minute + local.second / 60.0).to_numpy(dtype=float)


def clock_minutes(t: dt.time) -> float:
    return t.hour * 60 + t.minute + t.second / 60.0


def window_mask(clock: LocalClock, start: dt.time, end: dt.time) -> np.ndarray:
    a, b = clock_minutes(start), clock_minutes(end)
    m = clock.start_min
    return (m >= a) & (m < b) if b > a else (m >= a) | (m < b)


def session_visits(clock: LocalClock, arrival: dt.time, departure: dt.time) -> list[tuple[dt.date, np.ndarray]]:
    """(local day, interval indices) of every occurrence of a daily session that has plugged intervals."""
    a, b = clock_minutes(arrival), clock_minutes(departure)
    inside = (clock.start_min >= a) & (clock.end_min <= b)
    out = []
    for d in np.unique(clock.day):
        idx = np.flatnonzero(inside & (clock.day == d))
        if idx.size:
            out.append((dt.date.fromordinal(int(d)), idx))
    return out


def local_instant(day: dt.date, at: dt.time, tz: str) -> pd.Timestamp:
    """The UTC instant of a local wall-clock time: first occurrence when repeated, after the jump when skipped."""
    naive = pd.Timestamp(dt.datetime.combine(day, at))
    return naive.tz_localize(ZoneInfo(tz), ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def instant_intervals(clock: LocalClock, at: dt.time) -> np.ndarray:
    """Index of the interval holding the daily instant ``at``, for every local day it falls inside the horizon."""
    hits = []
    for day in clock.days():
        when = local_instant(day, at, clock.tz)
        t = np.flatnonzero((clock.index <= when) & (clock.ends > when))
        if t.size:
            hits.append(int(t[0]))
    return np.array(sorted(set(hits)), dtype=int)


def day_ends(clock: LocalClock) -> np.ndarray:
    """Indices of the last interval of each local day: the intervals that end on the next local day (at its
    midnight, or where the clock skips midnight at the first instant it shows)."""
    return np.flatnonzero(clock.end_min >= 1440)


def hours_to_midnight(clock: LocalClock) -> float:
    """Elapsed hours from the horizon's end to the end of the local day its last interval belongs to."""
    last_day = dt.date.fromordinal(int(clock.day[-1]))
    next_day = local_instant(last_day + dt.timedelta(days=1), dt.time(), clock.tz)
    return max((next_day - clock.ends[-1]).total_seconds() / 3600.0, 0.0)
