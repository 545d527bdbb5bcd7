"""Public holidays as a 0/1 regressor, from the ``holidays`` package, per country (ISO 3166 alpha-2)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def supported(country: str) -> bool:
    """True when the ``holidays`` package knows ``country`` (e.g. "FR", "ES")."""
    import holidays

    return bool(country) and country.upper() in holidays.list_supported_countries()


def holiday_flags(grid: pd.DatetimeIndex, tz: str, country: str) -> np.ndarray:
    """1.0 on every interval whose local date is a public holiday in ``country``, else 0.0.

    Raises ValueError for a country the package does not know (callers check :func:`supported` first).
    """
    import holidays

    if not supported(country):
        raise ValueError(f"no public-holiday calendar for country {country!r}")
    local = grid.tz_convert(tz)
    years = sorted(set(local.year))
    calendar = holidays.country_holidays(country.upper(), years=years)
    dates = np.array([pd.Timestamp(d).to_datetime64() for d in calendar], dtype="datetime64[ns]")
    days = local.tz_localize(None).normalize().to_numpy().astype("datetime64[ns]")
    return np.isin(days, dates).astype(float)
