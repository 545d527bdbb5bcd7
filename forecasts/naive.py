"""The naive baselines every forecaster is judged against: same time yesterday, last week, 4-week mean."""

from __future__ import annotations

from flexopt.forecasts.base import Model, Prediction, Window, level, profile, train_rows
from flexopt.forecasts.features import SeriesData


class NaiveModel(Model):
    """Copy a same-time lag; missing lags fall back to the 4-week mean, then the training median."""

    family = "naive"

    def __init__(self, name: str, column: str, min_days: float) -> None:
        self.name = name
        self.column = column
        self.min_days = min_days

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        fallback = level(data, window)
        rows = train_rows(data, window)
        fitted = profile(data, self.column, rows, fallback)
        return Prediction(profile(data, self.column, window.target, fallback), data.y[rows] - fitted)


def naive_models() -> list[Model]:
    return [
        NaiveModel("naive_yesterday", "lag_day", 1.0),
        NaiveModel("naive_last_week", "lag_week", 7.0),
        NaiveModel("naive_mean_4w", "mean_4w", 7.0),
    ]
