"""Lagged-profile and calendar regressors, computed once per series on its whole grid.

Every lag is at least ``lead_days`` local days, chosen so that all values a target point looks at are known
at its forecast origin: the features can be computed once and sliced per origin without leakage.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexopt.forecasts.timefeatures import fourier_terms, local_weekday, shift_local

ENVELOPE_DAYS = 14
RECENT_DAYS = 7
WEEKS = 4


@dataclass
class SeriesData:
    """One cleaned series on a regular UTC grid that covers the history and the forecast index."""

    grid: pd.DatetimeIndex
    y: np.ndarray  # kW, NaN where unknown (gaps and everything from the forecast start on)
    features: pd.DataFrame  # indexed like grid
    step: pd.Timedelta
    tz: str
    kind: str
    lead_days: int

    @property
    def steps_per_day(self) -> int:
        return max(int(pd.Timedelta(days=1) / self.step), 1)


def lead_days_for(last_known: pd.Timestamp, index: pd.DatetimeIndex) -> int:
    """Smallest whole number of days such that ``t - lead`` is known for every target ``t``."""
    horizon = index.max() - last_known
    return max(1, math.ceil(horizon / pd.Timedelta(days=1)))


def build_features(
    grid: pd.DatetimeIndex,
    y: np.ndarray,
    tz: str,
    lead_days: int,
    kind: str,
    exog: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Same-time lags (yesterday, last week, 4-week and 7-day means, PV envelope), calendar terms, exog."""
    series = pd.Series(y, index=grid)
    week = 7 * math.ceil(lead_days / 7)
    daily_lags = range(lead_days, lead_days + (ENVELOPE_DAYS if kind == "pv" else RECENT_DAYS))
    weekly_lags = [week + 7 * k for k in range(WEEKS)]
    lags = {k: series.reindex(shift_local(grid, k, tz)).to_numpy() for k in sorted({*daily_lags, *weekly_lags})}
    daily = np.vstack([lags[k] for k in daily_lags])
    weekly = np.vstack([lags[k] for k in weekly_lags])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices (no history yet) give NaN
        cols = {
            "lag_day": lags[lead_days],
            "lag_week": lags[week],
            "mean_4w": np.nanmean(weekly, axis=0),
            "median_4w": np.nanmedian(weekly, axis=0),
            "mean_7d": np.nanmean(daily[:RECENT_DAYS], axis=0),
        }
        if kind == "pv":
            cols["envelope"] = np.nanmax(daily, axis=0)
            cols["mean_3d"] = np.nanmean(daily[:3], axis=0)
    frame = pd.DataFrame(cols, index=grid)
    frame["weekend"] = (local_weekday(grid, tz) >= 5).astype(float)
    frame = frame.join(fourier_terms(grid, tz, daily=3, weekly=2))
    if exog is not None:
        frame = frame.join(exog_features(exog.reindex(grid)))
    return frame


def exog_features(exog: pd.DataFrame) -> pd.DataFrame:
    """Optional regressors: outdoor temperature (with heating/cooling degrees) and a holiday flag."""
    out = pd.DataFrame(index=exog.index)
    if "temperature_c" in exog:
        temp = exog["temperature_c"].astype(float).interpolate(limit_direction="both")
        out["temperature_c"] = temp
        out["heating_deg"] = (15.0 - temp).clip(lower=0.0)
        out["cooling_deg"] = (temp - 22.0).clip(lower=0.0)
    if "holiday" in exog:
        out["holiday"] = exog["holiday"].astype(float).fillna(0.0)
    if "pv_forecast_kw" in exog:
        out["external"] = exog["pv_forecast_kw"].astype(float)
    return out

