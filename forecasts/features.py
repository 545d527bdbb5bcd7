"""Lagged-profile and calendar regressors, computed once per series on its whole grid.

Every lag is at least ``lead_days`` local days, chosen so that all values a target point looks at are known
at its forecast origin: the features can be computed once and sliced per origin without leakage.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flexopt.forecasts.timefeatures import fourier_terms, local_weekday, shift_local

ENVELOPE_DAYS = 14
HEATING_BASE_C = 15.0
COOLING_BASE_C = 22.0
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
    cache: dict = field(default_factory=dict, repr=False)  # feature arrays, see forecasts.base.column

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
    daily_lags = list(range(lead_days, lead_days + (ENVELOPE_DAYS if kind == "pv" else RECENT_DAYS)))
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
            "median_7d": np.nanmedian(daily[:RECENT_DAYS], axis=0),
            "kernel_median": kernel_median(np.vstack([daily[:RECENT_DAYS], weekly]),
                                           [k > lead_days for k in [*daily_lags[:RECENT_DAYS], *weekly_lags]], grid),
        }
        if kind == "pv":
            cols["envelope"] = np.nanmax(daily, axis=0)
            cols["mean_3d"] = np.nanmean(daily[:3], axis=0)
            cols["mean_14d"] = np.nanmean(daily, axis=0)
    frame = pd.DataFrame(cols, index=grid)
    frame["mean_24h"] = trailing_day_mean(series, grid, lead_days)
    frame["weekend"] = (local_weekday(grid, tz) >= 5).astype(float)
    frame = frame.join(fourier_terms(grid, tz, daily=3, weekly=2))
    if exog is not None:
        frame = frame.join(exog_features(exog.reindex(grid)))
    return frame


def trailing_day_mean(series: pd.Series, grid: pd.DatetimeIndex, lead_days: int) -> np.ndarray:
    """Mean of the 24 hours that end ``lead_days`` before each point: the recent level (a cold spell, a
    holiday at home), known at the origin."""
    step = (grid[1] - grid[0]) if len(grid) > 1 else pd.Timedelta(hours=1)
    per_day = max(1, round(pd.Timedelta(days=1) / step))
    mean = series.rolling(per_day, min_periods=per_day // 2).mean().to_numpy()
    shift = lead_days * per_day - 1
    out = np.full(len(grid), np.nan)
    if shift < len(grid):
        out[shift + 1 :] = mean[: len(grid) - shift - 1]
    return out


def kernel_median(lagged: np.ndarray, later_ok: list[bool], grid: pd.DatetimeIndex) -> np.ndarray:
    """Median of every lagged value within +-30 min of the same time (at least one step either side).

    A household's load at one quarter-hour is mostly noise (a kettle, a shower); the median of the 30-55 nearby
    values from recent days and same weekdays estimates its conditional median, which is what minimises MAE.
    Later neighbours come only from lags longer than the lead (``later_ok``): the shortest lag's next value
    may be the first value of the day being forecast.
    """
    step = (grid[1] - grid[0]) if len(grid) > 1 else pd.Timedelta(hours=1)
    width = max(1, round(pd.Timedelta(minutes=30) / step))
    stack = [lagged]
    for shift in range(1, width + 1):
        for sign in (-1, 1):
            moved = np.full_like(lagged, np.nan)
            if sign < 0:
                moved[:, shift:] = lagged[:, :-shift]
            else:
                moved[:, :-shift] = lagged[:, shift:]
                moved[~np.asarray(later_ok)] = np.nan
            stack.append(moved)
    return np.nanmedian(np.vstack(stack), axis=0)


def exog_features(exog: pd.DataFrame) -> pd.DataFrame:
    """Regressors: outdoor temperature with heating/cooling degrees (below 15 / above 22 degC, the usual
    balance points of a dwelling; the regressions fit the slopes), irradiance, cloud cover, holiday flag, an
    external PV forecast."""
    out = pd.DataFrame(index=exog.index)
    if "temperature_c" in exog:
        temp = exog["temperature_c"].astype(float).interpolate(limit_area="inside")
        out["temperature_c"] = temp
        out["heating_deg"] = (HEATING_BASE_C - temp).clip(lower=0.0)
        out["cooling_deg"] = (temp - COOLING_BASE_C).clip(lower=0.0)
        day = max(1, round(pd.Timedelta(days=1) / ((exog.index[1] - exog.index[0]) if len(exog) > 1
                                                    else pd.Timedelta(hours=1))))
        out["heating_deg_24h"] = out["heating_deg"].rolling(day, min_periods=1).mean()
    if "irradiance_w_per_m2" in exog:
        out["irradiance"] = exog["irradiance_w_per_m2"].astype(float).clip(lower=0.0)
    if "cloud_cover_pct" in exog:
        out["cloud_cover"] = exog["cloud_cover_pct"].astype(float).clip(0.0, 100.0)
    if "holiday" in exog:
        out["holiday"] = exog["holiday"].astype(float).fillna(0.0)
    if "pv_forecast_kw" in exog:
        out["external"] = exog["pv_forecast_kw"].astype(float)
    return out
