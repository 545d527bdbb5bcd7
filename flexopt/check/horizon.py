"""The run's horizon, rebuilt from run.json, and whether it is the horizon its kind and date promise.

A run covers at least the rest of its local day: a day-ahead run starts at its local midnight and covers that day
exactly (92, 96 or 100 quarter-hours on DST days) unless run.json records ``requested_h``; an intraday run starts
inside its day. Either may run past midnight, but never beyond what run.json says was asked for
(``requested_end_utc``, or the day's end when that is later). Runs written before rolling horizons end at their
day's end. Intervals are ``resolution_min`` long, UTC, tz-aware.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from flexopt.check.breaches import Breach
from flexopt.check.run_folder import CheckInputError, RunFolder


@dataclass(frozen=True)
class RunHorizon:
    index: pd.DatetimeIndex  # UTC interval starts
    resolution: pd.Timedelta
    tz: str  # the run's (portfolio's) time zone

    @property
    def n(self) -> int:
        return len(self.index)

    @property
    def ends(self) -> pd.DatetimeIndex:
        return self.index + self.resolution

    @property
    def dt_h(self) -> float:
        return self.resolution.total_seconds() / 3600.0


def run_horizon(folder: RunFolder) -> RunHorizon:
    h = folder.run["horizon"]
    where = folder.path / "run.json"
    try:
        start, end = pd.Timestamp(h["start_utc"]), pd.Timestamp(h["end_utc"])
        resolution = pd.Timedelta(minutes=int(h["resolution_min"]))
        int(h["intervals"])
        ZoneInfo(folder.timezone)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckInputError(f"{where}: horizon or timezone unreadable ({exc})") from None
    if start.tzinfo is None or end.tzinfo is None:
        raise CheckInputError(f"{where}: horizon start_utc and end_utc need a UTC offset")
    if resolution <= pd.Timedelta(0) or end <= start + resolution:
        raise CheckInputError(f"{where}: the horizon must hold at least two intervals of a positive length")
    index = pd.date_range(start.tz_convert("UTC"), end.tz_convert("UTC"), freq=resolution, inclusive="left")
    return RunHorizon(index, resolution, folder.timezone)


def horizon_breaches(folder: RunFolder, horizon: RunHorizon) -> list[Breach]:
    """The horizon against run.json's own count, the local day of the run, and every row's interval_end."""
    out: list[Breach] = []
    h = folder.run["horizon"]
    end_utc = pd.Timestamp(h["end_utc"]).tz_convert("UTC")
    if horizon.index[-1] + horizon.resolution != end_utc:
        out.append(_breach(f"end_utc {end_utc} is not a whole number of intervals after start_utc", 1.0))
    if int(h["intervals"]) != horizon.n:
        out.append(_breach(f"run.json says {h['intervals']} intervals, start_utc..end_utc holds {horizon.n}",
                           abs(int(h["intervals"]) - horizon.n)))
    try:
        day = dt.date.fromisoformat(str(folder.run.get("date")))
    except ValueError:
        out.append(_breach(f"run.json date {folder.run.get('date')!r} is not a date", 1.0))
        day = None
    if day is not None:
        day_start, day_end = _local_midnight(day, horizon.tz), _local_midnight(day + dt.timedelta(days=1), horizon.tz)
        expected = int((day_end - day_start) / horizon.resolution)
        latest = _latest_end(h, day_end)
        if end_utc < day_end:
            out.append(_breach(f"the horizon ends {end_utc}, before the end of the local day {day} ({day_end})",
                               1.0))
        elif end_utc > latest:
            out.append(_breach(f"the horizon ends {end_utc}, after {latest}: later than run.json says was asked for",
                               1.0))
        if folder.kind == "day-ahead":
            if horizon.index[0] != day_start:
                out.append(_breach(f"a day-ahead run starts {horizon.index[0]}, not at local midnight {day_start}",
                                   1.0))
            if h.get("requested_h") is None and horizon.n != expected:
                out.append(_breach(f"a day-ahead run of {day} has {expected} intervals, this one {horizon.n}",
                                   abs(expected - horizon.n)))
        elif not day_start <= horizon.index[0] < day_end:
            out.append(_breach(f"an intraday run of {day} starts {horizon.index[0]}, outside that local day", 1.0))
    for name, frame in (("schedule.parquet", folder.schedule), ("sites.parquet", folder.sites)):
        wrong = frame["interval_end"] != frame["interval_start"] + horizon.resolution
        if wrong.any():
            first = frame.loc[wrong, "interval_start"].iloc[0]
            t = horizon.index.get_indexer([first])[0]
            out.append(Breach("horizon", int(t) if t >= 0 else None, float(wrong.sum()), "rows",
                              note=f"{name}: {int(wrong.sum())} rows whose interval_end is not interval_start + "
                                   f"{horizon.resolution} (first at {first})"))
    return out


def _latest_end(h: dict, day_end: pd.Timestamp) -> pd.Timestamp:
    """The latest end the run may have: what it asked for (or its day's end, when later); runs written before
    rolling horizons recorded nothing and end at the day's end."""
    try:
        return max(pd.Timestamp(h["requested_end_utc"]).tz_convert("UTC"), day_end)
    except (KeyError, TypeError, ValueError):
        return day_end


def _local_midnight(day: dt.date, tz: str) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.combine(day, dt.time())).tz_localize(ZoneInfo(tz)).tz_convert("UTC")


def _breach(note: str, amount: float) -> Breach:
    return Breach("horizon", None, float(amount), "", note=note)


def positions(horizon: RunHorizon, starts: pd.Series) -> np.ndarray:
    """Interval index of each timestamp (-1 where it is not an interval start of the horizon)."""
    return horizon.index.get_indexer(pd.DatetimeIndex(starts))
