"""The candidate models and their rolling-origin evaluation: every model forecasts every backtest window.

What is made of the scores (the combination of the best models, or the best naive baseline) is
:mod:`flexopt.forecasts.ensemble`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flexopt.forecasts.base import Model, Window
from flexopt.forecasts.features import SeriesData
from flexopt.forecasts.metrics import error_metrics
from flexopt.forecasts.naive import naive_models
from flexopt.forecasts.profiles import KernelMedian
from flexopt.forecasts.pv import (
    ExternalForecast,
    PvClearSky,
    PvPersistenceBlend,
    PvRecentMean,
    PvRegression,
    PvWeather,
)
from flexopt.forecasts.regression import LONG_WINDOW_FACTOR, FourierAR, ProfileRegression
from flexopt.forecasts.smoothing import HoltWinters

METRIC_COLUMNS = ["model", "family", "n", "n_origins", "mae", "rmse", "wape", "bias"]


def all_models() -> list[Model]:
    """Every model flexopt knows, naive baselines first."""
    return [
        *naive_models(),
        ProfileRegression("profile_median_reg", "median"),
        ProfileRegression("profile_median_reg_long", "median", window_factor=LONG_WINDOW_FACTOR),
        ProfileRegression("profile_ols_reg", "ols"),
        FourierAR("fourier_ar2", ar=2),
        KernelMedian(),
        HoltWinters("holt_winters_daily", season_days=1),
        HoltWinters("holt_winters_weekly", season_days=7),
        PvClearSky(),
        PvRegression(),
        PvRecentMean("pv_mean_7d", "mean_7d", 7.0),
        PvRecentMean("pv_mean_14d", "mean_14d", 14.0),
        PvPersistenceBlend(),
        PvWeather("pv_irradiance", "irradiance"),
        PvWeather("pv_cloud_clearsky", "cloud_cover"),
        ExternalForecast(),
    ]


def candidate_models(kind: str, names: list[str] | None = None, external: bool = False,
                     features: pd.DataFrame | None = None) -> list[Model]:
    """Models for ``kind`` (optionally only ``names``); the external PV model only when one is given, a model
    that needs a regressor (irradiance, cloud cover) only when ``features`` has it."""
    models = [m for m in all_models() if kind in m.kinds and (external or m.family != "external")
              and (features is None or all(c in features for c in m.needs))]
    if names is None:
        return [m for m in models if m.automatic]
    known = {m.name for m in all_models()}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown forecast model(s) {unknown}; known: {sorted(known)}")
    return [m for m in models if m.name in names]


@dataclass
class ModelRun:
    """Out-of-sample forecasts of one model over the backtest windows."""

    model: Model
    rows: list[np.ndarray] = field(default_factory=list)
    forecasts: list[np.ndarray] = field(default_factory=list)
    error: str | None = None

    def arrays(self, data: SeriesData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, actual, forecast) over all windows."""
        if not self.rows:
            return np.array([], dtype=int), np.array([]), np.array([])
        rows = np.concatenate(self.rows)
        return rows, data.y[rows], np.concatenate(self.forecasts)


def run_windows(data: SeriesData, models: list[Model], windows: list[Window]) -> dict[str, ModelRun]:
    """Forecast every window with every model; a model that fails is recorded, never raised."""
    runs = {}
    windows = sorted(windows, key=lambda w: w.cutoff)  # oldest first: a model may reuse what it estimated
    for model in models:
        run = ModelRun(model)
        for window in windows:
            try:
                point = postprocess(data, window.target, model.predict(data, window).point)
            except Exception as exc:  # a failing candidate must not stop the run; it is reported
                run.error = f"{type(exc).__name__}: {exc}"
                run.rows, run.forecasts = [], []
                break
            run.rows.append(window.target)
            run.forecasts.append(point)
        runs[model.name] = run
    return runs


def postprocess(data: SeriesData, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Physical limits: PV never negative and 0 at night; non-finite values become the nearest sane value."""
    values = np.asarray(values, dtype=float).copy()
    values[~np.isfinite(values)] = 0.0
    if data.kind == "pv":
        from flexopt.forecasts.pv import night_mask

        values = np.clip(values, 0.0, None)
        values[night_mask(data, rows)] = 0.0
    return values


def metrics_table(data: SeriesData, runs: dict[str, ModelRun], n_windows: int) -> pd.DataFrame:
    """One row per model that produced forecasts: MAE, RMSE, WAPE, bias (kW) over all windows."""
    records = []
    for name, run in runs.items():
        if run.error is not None or not run.rows:
            continue
        _, actual, forecast = run.arrays(data)
        records.append({"model": name, "family": run.model.family, "n_origins": n_windows,
                        **error_metrics(actual, forecast)})
    table = pd.DataFrame.from_records(records, columns=METRIC_COLUMNS)
    return table.sort_values("mae", na_position="last", kind="stable").reset_index(drop=True)


def metrics_columns_for(records: list[dict]) -> pd.DataFrame:
    """A backtest table (the columns of :func:`metrics_table`) from per-model records, sorted by MAE."""
    table = pd.DataFrame.from_records(records).reindex(columns=METRIC_COLUMNS)
    return table.sort_values("mae", na_position="last", kind="stable").reset_index(drop=True)
