"""Entry points: forecast one series (with automatic model choice) and backtest models over given origins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from flexopt.forecasts import regressors
from flexopt.forecasts.base import Model, Window
from flexopt.forecasts.ensemble import Choice, choose
from flexopt.forecasts.features import SeriesData, build_features
from flexopt.forecasts.hygiene import HygieneReport, clean_history, infer_step
from flexopt.forecasts.intervals import residual_offsets
from flexopt.forecasts.regression import LONG_WINDOW_FACTOR
from flexopt.forecasts.selection import (
    METRIC_COLUMNS,
    all_models,
    candidate_models,
    metrics_table,
    postprocess,
    run_windows,
)
from flexopt.forecasts.timefeatures import local_day_fraction, require_utc_index, shift_local

DEFAULT_MODEL = {"load": "profile_median_reg", "pv": "pv_daytime_regression"}
SHORT_HISTORY_MODELS = {"load": ("naive_mean_4w", "naive_yesterday"),
                        "pv": ("pv_yesterday_7d_blend", "naive_yesterday")}
"""Without model choice and with too little history for the default: the first of these the history allows."""
LAG_DAYS = 35  # the longest same-time lag (4 weeks after a lead of up to a week)
MIN_BACKTEST_WINDOWS = 3
BACKTEST_DAYS = {"load": 14, "pv": 28}
"""Rolling origins the model choice is made on. PV: 28, because its best model changes with the weather of the
month and a fortnight is too few days to tell (out of sample on two real arrays over 3.6 years, 28 instead of 14
days brought the automatic forecast 1.5-8 points closer to the best model in hindsight, with and without
irradiance); the PV models are cheap. Load: 14 (28 gained 0.1-0.7 points on the households tried, for twice
the cost)."""


@dataclass
class ForecastResult:
    """A point forecast with a 10-90 % band, the model that made it and why."""

    frame: pd.DataFrame  # indexed by the requested UTC index: value, lower, upper (kW)
    model: str
    backtest: pd.DataFrame
    warnings: list[str]
    hygiene: HygieneReport | None
    name: str = ""
    kind: str = "load"
    unit: str = "kW"
    details: dict = field(default_factory=dict)

    def to_long(self) -> pd.DataFrame:
        """Rows of interval_start_utc, series, model, value, lower, upper, unit: the export format."""
        out = self.frame.reset_index(names="interval_start_utc")
        out.insert(1, "series", self.name)
        out.insert(2, "model", self.model)
        out["unit"] = self.unit
        return out


def forecast_series(
    history: pd.Series,
    index: pd.DatetimeIndex,
    kind: Literal["load", "pv"] = "load",
    *,
    name: str = "",
    exog_history: pd.DataFrame | None = None,
    exog_future: pd.DataFrame | None = None,
    local_tz: str = "UTC",
    country: str | None = None,
    select: bool = True,
    models: list[str] | None = None,
    train_days: int = 28,
    backtest_days: int | None = None,
    quantiles: tuple[float, ...] = (),
) -> ForecastResult:
    """Forecast ``history`` (kW, tz-aware) at ``index`` (tz-aware interval starts).

    With ``select`` every candidate is backtested on the ``backtest_days`` most recent comparable days (default
    per kind: ``BACKTEST_DAYS``) and the forecast is the combination of the best few (``forecasts.ensemble``),
    or the best naive baseline where nothing beats it. ``exog_history``/``exog_future`` hold weather regressors
    (``temperature_c``, ``irradiance_w_per_m2``, ``cloud_cover_pct``) and ``pv_forecast_kw``; ``country`` adds its
    public holidays. ``quantiles`` adds a ``q<level>`` column per level (e.g. 0.95) to the frame. Bad or short
    history, and regressors missing for the day, never raise: the run falls back and says so in ``warnings``.
    """
    index = _check_index(index, kind)
    require_utc_index(history.index, "history")
    backtest_days = BACKTEST_DAYS[kind] if backtest_days is None else backtest_days
    step = infer_step(index) or infer_step(history.index) or pd.Timedelta(hours=1)
    notes: list[str] = []
    history = history.sort_index()
    late = history.index >= index[0]
    if late.any():
        notes.append(f"{int(late.sum())} history points at or after the forecast start were ignored")
        history = history[~late]
    keep_days = LONG_WINDOW_FACTOR * train_days + backtest_days + LAG_DAYS + 1
    history = history[history.index >= index[0] - pd.Timedelta(days=keep_days)]
    cleaned, report = clean_history(history, step, local_tz, kind=kind, until=index[0])
    notes += report.messages()
    external = _external_mode(kind, exog_history, exog_future)
    exog = regressors.join(exog_history, exog_future if exog_future is not None else None)
    data, cutoff, target = _prepare(cleaned, index, step, local_tz, kind, exog, country, train_days, notes)
    if external == "future-only":
        notes.append("external PV forecast used as given: no history of it to backtest")
        models = ["pv_external"]
        select = False
    pool = candidate_models(kind, models, external=external is not None, features=data.features)
    result = _forecast(data, cutoff, target, pool, select, train_days, backtest_days, notes, tuple(quantiles))
    frame = pd.DataFrame(result.pop("bands"), index=index)
    return ForecastResult(frame, result["model"], result["table"], notes, report, name, kind, details=result)


def backtest_series(
    history: pd.Series,
    origins: pd.DatetimeIndex | list[pd.Timestamp],
    kind: Literal["load", "pv"] = "load",
    models: list[str] | None = None,
    local_tz: str = "UTC",
    train_days: int = 28,
    *,
    exog_history: pd.DataFrame | None = None,
    country: str | None = None,
) -> pd.DataFrame:
    """MAE, RMSE, WAPE and bias (kW) per model over day-ahead forecasts from each origin.

    Each origin (tz-aware, normally a local midnight) forecasts the following local day from the history
    before it, trained on ``train_days`` days. Models lacking history at the first origin are left out.
    ``exog_history`` holds the regressors over the whole span (for weather: what was forecast for each day).
    """
    origins = pd.DatetimeIndex(origins)
    require_utc_index(origins, "origins")
    require_utc_index(history.index, "history")
    step = infer_step(history.index) or pd.Timedelta(hours=1)
    has_external = exog_history is not None and "pv_forecast_kw" in exog_history
    data = day_ahead_data(history, step, kind, local_tz, exog_history, country)
    features = data.features
    windows = []
    for origin in origins.sort_values():
        end = shift_local(pd.DatetimeIndex([origin]), -1, local_tz)[0]
        target = np.flatnonzero((data.grid >= origin) & (data.grid < end))
        cutoff = int(data.grid.searchsorted(origin))
        if len(target) and cutoff > 0:
            windows.append(Window(max(0, cutoff - train_days * data.steps_per_day), cutoff, target))
    if not windows:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    pool = candidate_models(kind, models, external=has_external, features=features)
    days = _history_days(data, windows[0].cutoff)
    pool = [m for m in pool if m.min_days <= days]
    return metrics_table(data, run_windows(data, pool, windows), len(windows))


def day_ahead_data(history: pd.Series, step: pd.Timedelta, kind: str, local_tz: str,
                   exog_history: pd.DataFrame | None = None, country: str | None = None) -> SeriesData:
    """A whole history cleaned, with its regressors (over the whole span) and day-ahead features, for backtests
    that slice it per origin (:func:`backtest_series`, :func:`flexopt.forecasts.evaluation.choice_study`)."""
    cleaned, _ = clean_history(history, step, local_tz, kind=kind)
    grid, y = cleaned.index, cleaned.to_numpy()
    exog = regressors.on_grid(regressors.join(exog_history, None), grid, len(grid), np.array([], dtype=int),
                              local_tz, country, len(grid), [], keep_partial=("pv_forecast_kw",))
    return SeriesData(grid, y, build_features(grid, y, local_tz, 1, kind, exog), step, local_tz, kind, 1)


def _check_index(index: pd.DatetimeIndex, kind: str) -> pd.DatetimeIndex:
    if kind not in ("load", "pv"):
        raise ValueError(f"kind must be 'load' or 'pv', got {kind!r}")
    require_utc_index(index, "index")
    if len(index) == 0:
        raise ValueError("index is empty: nothing to forecast")
    if index.has_duplicates or not index.is_monotonic_increasing:
        raise ValueError("index must be strictly increasing interval starts")
    return index.tz_convert("UTC")


def _external_mode(kind: str, exog_history: pd.DataFrame | None, exog_future: pd.DataFrame | None):
    """None, "backtested" (external forecast has history to compare) or "future-only"."""
    if kind != "pv" or exog_future is None or "pv_forecast_kw" not in exog_future:
        return None
    if exog_history is not None and exog_history.get("pv_forecast_kw", pd.Series()).notna().any():
        return "backtested"
    return "future-only"


def _prepare(cleaned, index, step, tz, kind, exog, country, train_days, notes):
    """The series on one grid from its first value to the end of ``index``, with features for ``lead``."""
    start = cleaned.index[0] if len(cleaned) else index[0]
    start = index[0] - int(np.ceil((index[0] - start) / step)) * step
    grid = pd.date_range(start, index[-1], freq=step)
    target = grid.get_indexer(index)
    if (target < 0).any():
        raise ValueError(f"index is not on a regular {step} grid")
    y = cleaned.reindex(grid).to_numpy()
    known = np.flatnonzero(np.isfinite(y))
    cutoff = int(known[-1]) + 1 if len(known) else 0
    lead = 1
    if len(known):
        while shift_local(index, lead, tz).max() > grid[cutoff - 1] and lead < 400:
            lead += 1
    per_day = max(int(pd.Timedelta(days=1) / step), 1)
    if len(known) and index[0] - grid[cutoff - 1] > pd.Timedelta(days=1):
        age = (index[0] - grid[cutoff - 1]) / pd.Timedelta(days=1)
        notes.append(f"history ends {age:.1f} days before the forecast start (stale): every same-time lag is at "
                     f"least {lead} days old")
    ex = regressors.on_grid(exog, grid, cutoff, target, tz, country, train_days * per_day, notes,
                            keep_partial=("pv_forecast_kw",))
    data = SeriesData(grid, y, build_features(grid, y, tz, lead, kind, ex), step, tz, kind, lead)
    return data, cutoff, target


def _history_days(data: SeriesData, cutoff: int) -> float:
    known = np.flatnonzero(np.isfinite(data.y[:cutoff]))
    return 0.0 if len(known) == 0 else (cutoff - known[0]) / data.steps_per_day


def _windows(data: SeriesData, cutoff: int, target: np.ndarray, n: int, train_days: int) -> list[Window]:
    """Up to ``n`` past copies of the forecast window (same local times, same lead), most recent first."""
    lead_steps = int(target[0]) - cutoff
    index = data.grid[target]
    out = []
    for k in range(1, 400):
        pos = data.grid.get_indexer(shift_local(index, k, data.tz).unique())
        pos = pos[pos >= 0]
        if len(pos) == 0:
            break
        if pos.max() >= cutoff:
            continue
        past_cutoff = int(pos[0]) - lead_steps
        if _history_days(data, past_cutoff) < 1.0:
            break
        out.append(Window(max(0, past_cutoff - train_days * data.steps_per_day), past_cutoff, pos))
        if len(out) == n:
            break
    return out


def _eligible(data: SeriesData, pool: list[Model], windows: list[Window], notes: list[str]):
    """Models with enough history for most windows, and the windows on which all of them can run."""
    days = [_history_days(data, w.cutoff) for w in windows]
    need = min(MIN_BACKTEST_WINDOWS, len(windows))
    usable = [m for m in pool if sum(d >= m.min_days for d in days) >= need] if windows else []
    for model in pool:
        if model not in usable:
            notes.append(f"history too short for {model.name} (needs {model.min_days:g} days of history "
                         f"before each backtest origin); not considered")
    floor = max((m.min_days for m in usable), default=0.0)
    return usable, [w for w, d in zip(windows, days, strict=True) if d >= floor]


def _forecast(data, cutoff, target, pool, select, train_days, backtest_days, notes, quantiles=()) -> dict:
    final = Window(max(0, cutoff - train_days * data.steps_per_day), cutoff, target)
    windows = _windows(data, cutoff, target, backtest_days, train_days)
    table = pd.DataFrame(columns=METRIC_COLUMNS)
    runs: dict = {}
    if select:
        usable, windows = _eligible(data, pool, windows, notes)
        runs = run_windows(data, usable, windows)
        notes += [f"model {k} failed in the backtest: {r.error}" for k, r in runs.items() if r.error]
        runs = {k: r for k, r in runs.items() if r.error is None and r.rows}
        table = metrics_table(data, runs, len(windows))
        choice, combined = _choose(data, runs, table)
        if choice is not None and choice.note:
            notes.append(choice.note)
        if combined is not None:
            row = {"model": choice.name, "family": "ensemble", "n_origins": len(windows), **combined}
            table = pd.concat([pd.DataFrame([row], columns=METRIC_COLUMNS), table], ignore_index=True)
    else:
        name = _default(data, pool, cutoff, notes)
        choice = None if name is None else Choice({name: 1.0})
        if name is not None:
            usable = [w for w in windows if _history_days(data, w.cutoff) >= _find(pool, name).min_days]
            runs = run_windows(data, [_find(pool, name)], usable)
    if choice is None:
        return _fallback(data, cutoff, target, notes, table, quantiles)
    points, train_residuals = {}, None
    for name in list(choice.weights):
        try:
            prediction = _find(pool, name).predict(data, final)
        except Exception as exc:  # never let one model crash a portfolio run
            notes.append(f"model {name} failed ({type(exc).__name__}: {exc}); left out")
            continue
        points[name] = postprocess(data, target, prediction.point)
        train_residuals = prediction.train_residuals if train_residuals is None else train_residuals
    if not points:
        return _fallback(data, cutoff, target, notes, table, quantiles)
    if len(points) < len(choice.weights):
        total = sum(choice.weights[m] for m in points)
        choice = Choice({m: choice.weights[m] / total for m in points},
                        method=choice.method if len(points) >= 3 else "mean")
    point = postprocess(data, target, choice.combine(points))
    residuals, hours = _residuals(data, runs, choice)
    if np.isfinite(residuals).sum() < 20:
        residuals = train_residuals
        hours = local_day_fraction(data.grid[final.cutoff - len(residuals) : final.cutoff], data.tz) * 24
        notes.append(f"prediction interval of {choice.name} from in-sample residuals (too few backtest errors)")
    wanted = (0.1, 0.9, *quantiles)
    offsets = residual_offsets(residuals, hours, local_day_fraction(data.grid[target], data.tz) * 24, wanted)
    return {"model": choice.name, "weights": choice.weights, "table": table,
            "bands": _bands(data, target, point, offsets, wanted)}


def _choose(data: SeriesData, runs: dict, table: pd.DataFrame):
    """The ensemble (or single model) from the backtest, and its backtest metrics (None for a single model)."""
    if not runs:
        return None, None
    actual = next(iter(runs.values())).arrays(data)[1]
    forecasts = {name: run.arrays(data)[2] for name, run in runs.items()}
    choice, combined = choose(table, actual, forecasts)
    return choice, (combined if choice is not None and len(choice.weights) > 1 else None)


def _find(pool: list[Model], name: str) -> Model:
    return next(m for m in pool + all_models() if m.name == name)


def _default(data: SeriesData, pool: list[Model], cutoff: int, notes: list[str]) -> str | None:
    """Without selection: the kind's default model, or the first short-history model the history allows."""
    days = _history_days(data, cutoff)
    wanted = pool[0] if len(pool) == 1 else next((m for m in pool if m.name == DEFAULT_MODEL[data.kind]), None)
    if wanted is not None and wanted.min_days <= days:
        return wanted.name
    for name in SHORT_HISTORY_MODELS[data.kind]:
        if days >= _find(pool, name).min_days:
            if wanted is not None:
                notes.append(f"history of {days:.1f} days too short for {wanted.name} "
                             f"(needs {wanted.min_days:g}); using {name}")
            return name
    return None


def _residuals(data: SeriesData, runs: dict, choice: Choice) -> tuple[np.ndarray, np.ndarray]:
    """Backtest errors (actual minus forecast) of the chosen combination, and their local hours."""
    if not all(name in runs and runs[name].rows for name in choice.weights):
        return np.array([]), np.array([])
    rows, actual, _ = runs[next(iter(choice.weights))].arrays(data)
    forecast = choice.combine({name: runs[name].arrays(data)[2] for name in choice.weights})
    return actual - forecast, local_day_fraction(data.grid[rows], data.tz) * 24


def _bands(data: SeriesData, target: np.ndarray, point: np.ndarray, offsets: np.ndarray, wanted: tuple):
    """value, lower (10 %), upper (90 %) and a ``q<level>`` column per further quantile; a quantile above the
    median is never below the point (nor one below it above it), and the physical limits apply to all."""
    def bound(q: float, offset: np.ndarray) -> np.ndarray:
        moved = np.maximum(point + offset, point) if q >= 0.5 else np.minimum(point + offset, point)
        return postprocess(data, target, moved)

    out = {"value": point, "lower": bound(wanted[0], offsets[0]), "upper": bound(wanted[1], offsets[1])}
    out.update({quantile_column(q): bound(q, o) for q, o in zip(wanted[2:], offsets[2:], strict=True)})
    known = data.y[np.isfinite(data.y)]
    if data.kind == "load" and len(known) and known.min() >= 0:
        out = {k: np.clip(v, 0.0, None) for k, v in out.items()}
    return out


def quantile_column(q: float) -> str:
    """The frame column of a requested quantile, e.g. ``q0.9``."""
    return f"q{q:g}"


def _fallback(data: SeriesData, cutoff: int, target: np.ndarray, notes: list[str], table, quantiles=()) -> dict:
    """Too little usable history for any model: the last known value (load) or zero (PV)."""
    known = np.flatnonzero(np.isfinite(data.y[:cutoff]))
    if data.kind == "load" and len(known):
        value, name = float(data.y[known[-1]]), "fallback_last_value"
    else:
        value, name = 0.0, "fallback_zero"
    notes.append(f"history too short or empty for every model ({len(known)} known points); using {name}")
    point = np.full(len(target), value)
    bands = {"value": point, "lower": point.copy(), "upper": point.copy()}
    bands.update({quantile_column(q): point.copy() for q in quantiles})
    return {"model": name, "weights": {name: 1.0}, "table": table, "bands": bands}
