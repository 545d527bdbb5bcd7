"""Baseline forecasts of uncontrolled load and PV, judged against naive baselines."""

from flexopt.forecasts.api import ForecastResult, backtest_series, forecast_series
from flexopt.forecasts.batch import forecast_many
from flexopt.forecasts.hygiene import HygieneReport, clean_history
from flexopt.forecasts.selection import all_models

__all__ = [
    "ForecastResult",
    "HygieneReport",
    "all_models",
    "backtest_series",
    "clean_history",
    "forecast_many",
    "forecast_series",
]
