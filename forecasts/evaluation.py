"""Honest evaluation of the forecaster as shipped: per-model backtests and the automatically chosen model,
each over day-ahead origins, next to the naive baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flexopt.forecasts.api import BACKTEST_DAYS, backtest_series, day_ahead_data, forecast_series
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


def choice_study(history: pd.Series, kind: str, periods: dict[str, tuple[str, str]], local_tz: str = "UTC",
                 train_days: int = 28, backtest_days: int | None = None,
                 models: list[str] | None = None, exog_history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Does the combination lose against single models? Per period: MAE of the best naive baseline, of the best
    single model in hindsight, of the single model the backtest would pick, and of the combination.

    Every candidate forecasts every day once (day-ahead from local midnight, ``train_days`` of training); the
    choice at each day uses only the ``backtest_days`` days before it, by the same rule as ``forecast_series``
    (:func:`flexopt.forecasts.ensemble.choose`), so the figures are out of sample. ``exog_history``: regressors over
    the whole span (weather as it was forecast for each day), as for :func:`backtest_series`.
    """
    from flexopt.forecasts.ensemble import choose, members
    from flexopt.forecasts.selection import candidate_models, metrics_columns_for, run_windows

    backtest_days = BACKTEST_DAYS[kind] if backtest_days is None else backtest_days
    first = min(pd.Timestamp(a) for a, _ in periods.values()) - pd.Timedelta(days=backtest_days)
    last = max(pd.Timestamp(b) for _, b in periods.values())
    data, windows, origins = day_windows(history, kind, local_tz, first, last, train_days, exog_history)
    pool = candidate_models(kind, models, features=data.features)
    runs = {k: r for k, r in run_windows(data, pool, windows).items() if r.error is None and r.rows}
    actual = [data.y[w.target] for w in windows]
    errors = {name: [np.abs(f - a) for f, a in zip(r.forecasts, actual, strict=True)] for name, r in runs.items()}
    families = {name: r.model.family for name, r in runs.items()}
    rows = []
    for label, (a, b) in periods.items():
        days = [i for i, o in enumerate(origins) if pd.Timestamp(a, tz=local_tz) <= o <= pd.Timestamp(b, tz=local_tz)
                and i >= backtest_days]
        if not days:
            continue
        single = {name: float(np.nanmean(np.concatenate([e[i] for i in days]))) for name, e in errors.items()}
        picked, combined = [], []
        for i in days:
            past = [{"model": n, "family": families[n],
                     "mae": float(np.nanmean(np.concatenate(e[i - backtest_days : i])))} for n, e in errors.items()]
            table = metrics_columns_for(past)
            best_one = members(table, size=1)
            past_forecasts = {n: np.concatenate(runs[n].forecasts[i - backtest_days : i]) for n in runs}
            choice, _ = choose(table, np.concatenate(actual[i - backtest_days : i]), past_forecasts)
            forecasts = {n: runs[n].forecasts[i] for n in choice.weights}
            picked.append(errors[best_one.name][i])
            combined.append(np.abs(choice.combine(forecasts) - actual[i]))
        naive = min(v for n, v in single.items() if families[n] == "naive")
        best = min(single, key=single.get)
        rows.append({"period": label, "days": len(days), "best_naive_mae": naive, "best_single": best,
                     "best_single_mae": single[best], "picked_single_mae": float(np.nanmean(np.concatenate(picked))),
                     "combination_mae": float(np.nanmean(np.concatenate(combined)))})
    return pd.DataFrame(rows)


def day_windows(history: pd.Series, kind: str, local_tz: str, first: pd.Timestamp, last: pd.Timestamp,
                train_days: int, exog_history: pd.DataFrame | None = None):
    """The cleaned series with its features, and one day-ahead window per local midnight from first to last."""
    from flexopt.forecasts.base import Window

    data = day_ahead_data(history, _step(history), kind, local_tz, exog_history)
    windows, origins = [], []
    for origin in pd.date_range(first.tz_localize(local_tz) if first.tz is None else first,
                                last.tz_localize(local_tz) if last.tz is None else last, freq="D"):
        end = shift_local(pd.DatetimeIndex([origin]), -1, local_tz)[0]
        target = np.flatnonzero((data.grid >= origin) & (data.grid < end))
        cutoff = int(data.grid.searchsorted(origin))
        if len(target) and cutoff > train_days * data.steps_per_day:
            windows.append(Window(cutoff - train_days * data.steps_per_day, cutoff, target))
            origins.append(origin)
    return data, windows, origins
