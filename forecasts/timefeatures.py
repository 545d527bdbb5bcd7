"""Calendar arithmetic in local time: what "same time yesterday" means across DST, and calendar regressors."""

from __future__ import annotations

import numpy as np
import pandas as pd


def require_utc_index(index: pd.Index, what: str) -> None:
    """Raise on programmer errors: a non-datetime or tz-naive index cannot be placed in time."""
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(f"{what} must have a DatetimeIndex, got {type(index).__name__}")
    if index.tz is None:
        raise ValueError(f"{what} must be tz-aware (store UTC); got a naive DatetimeIndex")


def shift_local(index: pd.DatetimeIndex, days: int, tz: str) -> pd.DatetimeIndex:
    """The UTC instants with the same local wall-clock time ``days`` earlier.

    On DST days a wall time may not exist (NaT: the caller's lookup finds no value and falls back) or occur
    twice (the summer-time occurrence is used), so a 23- or 25-hour day still maps onto its neighbour.
    """
    if days == 0:
        return index
    if str(tz) == "UTC":
        return index - pd.Timedelta(days=days)
    local = index.tz_convert(tz).tz_localize(None) - pd.Timedelta(days=days)
    out = local.tz_localize(tz, ambiguous=np.ones(len(local), dtype=bool), nonexistent="NaT")
    return out.tz_convert("UTC")


def local_day_fraction(index: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Local time of day as a fraction of a day (0 at local midnight)."""
    local = index.tz_convert(tz)
    return (local.hour.to_numpy() * 60 + local.minute.to_numpy()) / 1440.0


def local_weekday(index: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Local day of week, Monday 0."""
    return index.tz_convert(tz).day_of_week.to_numpy()


def fourier_terms(index: pd.DatetimeIndex, tz: str, daily: int = 3, weekly: int = 2) -> pd.DataFrame:
    """Sine/cosine pairs of the local daily and weekly cycles."""
    day = local_day_fraction(index, tz)
    week = (local_weekday(index, tz) + day) / 7.0
    cols = {}
    for k in range(1, daily + 1):
        cols[f"day_sin{k}"] = np.sin(2 * np.pi * k * day)
        cols[f"day_cos{k}"] = np.cos(2 * np.pi * k * day)
    for k in range(1, weekly + 1):
        cols[f"week_sin{k}"] = np.sin(2 * np.pi * k * week)
        cols[f"week_cos{k}"] = np.cos(2 * np.pi * k * week)
    return pd.DataFrame(cols, index=index)


def local_midnights(start: pd.Timestamp, end: pd.Timestamp, tz: str) -> pd.DatetimeIndex:
    """Local midnights in [start, end], as UTC instants."""
    first = start.tz_convert(tz).normalize()
    days = pd.date_range(first, end.tz_convert(tz), freq="D")
    return days[days >= start].tz_convert("UTC")


def dst_transitions(start: pd.Timestamp, end: pd.Timestamp, tz: str) -> list[pd.Timestamp]:
    """Local dates in [start, end] on which the UTC offset of ``tz`` changes."""
    if str(tz) == "UTC" or end < start:
        return []
    days = pd.date_range(start.tz_convert(tz).normalize(), end.tz_convert(tz) + pd.Timedelta(days=1), freq="D")
    if len(days) < 2:
        return []
    offsets = (days.tz_localize(None) - days.tz_convert("UTC").tz_localize(None)).asi8
    changed = np.flatnonzero(offsets[1:] != offsets[:-1])
    return [days[i] for i in changed if start <= days[i + 1] and days[i] <= end]
