"""What every forecasting model sees and returns, and the shared gap-filling rule for lagged features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flexopt.forecasts.features import SeriesData


@dataclass(frozen=True)
class Window:
    """One forecast origin: train on grid rows [train_start, cutoff), predict the ``target`` rows."""

    train_start: int
    cutoff: int
    target: np.ndarray


@dataclass
class Prediction:
    point: np.ndarray  # kW at the target rows
    train_residuals: np.ndarray  # actual minus fitted on training rows, a fallback for intervals


class Model:
    """A forecaster. ``family`` is "naive", "statistical" or "external"; ``min_days`` of history it needs."""

    name: str = "model"
    family: str = "statistical"
    min_days: float = 1.0
    kinds: tuple[str, ...] = ("load", "pv")
    needs: tuple[str, ...] = ()  # feature columns (regressors) without which the model is no candidate
    automatic: bool = True  # a candidate of the automatic choice; False: only when asked for by name

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        raise NotImplementedError


def train_rows(data: SeriesData, window: Window) -> np.ndarray:
    """Training rows with a known value."""
    rows = np.arange(window.train_start, window.cutoff)
    return rows[np.isfinite(data.y[rows])]


def profile(data: SeriesData, column: str, rows: np.ndarray, fallback: float) -> np.ndarray:
    """A lagged feature at ``rows`` with gaps filled from the 4-week mean, the 7-day mean, then ``fallback``."""
    values = filled(data, column)[rows].copy()
    values[~np.isfinite(values)] = fallback
    return values


def filled(data: SeriesData, name: str) -> np.ndarray:
    """A lagged feature on the whole grid with gaps filled from the 4-week then the 7-day mean (computed once
    per series: every backtest origin slices the same array)."""
    key = ("filled", name)
    if key not in data.cache:
        values = column(data, name).copy()
        for backup in ("mean_4w", "mean_7d"):
            missing = ~np.isfinite(values)
            if not missing.any():
                break
            values[missing] = column(data, backup)[missing]
        data.cache[key] = values
    return data.cache[key]


def column(data: SeriesData, name: str) -> np.ndarray:
    """A feature as a float array on the whole grid, made once per series (a pandas column lookup per backtest
    origin and model cost more than the median regressions' arithmetic)."""
    if name not in data.cache:
        data.cache[name] = data.features[name].to_numpy(dtype=float)
    return data.cache[name]


def level(data: SeriesData, window: Window) -> float:
    """Median of the known training values (0 when there are none): the last-resort forecast."""
    known = data.y[train_rows(data, window)]
    return float(np.median(known)) if len(known) else 0.0
