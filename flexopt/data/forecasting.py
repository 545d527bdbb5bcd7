"""Connects the scheduler's inputs to :mod:`flexopt.forecasts` for series given as history.

Kept apart so that a run with only forecast series never imports statsmodels.
"""

from __future__ import annotations

import pandas as pd

from flexopt.config.portfolio import Portfolio


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


def forecasting_site(pf: Portfolio, name: str):
    """The site whose weather and country a history source's forecast uses: the first whose assets name it."""
    from flexopt.config.loader import series_refs

    return next((site for site in pf.sites if any(source == name for _path, source in series_refs(site))), None)


def site_regressors(pf: Portfolio, name: str) -> tuple[pd.DataFrame | None, str | None, list[str]]:
    """The weather series (past and forecast, UTC, one column per regressor) and the country of the site whose
    assets use data source ``name``, for its forecast. A source shared by sites with different weather or
    countries uses the first site's, and the note says so."""
    from flexopt.config.loader import series_refs
    from flexopt.data.timeseries import read_source

    sites = [site for site in pf.sites if any(source == name for _path, source in series_refs(site))]
    if not sites:
        return None, None, []
    site, notes = forecasting_site(pf, name), []
    if any(s.weather != site.weather or s.location.country != site.location.country for s in sites[1:]):
        notes.append(f"used by sites with different weather or country; forecast with site {site.id!r}'s")
    columns = {regressor: read_source(pf.data_sources[ref.source], ref.source)[0] * ref.scale
               for regressor, ref in site.weather.refs().items()}
    return (pd.DataFrame(columns) if columns else None), (site.location.country or None), notes
