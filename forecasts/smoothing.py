"""Holt-Winters exponential smoothing with an additive daily season (statsmodels ExponentialSmoothing)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from flexopt.forecasts.base import Model, Prediction, Window, level
from flexopt.forecasts.features import SeriesData


class HoltWinters(Model):
    """Level plus additive daily season on the UTC grid; gaps are interpolated before fitting.

    The season is a fixed number of steps, so across a DST change it is one hour off for a while: one
    reason the lag-based models usually win.
    """

    name = "holt_winters_daily"
    min_days = 3.0
    kinds = ("load",)
    fit_days = 14  # recent data dominate the smoothed state anyway; halves the cost of the fit


    def predict(self, data: SeriesData, window: Window) -> Prediction:
        start = max(window.train_start, window.cutoff - self.fit_days * data.steps_per_day)
        y = pd.Series(data.y[start : window.cutoff])
        y = y.interpolate(limit_direction="both")
        horizon = int(window.target.max()) - window.cutoff + 1
        if y.isna().any() or len(y) < 2 * data.steps_per_day + 10:
            flat = np.full(len(window.target), level(data, window))
            return Prediction(flat, np.array([]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ExponentialSmoothing(
                y.to_numpy(), seasonal="add", seasonal_periods=data.steps_per_day,
                initialization_method="heuristic",
            )
            fit = model.fit(use_brute=False)  # the brute-force start grid triples the cost, same optimum
        path = fit.forecast(horizon)
        return Prediction(np.asarray(path)[window.target - window.cutoff], np.asarray(fit.resid))
