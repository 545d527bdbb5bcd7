"""Connects the scheduler's inputs to :mod:`flexopt.forecasts` for series given as history.

Kept apart so that a run with only forecast series never imports statsmodels.
"""

from __future__ import annotations

import pandas as pd


def default_forecaster(name: str, history: pd.Series, index: pd.DatetimeIndex, *, local_tz: str = "UTC",
                       kind: str = "load", regressors: pd.DataFrame | None = None, country: str | None = None,
                       quantiles: tuple[float, ...] = ()) -> tuple[pd.DataFrame, str]:
    """Day-ahead forecast of ``history`` on ``index`` with automatic model choice.

    ``regressors`` (weather, UTC index, past and forecast together) are split at the horizon's start. Returns
    the frame (``value``, ``lower``, ``upper`` and a ``q<level>`` column per quantile) and a note naming the
    model and every warning (a regressor left out, a fallback) for the run record.
    """
    from flexopt.forecasts import forecast_series

    past = future = None
    if regressors is not None and len(regressors.columns):
        past = regressors[regressors.index < index[0]]
        future = regressors[regressors.index >= index[0]]
    result = forecast_series(history, index, kind=kind, name=name, local_tz=local_tz, exog_history=past,
                             exog_future=future, country=country or None, quantiles=quantiles)
    note = result.model
    if result.warnings:
        note += " (" + "; ".join(result.warnings) + ")"
    return result.frame, note
