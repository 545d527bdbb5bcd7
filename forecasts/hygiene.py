"""Input hygiene for forecast histories: the one place where bad meter data is found, fixed and reported.

Every finding is counted in a :class:`HygieneReport` so that a forecast run can say what it did to the data;
nothing here raises on bad values, only on programmer errors (a naive index, a non-series input).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flexopt.forecasts.timefeatures import dst_transitions, require_utc_index

MAX_INTERPOLATED_GAP = pd.Timedelta(hours=2)
"""Gaps up to this length are filled linearly; longer ones stay missing (the models skip them)."""

FLAT_RUN = {"load": pd.Timedelta(hours=12), "pv": pd.Timedelta(hours=4)}
"""Identical consecutive readings this long are treated as a stuck meter (PV: non-zero values only)."""

OUTLIER_SPREAD = 3.0
"""Gross-error fence: beyond the 1st/99th percentile by this many times their distance. Loose on purpose."""


@dataclass
class HygieneReport:
    """What :func:`clean_history` found and did; ``messages()`` renders it for humans."""

    freq: pd.Timedelta
    source_freq: pd.Timedelta | None = None
    n_input: int = 0
    n_non_numeric: int = 0
    n_duplicates: int = 0
    n_missing: int = 0
    longest_gap: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(0))
    n_interpolated: int = 0
    n_outliers: int = 0
    n_flat: int = 0
    n_negative_clipped: int = 0
    n_night_filled: int = 0
    dst_transitions: list[pd.Timestamp] = field(default_factory=list)
    span_days: float = 0.0
    n_valid: int = 0

    def messages(self) -> list[str]:
        """One sentence per non-trivial finding."""
        out = []
        if self.n_input == 0 or self.n_valid == 0:
            out.append(f"history has no usable values ({self.n_input} input points)")
        if self.source_freq is not None and self.source_freq != self.freq:
            out.append(f"history resampled from {_td(self.source_freq)} to {_td(self.freq)}")
        if self.n_non_numeric:
            out.append(f"{self.n_non_numeric} non-numeric or infinite values treated as missing")
        if self.n_duplicates:
            out.append(f"{self.n_duplicates} duplicate timestamps averaged")
        if self.n_outliers:
            out.append(f"{self.n_outliers} outliers removed (gross-error fence)")
        if self.n_flat:
            out.append(f"{self.n_flat} points of flat-lined (stuck) meter readings removed")
        if self.n_negative_clipped:
            out.append(f"{self.n_negative_clipped} negative PV values clipped to 0")
        if self.n_night_filled:
            out.append(f"{self.n_night_filled} missing night-time PV values set to 0")
        if self.n_interpolated:
            out.append(f"{self.n_interpolated} points in gaps up to {_td(MAX_INTERPOLATED_GAP)} interpolated")
        if self.n_missing:
            out.append(
                f"{self.n_missing} points still missing after cleaning (longest gap {_td(self.longest_gap)})"
            )
        if self.dst_transitions:
            days = ", ".join(t.strftime("%Y-%m-%d") for t in self.dst_transitions)
            out.append(f"history crosses DST transitions on {days} (calendar terms use local time)")
        return out


def _td(delta: pd.Timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"


def infer_step(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The usual spacing of an index (median of positive differences), None with fewer than two points."""
    if len(index) < 2:
        return None
    diffs = np.diff(index.asi8)
    diffs = diffs[diffs > 0]
    if len(diffs) == 0:
        return None
    return pd.Timedelta(int(np.median(diffs)), unit=index.unit)


def clean_history(
    series: pd.Series, freq: str | pd.Timedelta, local_tz: str = "UTC", *, kind: str = "load",
    until: pd.Timestamp | None = None,
) -> tuple[pd.Series, HygieneReport]:
    """Return ``series`` on a regular UTC grid at ``freq`` with bad values removed, plus what was done.

    Duplicates are averaged, the resolution is changed to ``freq`` (mean when finer, repeated when coarser),
    gross outliers and stuck-meter runs become missing, short gaps are interpolated; for PV, negatives are
    clipped and missing night values set to 0. Remaining gaps stay NaN. ``until`` is the forecast start: the
    grid runs through it, and a PV grid is extended to it (a PV meter that reports nothing at night ends its
    history in the evening; without the night zeros after it "yesterday" would silently become the day before).
    """
    if not isinstance(series, pd.Series):
        raise TypeError(f"history must be a pandas Series, got {type(series).__name__}")
    require_utc_index(series.index, "history")
    step = pd.Timedelta(freq)
    report = HygieneReport(freq=step, n_input=len(series))
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    bad = ~np.isfinite(values.to_numpy()) & series.notna().to_numpy()
    report.n_non_numeric = int(bad.sum())
    values = values.where(np.isfinite(values))
    values.index = series.index.tz_convert("UTC")
    values = values.sort_index()
    report.n_duplicates = int(values.index.duplicated().sum())
    if report.n_duplicates:
        values = values.groupby(level=0).mean()
    report.source_freq = infer_step(values.index)
    values = _to_grid(values, step, report.source_freq, anchor=until)
    if len(values) == 0:
        return values, report
    if kind == "pv" and until is not None and values.index[-1] + step < until:
        values = values.reindex(pd.date_range(values.index[0], until, freq=step, inclusive="left"))
    if kind == "pv":
        report.n_negative_clipped = int((values < 0).sum())
        values = values.clip(lower=0.0)
    report.n_outliers = _mask(values, _outliers(values))
    report.n_flat = _mask(values, _flat_runs(values, step, kind))
    if kind == "pv":
        night = _pv_night_gaps(values, local_tz)
        report.n_night_filled = int(night.sum())
        values[night] = 0.0
    before = int(values.isna().sum())
    limit = max(int(MAX_INTERPOLATED_GAP / step), 0)
    values = _interpolate_short(values, limit)
    report.n_interpolated = before - int(values.isna().sum())
    report.n_missing = int(values.isna().sum())
    report.longest_gap = _longest_gap(values) * step
    report.n_valid = int(values.notna().sum())
    report.span_days = (values.index[-1] - values.index[0] + step) / pd.Timedelta(days=1)
    report.dst_transitions = dst_transitions(values.index[0], values.index[-1], local_tz)
    return values, report


def _to_grid(values: pd.Series, step: pd.Timedelta, source: pd.Timedelta | None,
             anchor: pd.Timestamp | None = None) -> pd.Series:
    """Put the values on a regular grid at ``step``: mean when the source is finer, repeat when coarser. The
    grid runs through ``anchor`` (the forecast start) when given, so a 2-hour grid is not off by an hour."""
    values = values.dropna()
    if values.empty:
        return pd.Series(dtype="float64", index=pd.DatetimeIndex([], tz="UTC"))
    if source is None or source <= step:
        binned = values.groupby(_floor(values.index, step, anchor)).mean()
        grid = pd.date_range(binned.index[0], binned.index[-1], freq=step)
        return binned.reindex(grid)
    coarse = values.groupby(values.index.floor(source)).mean()
    grid = pd.date_range(coarse.index[0], coarse.index[-1] + source - step, freq=step)
    return pd.Series(coarse.reindex(grid.floor(source)).to_numpy(), index=grid)


def _floor(index: pd.DatetimeIndex, step: pd.Timedelta, anchor: pd.Timestamp | None) -> pd.DatetimeIndex:
    """``index`` floored to multiples of ``step`` counted from ``anchor`` (from the epoch without one)."""
    if anchor is None:
        return index.floor(step)
    anchor = pd.Timestamp(anchor).tz_convert("UTC")
    return anchor + ((index - anchor) // step) * step


def _mask(values: pd.Series, mask: np.ndarray) -> int:
    values[mask] = np.nan
    return int(mask.sum())


def _outliers(values: pd.Series) -> np.ndarray:
    """Gross errors only: points far outside the bulk of the distribution (spikes of a faulty meter)."""
    arr = values.to_numpy()
    finite = arr[np.isfinite(arr)]
    if len(finite) < 20:
        return np.zeros(len(arr), dtype=bool)
    low, high = np.quantile(finite, [0.01, 0.99])
    spread = max(high - low, 1e-9)
    with np.errstate(invalid="ignore"):
        return (arr > high + OUTLIER_SPREAD * spread) | (arr < low - OUTLIER_SPREAD * spread)


def _flat_runs(values: pd.Series, step: pd.Timedelta, kind: str) -> np.ndarray:
    """Runs of identical readings at least as long as ``FLAT_RUN[kind]`` (PV zeros are nights, not faults)."""
    arr = values.to_numpy()
    min_len = max(int(FLAT_RUN.get(kind, FLAT_RUN["load"]) / step), 2)
    starts, lengths = _runs(arr)
    mask = np.zeros(len(arr), dtype=bool)
    for start, length in zip(starts, lengths, strict=True):
        if length >= min_len and np.isfinite(arr[start]) and not (kind == "pv" and arr[start] == 0.0):
            mask[start : start + length] = True
    return mask


def _runs(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start positions and lengths of runs of equal consecutive values (NaN never equals anything)."""
    if len(arr) == 0:
        return np.array([], dtype=int), np.array([], dtype=int)
    change = np.ones(len(arr), dtype=bool)
    change[1:] = arr[1:] != arr[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, len(arr)))
    return starts, lengths


def _pv_night_gaps(values: pd.Series, local_tz: str) -> np.ndarray:
    """Missing PV points of a local day before its first or after its last clearly positive reading."""
    arr = values.to_numpy()
    finite = arr[np.isfinite(arr)]
    if len(finite) == 0:
        return np.zeros(len(arr), dtype=bool)
    threshold = 0.01 * float(np.quantile(finite, 0.99))
    day = values.index.tz_convert(local_tz).normalize().tz_localize(None).asi8
    with np.errstate(invalid="ignore"):
        producing = arr > threshold
    pos = np.arange(len(arr))
    frame = pd.DataFrame({"day": day, "pos": np.where(producing, pos, np.nan)})
    first = frame.groupby("day")["pos"].transform("min").to_numpy()
    last = frame.groupby("day")["pos"].transform("max").to_numpy()
    outside = np.isfinite(first) & ((pos < first) | (pos > last))
    return outside & np.isnan(arr)


def _interpolate_short(values: pd.Series, limit: int) -> pd.Series:
    """Linearly fill interior gaps of at most ``limit`` points; longer gaps stay missing."""
    if limit <= 0 or not values.isna().any():
        return values
    arr = values.to_numpy().copy()
    starts, lengths = _runs(np.isnan(arr).astype(np.int8))
    filled = values.interpolate(method="linear", limit_area="inside").to_numpy()
    for start, length in zip(starts, lengths, strict=True):
        if np.isnan(arr[start]) and length <= limit:
            arr[start : start + length] = filled[start : start + length]
    return pd.Series(arr, index=values.index)


def _longest_gap(values: pd.Series) -> int:
    starts, lengths = _runs(values.isna().to_numpy().astype(np.int8))
    gaps = [length for start, length in zip(starts, lengths, strict=True) if np.isnan(values.iat[start])]
    return max(gaps, default=0)
