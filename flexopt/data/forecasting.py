"""Connects the scheduler's inputs to :mod:`flexopt.forecasts` for series given as history.

Kept apart so that a run with only forecast series never imports statsmodels.
"""

from __future__ import annotations

import pandas as pd


def default_forecaster(name: str, history: pd.Series, index: pd.DatetimeIndex, *, local_tz: str = "UTC",
                       kind: str = "load") -> tuple[pd.Series, str]:
    """Day-ahead forecast of ``history`` on ``index`` with automatic model choice; returns values and
    a note naming the model (and any warnings) for the run record."""
    from flexopt.forecasts import forecast_series

    result = forecast_series(history, index, kind=kind, name=name, local_tz=local_tz)
    note = result.model
    if result.warnings:
        note += " (" + "; ".join(result.warnings) + ")"
    return result.frame["value"], note
