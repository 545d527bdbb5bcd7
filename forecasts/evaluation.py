"""Honest evaluation of the forecaster as shipped: per-model backtests and the automatically chosen model,
each over day-ahead origins, next to the naive baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flexopt.forecasts.api import backtest_series, forecast_series
from flexopt.forecasts.hygiene import clean_history
from flexopt.forecasts.metrics import coverage, error_metrics
from flexopt.forecasts.timefeatures import shift_local


def load_household_csv(path: str | Path) -> pd.DataFrame:
    """The example household (timestamp_utc, load_w, pv_w, pv_forecast_w) as kW columns on a UTC index."""
    frame = pd.read_csv(path)
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("timestamp_utc"), utc=True))
    return frame.rename(columns=lambda c: c.replace("_w", "_kw")) / 1000.0


def evaluate_chosen(
    history: pd.Series,
    origins: pd.DatetimeIndex,
    kind: str = "load",
    local_tz: str = "UTC",
    train_days: int = 28,
    **kwargs,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``forecast_series`` (with model choice) from each origin on the history before it.

    Scored against the cleaned history, as ``backtest_series`` is, so that the figures compare.
    Returns (summary row: MAE, RMSE, WAPE, bias, 10-90 % coverage; per-origin chosen model and MAE).
    """
    actual_all, point_all, lower_all, upper_all, rows = [], [], [], [], []
    step = _step(history)
    cleaned, _ = clean_history(history, step, local_tz, kind=kind)
    for origin in origins:
        end = shift_local(pd.DatetimeIndex([origin]), -1, local_tz)[0]
        index = pd.date_range(origin.tz_convert("UTC"), end, freq=step, inclusive="left")
        result = forecast_series(history[history.index < origin], index, kind, local_tz=local_tz,
                                 train_days=train_days, **kwargs)
        actual = cleaned.reindex(index).to_numpy(dtype=float)
        frame = result.frame
        actual_all.append(actual)
        point_all.append(frame["value"].to_numpy())
        lower_all.append(frame["lower"].to_numpy())
        upper_all.append(frame["upper"].to_numpy())
        rows.append({"origin": origin, "model": result.model,
                     "mae": error_metrics(actual, frame["value"].to_numpy())["mae"]})
    actual, point = np.concatenate(actual_all), np.concatenate(point_all)
    summary = {"model": "chosen (automatic)", "family": "selected", **error_metrics(actual, point),
               "coverage_10_90": coverage(actual, np.concatenate(lower_all), np.concatenate(upper_all))}
    return pd.DataFrame([summary]), pd.DataFrame(rows)


def _step(history: pd.Series) -> pd.Timedelta:
    return pd.Timedelta(int(np.median(np.diff(history.index.asi8))), unit=history.index.unit)


def household_load_evaluation(path: str | Path, start: str = "2025-01-30", end: str = "2025-02-26"):
    """The acceptance evaluation: day-ahead load forecasts from local midnights (Europe/Paris), 28-day
    training windows. Returns (table of every model and the chosen forecast, per-origin choices)."""
    tz = "Europe/Paris"
    load = load_household_csv(path)["load_kw"]
    origins = pd.date_range(start, end, freq="D", tz=tz)
    models = backtest_series(load, origins, "load", local_tz=tz, train_days=28)
    chosen, per_origin = evaluate_chosen(load, origins, "load", local_tz=tz, train_days=28)
    table = pd.concat([chosen, models], ignore_index=True)
    return table, per_origin
