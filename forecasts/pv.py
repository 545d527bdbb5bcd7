"""PV forecasts from the series' own history: a clear-sky shape scaled by recent days, or a daytime
regression, or an external forecast; all never negative and zero at night."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flexopt.forecasts.base import Model, Prediction, Window, column, train_rows
from flexopt.forecasts.features import SeriesData
from flexopt.forecasts.regression import design, fit_linear, informative

NIGHT_SHARE = 0.01
"""A time of day is night when the 14-day envelope is below this share of its peak."""


def night_mask(data: SeriesData, rows: np.ndarray) -> np.ndarray:
    """Rows at which the recent history never produced: forced to 0 (unknown history is not night)."""
    env = column(data, "envelope")[rows]
    peak = np.nanmax(env) if np.isfinite(env).any() else 0.0
    return np.isfinite(env) & (env <= NIGHT_SHARE * peak)


def local_day_key(data: SeriesData, rows: np.ndarray) -> np.ndarray:
    return data.grid[rows].tz_convert(data.tz).normalize().tz_localize(None).asi8


class PvClearSky(Model):
    """Envelope (max of the same time over 14 days, a clear-sky proxy) scaled so that each day's energy
    equals the mean of the last 3 days. By name only (and the default without model choice): out of sample on
    two real arrays it was 4-10 % worse than the best naive baseline on average, and as a candidate it only
    diluted the combination."""

    name = "pv_clearsky_scaled"
    min_days = 3.0
    kinds = ("pv",)
    automatic = False

    def _shape(self, data: SeriesData, rows: np.ndarray) -> np.ndarray:
        env = np.nan_to_num(column(data, "envelope")[rows], nan=0.0)
        recent = np.nan_to_num(column(data, "mean_3d")[rows], nan=0.0)
        frame = pd.DataFrame({"day": local_day_key(data, rows), "env": env, "recent": recent})
        sums = frame.groupby("day")[["env", "recent"]].transform("sum")
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(sums["env"] > 0, sums["recent"] / sums["env"], 0.0)
        return env * np.clip(ratio, 0.0, 1.0)

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        rows = train_rows(data, window)
        return Prediction(self._shape(data, window.target), data.y[rows] - self._shape(data, rows))


class PvRegression(Model):
    """Median regression of daytime PV on the envelope, the 3-day mean and yesterday."""

    name = "pv_daytime_regression"
    min_days = 14.0
    kinds = ("pv",)
    lagged = ("envelope", "mean_3d", "lag_day")

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        rows = train_rows(data, window)
        rows = rows[~night_mask(data, rows)]
        point = np.zeros(len(window.target))
        if len(rows) < 10:
            return Prediction(point, np.array([]))
        x = design(data, rows, self.lagged, (), 0.0)
        keep = informative(x)
        params = fit_linear(x[:, keep], data.y[rows], "median")
        day = ~night_mask(data, window.target)
        point[day] = design(data, window.target[day], self.lagged, (), 0.0)[:, keep] @ params
        return Prediction(point, data.y[rows] - x[:, keep] @ params)


class ExternalForecast(Model):
    """An external PV forecast passed in as ``pv_forecast_kw``, used as it is (clipped at 0)."""

    name = "pv_external"
    family = "external"
    min_days = 0.0
    kinds = ("pv",)

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        external = column(data, "external")
        rows = train_rows(data, window)
        fitted = np.clip(np.nan_to_num(external[rows], nan=0.0), 0.0, None)
        point = np.clip(np.nan_to_num(external[window.target], nan=0.0), 0.0, None)
        return Prediction(point, data.y[rows] - fitted)


class PvRecentMean(Model):
    """Mean of the same time over recent days (7 or 14): climatology that follows the season. By name only:
    out of sample on two real arrays both were worse than the best naive baseline on average, and the choice
    did 0.6-2.9 points better without them (the 4-week naive mean and ``pv_yesterday_7d_blend`` carry the
    climatology)."""

    kinds = ("pv",)
    automatic = False

    def __init__(self, name: str, column: str, min_days: float) -> None:
        self.name = name
        self.column = column
        self.min_days = min_days

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        rows = train_rows(data, window)
        values = column(data, self.column)
        return Prediction(np.nan_to_num(values[window.target], nan=0.0), data.y[rows] - np.nan_to_num(values[rows]))


class PvPersistenceBlend(Model):
    """Half yesterday, half the mean of the last 7 days: persistence and climatology together. Without a weather
    forecast, the most robust PV forecast on the example household (between -6 % and +10 % against the best
    naive baseline over eight periods, where every single model had a season 20 % worse than it)."""

    name = "pv_yesterday_7d_blend"
    min_days = 7.0
    kinds = ("pv",)

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        rows = train_rows(data, window)

        def blend(at: np.ndarray) -> np.ndarray:
            recent = np.nan_to_num(column(data, "mean_7d")[at], nan=0.0)
            yesterday = column(data, "lag_day")[at]
            return 0.5 * np.where(np.isfinite(yesterday), yesterday, recent) + 0.5 * recent

        return Prediction(blend(window.target), data.y[rows] - blend(rows))


class PvWeather(Model):
    """PV of this array from a weather forecast, fitted on its own history (median regression, daytime rows).

    ``pv_irradiance``: PV ~ irradiance + irradiance x relative envelope + envelope, where the envelope (the
    highest output at that time over 14 days) carries the array's orientation and shading.
    ``pv_cloud_clearsky``: PV ~ envelope x clear-sky index + envelope, the clear-sky index from cloud cover by
    Kasten and Czeplak (1 - 0.75 (cover/100)^3.4): the clear-sky shape times the forecast clearness.
    """

    min_days = 7.0
    kinds = ("pv",)

    def __init__(self, name: str, regressor: str) -> None:
        self.name = name
        self.needs = (regressor,)

    def _design(self, data: SeriesData, rows: np.ndarray, peak: float) -> np.ndarray:
        env = np.nan_to_num(column(data, "envelope")[rows], nan=0.0)
        if self.needs[0] == "irradiance":
            irr = np.nan_to_num(column(data, "irradiance")[rows], nan=0.0) / 1000.0
            return np.column_stack([np.ones(len(rows)), irr, irr * env / max(peak, 1e-9), env])
        cover = np.nan_to_num(column(data, "cloud_cover")[rows], nan=50.0) / 100.0
        return np.column_stack([np.ones(len(rows)), env * (1.0 - 0.75 * cover**3.4), env])

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        rows = train_rows(data, window)
        rows = rows[~night_mask(data, rows)]
        point = np.zeros(len(window.target))
        if len(rows) < 10:
            return Prediction(point, np.array([]))
        peak = float(np.nanmax(column(data, "envelope")[rows], initial=0.0))
        x = self._design(data, rows, peak)
        keep = informative(x)
        params = fit_linear(x[:, keep], data.y[rows], "median")
        day = ~night_mask(data, window.target)
        point[day] = self._design(data, window.target[day], peak)[:, keep] @ params
        return Prediction(point, data.y[rows] - x[:, keep] @ params)
