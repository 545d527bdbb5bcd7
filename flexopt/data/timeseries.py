"""Time-series loading in one place: files, timestamps and DST, resampling, units, gap reports.

Everything inside flexopt works on UTC interval starts at the portfolio resolution, in canonical
units (kW, EUR/kWh, degC). Local wall-clock files (with repeated or missing DST hours) are accepted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from flexopt.config.loader import display_path
from flexopt.config.portfolio import DataSource
from flexopt.config.quantities import UNIT_RANGES
from flexopt.data.files import (
    SeriesError,
    column_problem,
    out_of_range,
    parse_times,
    range_message,
    read_columns,
)

__all__ = ["SeriesError", "SeriesReport", "align", "day_index", "history_before", "horizon_index", "load_on_index",
           "read_source"]

# unit -> (canonical unit, factor to multiply by)
UNIT_CONVERSIONS: dict[str, tuple[str, float]] = {
    "W": ("kW", 1e-3),
    "kW": ("kW", 1.0),
    "MW": ("kW", 1e3),
    "EUR/MWh": ("EUR/kWh", 1e-3),
    "EUR/kWh": ("EUR/kWh", 1.0),
    "ct/kWh": ("EUR/kWh", 1e-2),
    "degC": ("degC", 1.0),
    "W/m2": ("W/m2", 1.0),
    "%": ("%", 1.0),
    "1": ("1", 1.0),
}


@dataclass
class SeriesReport:
    """What happened to a series on its way in: the user reads this, nothing is silently fixed."""

    source: str
    unit: str
    intervals: int
    file: str = ""  # as the user knows it, for messages
    missing: int = 0
    filled: int = 0
    duplicates: int = 0
    resampled: str = ""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.intervals} intervals"]
        if self.resampled:
            parts.append(self.resampled)
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate timestamps (kept the mean)")
        if self.missing:
            parts.append(f"{self.missing} missing, {self.filled} filled by interpolation")
        return f"{self.source}: " + ", ".join(parts + self.notes)


# --- calendar ---------------------------------------------------------------------------------


def day_index(day: dt.date, tz: str | ZoneInfo, resolution_min: int = 15) -> pd.DatetimeIndex:
    """UTC starts of every interval of one local day (92, 96 or 100 quarter-hours in Europe/Madrid)."""
    return horizon_index(day, day + dt.timedelta(days=1), tz, resolution_min)


def horizon_index(start: dt.date | dt.datetime, end: dt.date | dt.datetime, tz: str | ZoneInfo,
                  resolution_min: int = 15) -> pd.DatetimeIndex:
    """UTC interval starts from local ``start`` (inclusive) to local ``end`` (exclusive)."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    t0 = _local(start, zone)
    t1 = _local(end, zone)
    step = pd.Timedelta(minutes=resolution_min)
    if (t1 - t0) % step:  # a 30-minute DST shift (Australia/Lord_Howe) leaves a day of 23.5 or 24.5 hours
        length = (t1 - t0).total_seconds() / 3600
        raise SeriesError(f"from {t0} to {t1} ({zone.key}) is {length:g} h, which {resolution_min}-minute intervals "
                          "do not divide (a DST shift of part of an hour); set portfolio.resolution_min to one that "
                          "does, e.g. 30 or 15")
    return pd.date_range(t0, t1, freq=step, inclusive="left").tz_convert("UTC")


def _local(t: dt.date | dt.datetime, zone: ZoneInfo) -> pd.Timestamp:
    if not isinstance(t, dt.datetime):
        t = dt.datetime.combine(t, dt.time())
    ts = pd.Timestamp(t)
    return ts.tz_convert(zone) if ts.tzinfo else ts.tz_localize(zone, nonexistent="shift_forward")


def local_times(index: pd.DatetimeIndex, tz: str | ZoneInfo) -> pd.DatetimeIndex:
    return index.tz_convert(tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz))


def resolution_hours(index: pd.DatetimeIndex) -> float:
    if len(index) < 2:
        raise SeriesError("a horizon needs at least two intervals")
    return (index[1] - index[0]).total_seconds() / 3600.0


# --- reading files ----------------------------------------------------------------------------


def source_file_problem(src: DataSource) -> tuple[str, str] | None:
    """(field, one-line problem) when the file behind a data source is not there or lacks a column, naming the
    field to fix (``path``, ``time_column`` or ``column``); None when it can be read."""
    path = Path(src.path)
    try:
        found = path.exists()
    except OSError as exc:  # a name too long for the file system, a loop of links
        return "path", f"cannot use {str(path)[:200]}: {exc.strerror or exc}; check the path"
    if not found:
        return "path", f"file not found: {path}; check the path (relative paths are relative to the YAML file)"
    for key in ("time_column", "column"):
        problem = column_problem(path, [getattr(src, key)])
        if problem:  # a file that cannot be read at all is the path's problem, a missing column the column's
            return (key if f"no column {getattr(src, key)!r}" in problem else "path"), problem
    return None


def read_source(src: DataSource, name: str = "") -> tuple[pd.Series, SeriesReport]:
    """The whole series of a data source: UTC index, canonical unit, sorted, duplicates averaged. Every value
    is checked (finite, within the physical range of its unit) so that nothing bad reaches the solver."""
    path = Path(src.path)
    label = name or path.name
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, src.time_column, src.column, src.unit, src.timezone)
    except (OSError, ValueError):
        key = None
    try:
        series, report = _read_checked(*key) if key else _read_checked(str(path), 0, 0, src.time_column,
                                                                       src.column, src.unit, src.timezone)
    except SeriesError as exc:
        raise SeriesError(f"data source {label!r}: {exc}") from None
    report = dataclasses.replace(report, source=label, notes=list(report.notes))
    return series.rename(label).copy(), report


@lru_cache(maxsize=32)
def _read_checked(path: str, _mtime_ns: int, _size: int, time_column: str, column: str, unit: str,
                  timezone: str) -> tuple[pd.Series, SeriesReport]:
    """Read once per file version: validate, schedule and summary all ask for the same series."""
    p = Path(path)
    raw = read_columns(p, time_column, column)
    stamps = parse_times(raw, timezone, p, time_column)
    canonical, factor = UNIT_CONVERSIONS[unit]
    lo, hi = UNIT_RANGES[canonical]
    values = raw.values * factor
    outside = out_of_range(values, lo, hi)
    if outside.any():
        raise SeriesError(range_message(raw, outside, p, column, unit, canonical, lo, hi))
    if not np.isfinite(values).any():
        raise SeriesError(f"{p.name}, column {column!r}: every cell is empty; the file holds no values")
    series = pd.Series(values, index=stamps)
    report = SeriesReport(source=p.name, unit=canonical, intervals=len(series), file=display_path(p))
    if not series.index.is_monotonic_increasing:
        report.notes.append("rows sorted by time")
        series = series.sort_index(kind="stable")
    if series.index.has_duplicates:
        report.duplicates = int(series.index.duplicated().sum())
        series = series.groupby(level=0).mean()
    return series, report


# --- aligning to a horizon --------------------------------------------------------------------


def align(series: pd.Series, index: pd.DatetimeIndex, report: SeriesReport, *, max_fill_hours: float = 6.0,
          step: bool = True) -> pd.Series:
    """Values of ``series`` on ``index``: finer data averaged, coarser data held (``step``) or
    interpolated; gaps up to ``max_fill_hours`` interpolated and counted, longer gaps an error."""
    res = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=15)
    src_step = _typical_step(series)
    window = series.loc[index[0] - max(src_step, res) * 2: index[-1] + max(src_step, res) * 2].dropna()
    if window.empty:
        raise SeriesError(_outside(report, series, index))
    aligned = (index[0] - window.index[0]) % min(res, src_step) == pd.Timedelta(0)
    if src_step < res:
        report.resampled = f"averaged from {_fmt(src_step)} to {_fmt(res)}"
        out = window.resample(res, origin=index[0]).mean().reindex(index)
    elif step and not aligned:  # e.g. hourly data on :00 for a day starting at :45 UTC (Pacific/Chatham)
        report.resampled = f"averaged over the overlapping {_fmt(src_step)} source intervals (not on the interval grid)"
        out = _overlap_mean(window, index, res, src_step)
    elif src_step > res or not aligned:
        report.resampled = f"{'held' if step else 'interpolated'} from {_fmt(src_step)} to {_fmt(res)}"
        if step:
            out = window.reindex(window.index.union(index)).ffill(limit=int(src_step / res)).reindex(index)
            out[~_covered(window.index, index, src_step)] = float("nan")
        else:
            out = window.reindex(window.index.union(index)).interpolate("time", limit_area="inside").reindex(index)
    else:
        out = window.reindex(index)
    report.intervals = len(index)
    missing = out.isna()
    report.missing = int(missing.sum())
    if report.missing == len(index):
        raise SeriesError(_outside(report, series, index))
    if report.missing:
        longest = _longest_run(missing) * res
        if longest > pd.Timedelta(hours=max_fill_hours):
            raise SeriesError(
                f"data source {report.source!r}{_in_file(report)} has a gap of {_fmt(longest)} between {index[0]} "
                f"and {index[-1]} (more than {max_fill_hours:g} h cannot be filled safely); complete the file."
            )
        out = out.interpolate("linear", limit_direction="both")
        report.filled = report.missing
    return out.astype(float)


def _overlap_mean(window: pd.Series, index: pd.DatetimeIndex, res: pd.Timedelta,
                  src_step: pd.Timedelta) -> pd.Series:
    """Energy-preserving values for intervals that straddle source intervals: the time-weighted mean of the
    source values each interval overlaps (missing where less than half of it is covered by data)."""
    second = pd.Timedelta(seconds=1)
    starts = ((window.index - index[0]) / second).to_numpy(dtype=float)
    step_s, res_s = src_step / second, res / second
    ends = np.minimum(np.append(starts[1:], starts[-1] + step_s), starts + step_s)  # a source interval never
    values = window.to_numpy(dtype=float)                                          # reaches into a gap
    seconds = ends - starts
    cum_v, cum_c = np.cumsum(values * seconds), np.cumsum(seconds)
    x = np.column_stack([starts, ends]).ravel()
    fv = np.column_stack([cum_v - values * seconds, cum_v]).ravel()
    fc = np.column_stack([cum_c - seconds, cum_c]).ravel()
    q0 = ((index - index[0]) / second).to_numpy(dtype=float)
    q1 = q0 + res_s
    covered = np.interp(q1, x, fc) - np.interp(q0, x, fc)
    energy = np.interp(q1, x, fv) - np.interp(q0, x, fv)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(covered >= 0.5 * res_s, energy / covered, np.nan)
    return pd.Series(out, index=index)


def _in_file(report: SeriesReport) -> str:
    return f" ({report.file})" if report.file else ""


def _outside(report: SeriesReport, series: pd.Series, index: pd.DatetimeIndex) -> str:
    source = f"{report.source}"
    valid = series.dropna().index
    span = f"it covers {valid.min()} to {valid.max()}" if len(valid) else "it holds no values"
    return (f"data source {source!r}{_in_file(report)} has no values between {index[0]} and {index[-1]} (UTC); {span}. "
            "Choose a date inside that range or extend the file.")


def _covered(src_index: pd.DatetimeIndex, index: pd.DatetimeIndex, src_step: pd.Timedelta) -> pd.Series:
    """True where an interval lies inside a source interval that exists (missing hours stay missing)."""
    pos = src_index.searchsorted(index, side="right") - 1
    ok = pos >= 0
    starts = src_index[pos.clip(min=0)]
    return pd.Series(ok & ((index - starts) < src_step), index=index)


def _typical_step(series: pd.Series) -> pd.Timedelta:
    if len(series) < 2:
        return pd.Timedelta(hours=1)
    return pd.Series(series.index).diff().dropna().median()


def _longest_run(mask: pd.Series) -> int:
    best = run = 0
    for m in mask.to_numpy():
        run = run + 1 if m else 0
        best = max(best, run)
    return best


def _fmt(td: pd.Timedelta) -> str:
    minutes = td.total_seconds() / 60
    return f"{minutes / 60:g} h" if minutes >= 60 else f"{minutes:g} min"


MIN_HISTORY_DAYS = 1.0
"""The shortest history flexopt forecasts from (yesterday's profile); 28 days let the statistical models compete."""
MAX_HISTORY_AGE_DAYS = 7.0
"""The forecasting models are built for leads up to a week (same-time lags of one to five weeks)."""


def history_before(series: pd.Series, index: pd.DatetimeIndex, label: str, tz: str) -> pd.Series:
    """The part of a history series before the horizon, when it can forecast it; SeriesError otherwise (a
    forecast from nothing would silently be 0 kW)."""
    start = index[0]
    before = series[series.index < start]
    known = before.dropna()
    valid = series.dropna().index
    span = f"it covers {valid.min():%Y-%m-%d %H:%M} to {valid.max():%Y-%m-%d %H:%M} UTC" if len(valid) else \
        "it holds no values"
    day = start.tz_convert(tz).date()
    need = (f"a forecast of {day} needs at least {MIN_HISTORY_DAYS:g} day of history (28 days for the statistical "
            f"models) ending at most {MAX_HISTORY_AGE_DAYS:g} days before {day}")
    if known.empty:
        raise SeriesError(f"history data source {label!r} has no values before {day}; {span}. {need}: extend the "
                          "file or choose a day after its start")
    age = (start - known.index.max()) / pd.Timedelta(days=1)
    if age > MAX_HISTORY_AGE_DAYS:
        raise SeriesError(f"history data source {label!r} ends {age:.0f} days before {day}; {span}. {need}: extend "
                          "the file or choose a day inside its range")
    length = (known.index.max() - known.index.min()) / pd.Timedelta(days=1)
    if length < MIN_HISTORY_DAYS - 1e-9:
        raise SeriesError(f"history data source {label!r} holds only {length * 24:.1f} h before {day}; {span}. "
                          f"{need}: extend the file")
    return before


def load_on_index(src: DataSource, index: pd.DatetimeIndex, name: str = "", *, scale: float = 1.0,
                  step: bool | None = None) -> tuple[pd.Series, SeriesReport]:
    """Read a data source and align it to ``index``; interval values are held (energy-preserving),
    temperatures interpolated."""
    series, report = read_source(src, name)
    hold = step if step is not None else UNIT_CONVERSIONS[src.unit][0] != "degC"
    return align(series, index, report, step=hold) * scale, report
