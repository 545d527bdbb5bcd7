"""A smoothed same-time profile: the median of nearby values on recent days and the same weekdays."""

from __future__ import annotations

import numpy as np

from flexopt.forecasts.base import Model, Prediction, Window, level, profile, train_rows
from flexopt.forecasts.features import SeriesData


class KernelMedian(Model):
    """``kernel_median`` as the forecast: robust to the spikes that make yesterday's profile a poor guess."""

    name = "profile_kernel_median"
    min_days = 7.0
    kinds = ("load",)

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        fallback = level(data, window)
        rows = train_rows(data, window)
        fitted = profile(data, "kernel_median", rows, fallback)
        return Prediction(profile(data, "kernel_median", window.target, fallback), data.y[rows] - np.asarray(fitted))
