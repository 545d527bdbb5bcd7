"""Builders for small analytic portfolios: pydantic objects wrapped in LoadedPortfolio, prices as CSV files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from flexopt.config.loader import LoadedPortfolio
from flexopt.config.portfolio import Portfolio
from flexopt.data.inputs import Horizon, Inputs


def write_series(tmp_path: Path, name: str, index: pd.DatetimeIndex, values, unit: str = "EUR/kWh") -> dict:
    """A CSV with UTC timestamps; returns the data_sources entry for it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.csv"
    pd.DataFrame({"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": np.asarray(values, float)}).to_csv(
        path, index=False)
    return {"path": str(path), "column": "value", "unit": unit, "timezone": "UTC"}


def build(tmp_path: Path, sites: list[dict], *, day: dt.date = dt.date(2024, 6, 1), tz: str = "UTC",
          series: dict[str, np.ndarray] | None = None, units: dict[str, str] | None = None,
          tariff: dict | None = None, extra: dict | None = None) -> tuple[LoadedPortfolio, Inputs]:
    """Portfolio on one local day; ``series`` name -> values on the day's intervals (EUR/kWh unless ``units``)."""
    horizon = Horizon.for_day(day, tz)
    sources = {name: write_series(tmp_path, name, horizon.index, vals, (units or {}).get(name, "EUR/kWh"))
               for name, vals in (series or {}).items()}
    raw = {"portfolio": {"name": "test", "timezone": tz}, "data_sources": sources,
           "tariff": tariff or {"import_price_eur_per_kwh": 0.1}, "sites": sites, **(extra or {})}
    pf = Portfolio.model_validate(raw)
    loaded = LoadedPortfolio(portfolio=pf, path=tmp_path / "portfolio.yaml", files=[], base_dir=tmp_path)
    return loaded, Inputs(loaded, horizon)


@pytest.fixture
def portfolio_builder():
    return SimpleNamespace(build=build, write_series=write_series)
