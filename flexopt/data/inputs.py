"""Every time series a run needs, resolved once onto the run's horizon.

Asset formulations ask for ``inputs.values(ref)`` and get a numpy array on the horizon in canonical
units (kW, EUR/kWh, degC); where a value came from (file, resampling, gaps filled, forecast model)
is recorded for the run's report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flexopt.config.loader import LoadedPortfolio
from flexopt.config.portfolio import SeriesRef
from flexopt.data.timeseries import SeriesError, SeriesReport, day_index, horizon_index, load_on_index

# A forecaster turns the history of a data source into values on the horizon. It returns the values (a
# Series, or a frame with "value" and "q<level>" quantile columns) and a note (the model used);
# :mod:`flexopt.forecasts` provides the real one. Called as forecaster(name, history, index, local_tz=...,
# kind="load" | "pv", regressors=frame or None, country=str or None, quantiles=(levels...)).
Forecaster = Callable[..., tuple[pd.Series | pd.DataFrame, str]]


@dataclass
class Horizon:
    """The intervals of a run: UTC starts, their length, and the local zone for calendars."""

    index: pd.DatetimeIndex
    tz: str
    # calendar facts derived from the intervals (local days, daily instants), computed once per horizon: a fleet's
    # devices share a few horizons (one per time zone) and ask the same questions thousands of times
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def remember(self, key: object, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the same object afterwards (treat it as read-only)."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def in_zone(self, tz: str) -> Horizon:
        """The same intervals on another wall clock (a site's own time zone), made once per zone."""
        return self if tz == self.tz else self.remember(("in_zone", tz), lambda: Horizon(self.index, tz))

    @classmethod
    def for_day(cls, day: dt.date, tz: str, resolution_min: int = 15) -> Horizon:
        return cls(day_index(day, tz, resolution_min), tz)

    @classmethod
    def between(cls, start: dt.datetime, end: dt.datetime, tz: str, resolution_min: int = 15) -> Horizon:
        return cls(horizon_index(start, end, tz, resolution_min), tz)

    @property
    def n(self) -> int:
        return len(self.index)

    @property
    def dt_h(self) -> float:
        return self.remember("dt_h", lambda: (self.index[1] - self.index[0]).total_seconds() / 3600.0)

    @property
    def ends(self) -> pd.DatetimeIndex:
        return self.remember("ends", lambda: self.index + (self.index[1] - self.index[0]))

    @property
    def local(self) -> pd.DatetimeIndex:
        return self.remember("local", lambda: self.index.tz_convert(self.tz))

    def local_minutes(self) -> np.ndarray:
        """Minutes since local midnight of each interval start (for daily windows)."""
        def compute() -> np.ndarray:
            loc = self.local
            return (loc.hour * 60 + loc.minute).to_numpy()
        return self.remember("local_minutes", compute)


@dataclass
class Inputs:
    """Series of one run, keyed by data-source name, cached so each file is read once."""

    loaded: LoadedPortfolio
    horizon: Horizon
    forecaster: Forecaster | None = None
    reports: dict[str, SeriesReport] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    _cache: dict[object, np.ndarray] = field(default_factory=dict)
    _first: dict[object, str] = field(default_factory=dict)  # cache key -> the name it was first read for
    _quantiles: dict[object, dict[float, np.ndarray]] = field(default_factory=dict)  # cache key -> q -> values
    # intraday forecast correction: asset id -> kW added to its forecast power on the horizon (load convention: a
    # load drawing more is positive, a PV array giving more is negative); runs/correction.py
    corrections_kw: dict[str, np.ndarray] = field(default_factory=dict)

    # DSO limit windows read once (flexopt.scheduling.grid reads the file when None); a cluster worker has no files
    dso_windows: list | None = None
    frozen: bool = False  # a worker's inputs: every series was sent with them, none is read here
    # limit windows beside the DSO limits file: orders in force (UFTP) and, for an offer, the requested limits
    limit_windows: list = field(default_factory=list)

    def portable(self) -> dict:
        """Every series this run has read or forecast, by data-source name, with its quantiles, reports and models
        and the forecast corrections: plain data for a worker that has none of the files (:meth:`from_portable`)."""
        values, quantiles = {}, {}
        for name in self.reports:
            key = self._key(name)
            values[name] = self._cache[key]
            if key in self._quantiles:
                quantiles[name] = self._quantiles[key]
        return {"values": values, "quantiles": quantiles, "reports": dict(self.reports), "models": dict(self.models),
                "corrections_kw": dict(self.corrections_kw), "dso_windows": self.dso_windows,
                "limit_windows": list(self.limit_windows)}

    @classmethod
    def from_portable(cls, loaded: LoadedPortfolio, horizon: Horizon, data: dict) -> Inputs:
        """Inputs on ``horizon`` from :meth:`portable`'s data, for ``loaded`` (e.g. some of the sites); frozen: a
        series that was not sent is an error, never a file read on the worker."""
        inputs = cls(loaded, horizon, corrections_kw=dict(data["corrections_kw"]), dso_windows=data["dso_windows"],
                     limit_windows=list(data["limit_windows"]), frozen=True)
        for name, values in data["values"].items():
            key = inputs._key(name)
            inputs._cache.setdefault(key, values)
            inputs._first.setdefault(key, name)
            if name in data["quantiles"]:
                inputs._quantiles.setdefault(key, data["quantiles"][name])
        inputs.reports.update(data["reports"])
        inputs.models.update(data["models"])
        return inputs

    def correction_kw(self, asset_id: str) -> np.ndarray:
        """What the forecast correction adds to an asset's forecast power (zeros when it is not corrected)."""
        return self.corrections_kw.get(asset_id, np.zeros(self.horizon.n))

    @property
    def congestion_quantile(self) -> float | None:
        return self.loaded.portfolio.risk.congestion_quantile

    def is_forecast(self, ref: float | SeriesRef | None) -> bool:
        """True when ``ref`` is a series flexopt forecasts from history (its values are uncertain)."""
        return isinstance(ref, SeriesRef) and self.loaded.portfolio.data_sources[ref.source].kind == "history"

    def quantile(self, ref: SeriesRef, q: float) -> np.ndarray:
        """The ``q`` quantile of a history source's forecast on the horizon (scaled like ``values``); the point
        forecast for other sources and for q = 0.5."""
        point = self.values(ref)
        if not self.is_forecast(ref) or abs(q - 0.5) < 1e-12:
            return point
        levels = self._quantiles.get(self._key(ref.source), {})
        if q not in levels:
            raise SeriesError(f"data source {ref.source!r}: no {q:g} quantile was forecast; set "
                              "risk.congestion_quantile before the run reads its inputs")
        out = levels[q] * ref.scale
        return np.maximum(out, point) if q > 0.5 else np.minimum(out, point)

    def values(self, ref: float | SeriesRef | None, default: float = 0.0) -> np.ndarray:
        """The value of a number-or-series field on every interval of the horizon (always finite: a NaN that
        reached the solver once made it run forever)."""
        n = self.horizon.n
        if ref is None:
            out = np.full(n, default, dtype=float)
        elif isinstance(ref, int | float):
            out = np.full(n, float(ref), dtype=float)
        else:
            out = self.source(ref.source) * ref.scale
        if not np.isfinite(out).all():
            what = f"data source {ref.source!r}" if isinstance(ref, SeriesRef) else f"value {ref!r}"
            raise SeriesError(f"{what} is not finite on {int((~np.isfinite(out)).sum())} intervals of the horizon; "
                              "check the file and the forecast")
        return out

    def source(self, name: str) -> np.ndarray:
        """Values of a data source; sources reading the same column of the same file the same way (their
        descriptions may differ, e.g. one file named by several pilots) are read, or forecast, once."""
        key = self._key(name)
        if key not in self._cache:
            self._cache[key] = self._load(name)
            self._first[key] = name
        else:
            first = self._first[key]
            self.reports.setdefault(name, self.reports[first])
            self.models.setdefault(name, self.models[first])
        return self._cache[key]

    def _key(self, name: str) -> tuple:
        """What the values of a data source depend on: its file, column, time column, unit, time zone and kind,
        and for history whether it is forecast as PV or as load and with which site's weather and country."""
        src = self.loaded.portfolio.data_sources[name]
        key = (str(src.path), src.column, src.time_column, src.unit, src.timezone, src.kind)
        if src.kind != "history":
            return key
        from flexopt.data.forecasting import forecasting_site

        site = forecasting_site(self.loaded.portfolio, name)
        return (*key, self._feeds_pv(name), site.weather if site else None, site.location.country if site else None)

    def _load(self, name: str) -> np.ndarray:
        if self.frozen:
            raise SeriesError(f"data source {name!r} was not sent with the run's inputs (a cluster worker reads no "
                              "files)")
        src = self.loaded.portfolio.data_sources[name]
        if src.kind == "history":
            if self.forecaster is None:
                from flexopt.data.forecasting import default_forecaster

                self.forecaster = default_forecaster
            from flexopt.data.timeseries import history_before, read_source

            history, report = read_source(src, name)
            history = history_before(history, self.horizon.index, name, self.horizon.tz)
            kind = "pv" if self._feeds_pv(name) else "load"
            regressors, country, notes = self._regressors(name)
            levels = self._levels(kind)
            values, model = self.forecaster(name, history, self.horizon.index, local_tz=self.horizon.tz, kind=kind,
                                            regressors=regressors, country=country, quantiles=levels)
            self.reports[name] = report
            self.models[name] = model + "".join(f"; {n}" for n in notes)
            if isinstance(values, pd.DataFrame):
                self._quantiles[self._key(name)] = {q: values[f"q{q:g}"].to_numpy(dtype=float) for q in levels
                                                    if f"q{q:g}" in values}
                values = values["value"]
            return values.to_numpy(dtype=float)
        values, report = load_on_index(src, self.horizon.index, name)
        self.reports[name] = report
        self.models[name] = "as given (forecast series)"
        return values.to_numpy(dtype=float)

    def _levels(self, kind: str) -> tuple[float, ...]:
        """Quantiles a load forecast must also give: the congestion quantile and its mirror for export limits."""
        q = self.congestion_quantile
        return () if kind != "load" or q is None or q == 0.5 else (q, round(1.0 - q, 10))

    def _regressors(self, name: str) -> tuple[pd.DataFrame | None, str | None, list[str]]:
        from flexopt.data.forecasting import site_regressors

        return site_regressors(self.loaded.portfolio, name)

    def _feeds_pv(self, name: str) -> bool:
        """PV forecasts are clipped at zero and follow the sun, so the forecaster must know."""
        from flexopt.config.portfolio import PV

        return any(isinstance(a, PV) and a.generation_kw is not None and a.generation_kw.source == name
                   for _, a in self.loaded.portfolio.assets())
