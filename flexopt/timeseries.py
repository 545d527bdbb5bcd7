"""Time-series loading in one place: files, timestamps and DST, resampling, units, gap reports.

Everything inside flexopt works on UTC interval starts at the portfolio resolution, in canonical
units (kW, EUR/kWh, degC). Local wall-clock files (with repeated or missing DST hours) are accepted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from flexopt.portfolio import DataSource

# unit -> (canonical unit, factor to multiply by)
UNIT_CONVERSIONS: dict[str, tuple[str, float]] = {
    "W": ("kW", 1e-3),
    "kW": ("kW", 1.0),
    "MW": ("kW", 1e3),
    "EUR/MWh": ("EUR/kWh", 1e-3),
    "EUR/kWh": ("EUR/kWh", 1.0),
    "ct/kWh": ("EUR/kWh", 1e-2),
    "degC": ("degC", 1.0),
    "1": ("1", 1.0),
}


class SeriesError(ValueError):
    """A time series cannot serve the request; the message says which file and what to do."""


@dataclass
class SeriesReport:
    """What happened to a series on its way in: the user reads this, nothing is silently fixed."""

    source: str
    unit: str
    intervals: int
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
    return pd.date_range(t0, t1, freq=f"{resolution_min}min", inclusive="left").tz_convert("UTC")


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


def check_source_columns(src: DataSource) -> str | None:
    """A one-line problem with the file behind a data source, or None when it can be read."""
    path = Path(src.path)
    if not path.is_file():
        return f"file not found: {path}; check the path (relative paths are relative to the YAML file)"
    try:
        columns = _columns(path)
    except Exception as exc:
        return f"cannot read {path.name}: {exc}"
    missing = [c for c in (src.time_column, src.column) if c not in columns]
    if missing:
        return f"{path.name} has no column {', '.join(map(repr, missing))}; its columns are: {', '.join(columns)}"
    return None


def _columns(path: Path) -> list[str]:
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if path.suffix.lower() in (".csv", ".txt", ".gz"):
        return list(pd.read_csv(path, nrows=0).columns)
    raise ValueError("unknown file type; use .csv or .parquet")


@lru_cache(maxsize=64)
def _read_raw(path: str, mtime: float, time_column: str, column: str) -> pd.DataFrame:
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p, columns=[time_column, column])
    return pd.read_csv(p, usecols=[time_column, column])


def read_source(src: DataSource, name: str = "") -> tuple[pd.Series, SeriesReport]:
    """The whole series of a data source: UTC index, canonical unit, duplicates averaged."""
    path = Path(src.path)
    label = name or path.name
    problem = check_source_columns(src)
    if problem:
        raise SeriesError(f"data source {label!r}: {problem}")
    raw = _read_raw(str(path), path.stat().st_mtime, src.time_column, src.column)
    stamps = _parse_times(raw[src.time_column], src.timezone, label)
    values = pd.to_numeric(raw[src.column], errors="coerce").to_numpy(dtype=float)
    canonical, factor = UNIT_CONVERSIONS[src.unit]
    series = pd.Series(values * factor, index=stamps, name=label).sort_index(kind="stable")
    report = SeriesReport(source=label, unit=canonical, intervals=len(series))
    dup = series.index.duplicated(keep=False)
    if dup.any():
        report.duplicates = int(series.index.duplicated().sum())
        series = series.groupby(level=0).mean()
    return series, report


def _parse_times(col: pd.Series, timezone: str, label: str) -> pd.DatetimeIndex:
    text = col.astype(str)
    has_offset = text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True).all()
    try:
        if has_offset:
            return pd.DatetimeIndex(pd.to_datetime(text, utc=True, format="ISO8601"))
        naive = pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601"))
    except (ValueError, TypeError) as exc:
        raise SeriesError(f"data source {label!r}: timestamps cannot be parsed ({exc}); use ISO 8601") from None
    if timezone == "UTC":
        return naive.tz_localize("UTC")
    try:
        local = naive.tz_localize(timezone, ambiguous="infer", nonexistent="shift_forward")
    except Exception:
        local = naive.tz_localize(timezone, ambiguous=_first_is_dst(naive), nonexistent="shift_forward")
    return local.tz_convert("UTC")


def _first_is_dst(naive: pd.DatetimeIndex) -> list[bool]:
    """For a repeated wall-clock hour, the first occurrence is summer time (DST), the second is not."""
    seen: set[pd.Timestamp] = set()
    flags = []
    for ts in naive:
        flags.append(ts not in seen)
        seen.add(ts)
    return flags


# --- aligning to a horizon --------------------------------------------------------------------


def align(series: pd.Series, index: pd.DatetimeIndex, report: SeriesReport, *, max_fill_hours: float = 6.0,
          step: bool = True) -> pd.Series:
    """Values of ``series`` on ``index``: finer data averaged, coarser data held (``step``) or
    interpolated; gaps up to ``max_fill_hours`` interpolated and counted, longer gaps an error."""
    res = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=15)
    src_step = _typical_step(series)
    window = series.loc[index[0] - max(src_step, res) * 2: index[-1] + max(src_step, res) * 2].dropna()
    if window.empty:
        raise SeriesError(_outside(report.source, series, index))
    if src_step < res:
        report.resampled = f"averaged from {_fmt(src_step)} to {_fmt(res)}"
        out = window.resample(res, origin=index[0]).mean().reindex(index)
    elif src_step > res:
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
        raise SeriesError(_outside(report.source, series, index))
    if report.missing:
        longest = _longest_run(missing) * res
        if longest > pd.Timedelta(hours=max_fill_hours):
            raise SeriesError(
                f"data source {report.source!r} has a gap of {_fmt(longest)} between {index[0]} and {index[-1]} "
                f"(more than {max_fill_hours:g} h cannot be filled safely); complete the file."
            )
        out = out.interpolate("linear", limit_direction="both")
        report.filled = report.missing
    return out.astype(float)


def _outside(source: str, series: pd.Series, index: pd.DatetimeIndex) -> str:
    valid = series.dropna().index
    span = f"it covers {valid.min()} to {valid.max()}" if len(valid) else "it holds no values"
    return (f"data source {source!r} has no values between {index[0]} and {index[-1]} (UTC); {span}. "
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


def load_on_index(src: DataSource, index: pd.DatetimeIndex, name: str = "", *, scale: float = 1.0,
                  step: bool | None = None) -> tuple[pd.Series, SeriesReport]:
    """Read a data source and align it to ``index``; interval values are held (energy-preserving),
    temperatures interpolated."""
    series, report = read_source(src, name)
    hold = step if step is not None else UNIT_CONVERSIONS[src.unit][0] != "degC"
    return align(series, index, report, step=hold) * scale, report
