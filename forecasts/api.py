"""Entry points: forecast one series (with automatic model choice) and backtest models over given origins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from flexopt.forecasts.base import Model, Window
from flexopt.forecasts.features import SeriesData, build_features
from flexopt.forecasts.hygiene import HygieneReport, clean_history, infer_step
from flexopt.forecasts.intervals import residual_bands
from flexopt.forecasts.selection import (
    METRIC_COLUMNS,
    candidate_models,
    choose_model,
    metrics_table,
    postprocess,
    run_windows,
)
from flexopt.forecasts.timefeatures import local_day_fraction, require_utc_index, shift_local

DEFAULT_MODEL = {"load": "profile_median_reg", "pv": "pv_clearsky_scaled"}
LAG_DAYS = 35  # the longest same-time lag (4 weeks after a lead of up to a week)
MIN_BACKTEST_WINDOWS = 3


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
    select: bool = True,
    models: list[str] | None = None,
    train_days: int = 28,
    backtest_days: int = 7,
) -> ForecastResult:
    """Forecast ``history`` (kW, tz-aware) at ``index`` (tz-aware interval starts).

    With ``select`` the candidates are backtested on the ``backtest_days`` most recent comparable days and a
    statistical model is used only where it beats the best naive baseline. Bad or short history never
    raises: the run falls back to a simpler model and says so in ``warnings``.
    """
    index = _check_index(index, kind)
    require_utc_index(history.index, "history")
    step = infer_step(index) or infer_step(history.index) or pd.Timedelta(hours=1)
    notes: list[str] = []
    history = history.sort_index()
    late = history.index >= index[0]
    if late.any():
        notes.append(f"{int(late.sum())} history points at or after the forecast start were ignored")
        history = history[~late]
    keep_days = train_days + backtest_days + LAG_DAYS + 1
    history = history[history.index >= index[0] - pd.Timedelta(days=keep_days)]
    cleaned, report = clean_history(history, step, local_tz, kind=kind)
    notes += report.messages()
    external = _external_mode(kind, exog_history, exog_future)
    exog = _exog(exog_history, exog_future)
    data, cutoff, target = _prepare(cleaned, index, step, local_tz, kind, exog)
    if external == "future-only":
        notes.append("external PV forecast used as given: no history of it to backtest")
        models = ["pv_external"]
        select = False
    pool = candidate_models(kind, models, external=external is not None)
    result = _forecast(data, cutoff, target, pool, select, train_days, backtest_days, notes)
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
) -> pd.DataFrame:
    """MAE, RMSE, WAPE and bias (kW) per model over day-ahead forecasts from each origin.

    Each origin (tz-aware, normally a local midnight) forecasts the following local day from the history
    before it, trained on ``train_days`` days. Models lacking history at the first origin are left out.
    """
    origins = pd.DatetimeIndex(origins)
    require_utc_index(origins, "origins")
    require_utc_index(history.index, "history")
    step = infer_step(history.index) or pd.Timedelta(hours=1)
    cleaned, _ = clean_history(history, step, local_tz, kind=kind)
    has_external = exog_history is not None and "pv_forecast_kw" in exog_history
    exog = exog_history.reindex(cleaned.index) if exog_history is not None else None
    y = cleaned.to_numpy()
    features = build_features(cleaned.index, y, local_tz, 1, kind, exog)
    data = SeriesData(cleaned.index, y, features, step, local_tz, kind, 1)
    windows = []
    for origin in origins.sort_values():
        end = shift_local(pd.DatetimeIndex([origin]), -1, local_tz)[0]
        target = np.flatnonzero((data.grid >= origin) & (data.grid < end))
        cutoff = int(data.grid.searchsorted(origin))
        if len(target) and cutoff > 0:
            windows.append(Window(max(0, cutoff - train_days * data.steps_per_day), cutoff, target))
    if not windows:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    pool = candidate_models(kind, models, external=has_external)
    days = _history_days(data, windows[0].cutoff)
    pool = [m for m in pool if m.min_days <= days]
    return metrics_table(data, run_windows(data, pool, windows), len(windows))


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


def _exog(exog_history: pd.DataFrame | None, exog_future: pd.DataFrame | None) -> pd.DataFrame | None:
    """History and future regressors together; a regressor missing from the future is dropped."""
    if exog_future is None:
        return None
    parts = [exog_future] if exog_history is None else [exog_history, exog_future]
    for part in parts:
        require_utc_index(part.index, "exog")
    common = [c for c in exog_future.columns if exog_history is None or c in exog_history.columns]
    if exog_history is not None and "pv_forecast_kw" in exog_future and "pv_forecast_kw" not in common:
        common.append("pv_forecast_kw")
    joined = pd.concat([p.reindex(columns=common) for p in parts]).sort_index()
    joined.index = joined.index.tz_convert("UTC")
    return joined[~joined.index.duplicated(keep="last")].astype(float)


def _prepare(cleaned, index, step, tz, kind, exog):
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
    ex = None
    if exog is not None:
        ex = exog.reindex(grid, method="ffill", tolerance=max(step, pd.Timedelta(hours=1)))
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


def _forecast(data, cutoff, target, pool, select, train_days, backtest_days, notes) -> dict:
    final = Window(max(0, cutoff - train_days * data.steps_per_day), cutoff, target)
    windows = _windows(data, cutoff, target, backtest_days, train_days)
    table = pd.DataFrame(columns=METRIC_COLUMNS)
    runs: dict = {}
    if select:
        usable, windows = _eligible(data, pool, windows, notes)
        runs = run_windows(data, usable, windows)
        notes += [f"model {k} failed in the backtest: {r.error}" for k, r in runs.items() if r.error]
        table = metrics_table(data, runs, len(windows))
        chosen, note = choose_model(table)
        if note:
            notes.append(note)
    else:
        chosen = _default(data, pool, cutoff, notes)
        if chosen is not None:
            usable = [w for w in windows if _history_days(data, w.cutoff) >= _find(pool, chosen).min_days]
            runs = run_windows(data, [_find(pool, chosen)], usable)
    if chosen is None:
        return _fallback(data, cutoff, target, notes, table)
    model = _find(pool, chosen)
    try:
        prediction = model.predict(data, final)
    except Exception as exc:  # never let one model crash a portfolio run
        notes.append(f"model {chosen} failed ({type(exc).__name__}: {exc}); falling back")
        return _fallback(data, cutoff, target, notes, table)
    point = postprocess(data, target, prediction.point)
    residuals, hours = _residuals(data, runs.get(chosen))
    if np.isfinite(residuals).sum() < 20:
        residuals = prediction.train_residuals
        hours = local_day_fraction(data.grid[final.cutoff - len(residuals) : final.cutoff], data.tz) * 24
        notes.append(f"prediction interval of {chosen} from in-sample residuals (too few backtest errors)")
    low, high = residual_bands(residuals, hours, local_day_fraction(data.grid[target], data.tz) * 24)
    return {"model": chosen, "table": table, "bands": _bands(data, target, point, low, high)}


def _find(pool: list[Model], name: str) -> Model:
    return next(m for m in pool + candidate_models("load") + candidate_models("pv") if m.name == name)


def _default(data: SeriesData, pool: list[Model], cutoff: int, notes: list[str]) -> str | None:
    """Without selection: the kind's default model, or the longest naive lag the history allows."""
    days = _history_days(data, cutoff)
    wanted = pool[0] if len(pool) == 1 else next((m for m in pool if m.name == DEFAULT_MODEL[data.kind]), None)
    if wanted is not None and wanted.min_days <= days:
        return wanted.name
    for name, need in (("naive_mean_4w", 7.0), ("naive_yesterday", 1.0)):
        if days >= need:
            if wanted is not None:
                notes.append(f"history of {days:.1f} days too short for {wanted.name} "
                             f"(needs {wanted.min_days:g}); using {name}")
            return name
    return None


def _residuals(data: SeriesData, run) -> tuple[np.ndarray, np.ndarray]:
    if run is None or not run.rows:
        return np.array([]), np.array([])
    rows, actual, forecast = run.arrays(data)
    return actual - forecast, local_day_fraction(data.grid[rows], data.tz) * 24


def _bands(data: SeriesData, target: np.ndarray, point: np.ndarray, low: np.ndarray, high: np.ndarray):
    """value, lower, upper with lower <= value <= upper and the physical limits applied to all three."""
    lower = postprocess(data, target, np.minimum(point + low, point))
    upper = postprocess(data, target, np.maximum(point + high, point))
    known = data.y[np.isfinite(data.y)]
    if data.kind == "load" and len(known) and known.min() >= 0:
        point, lower, upper = (np.clip(a, 0.0, None) for a in (point, lower, upper))
    return {"value": point, "lower": lower, "upper": upper}


def _fallback(data: SeriesData, cutoff: int, target: np.ndarray, notes: list[str], table) -> dict:
    """Too little usable history for any model: the last known value (load) or zero (PV)."""
    known = np.flatnonzero(np.isfinite(data.y[:cutoff]))
    if data.kind == "load" and len(known):
        value, name = float(data.y[known[-1]]), "fallback_last_value"
    else:
        value, name = 0.0, "fallback_zero"
    notes.append(f"history too short or empty for every model ({len(known)} known points); using {name}")
    point = np.full(len(target), value)
    return {"model": name, "table": table, "bands": {"value": point, "lower": point.copy(), "upper": point.copy()}}
