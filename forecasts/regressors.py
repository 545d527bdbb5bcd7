"""Outside regressors (weather, holidays, an external PV forecast) joined onto a series' grid, with the
checks that decide whether a model may use them.

A regressor is used only where it is known both over the training history and on every interval being
forecast; otherwise it is left out, the models run without it, and the forecast says so. A weather
forecast that stops at noon must not silently become "0 degC" in the afternoon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flexopt.forecasts.hygiene import infer_step
from flexopt.forecasts.public_holidays import holiday_flags, supported
from flexopt.forecasts.timefeatures import require_utc_index

WEATHER = ("temperature_c", "irradiance_w_per_m2", "cloud_cover_pct")
"""Weather regressors a forecast understands (columns of ``exog_history``/``exog_future``)."""
KNOWN = (*WEATHER, "holiday", "pv_forecast_kw")
MIN_HISTORY_SHARE = 0.8
"""A regressor must be known on this share of the training history to be fitted."""


def join(exog_history: pd.DataFrame | None, exog_future: pd.DataFrame | None) -> pd.DataFrame | None:
    """History and future regressors as one frame on a UTC index (later rows win where both have a time)."""
    parts = [p for p in (exog_history, exog_future) if p is not None]
    if not parts:
        return None
    for part in parts:
        require_utc_index(part.index, "exog")
    columns = list(dict.fromkeys(c for p in parts for c in p.columns))
    joined = pd.concat([p.reindex(columns=columns) for p in parts]).sort_index()
    joined.index = joined.index.tz_convert("UTC")
    joined = joined[~joined.index.duplicated(keep="last")]
    return joined.apply(pd.to_numeric, errors="coerce").astype(float)


def on_grid(exog: pd.DataFrame | None, grid: pd.DatetimeIndex, cutoff: int, target: np.ndarray, tz: str,
            country: str | None, train_rows: int, notes: list[str], *, keep_partial: tuple[str, ...] = ()
            ) -> pd.DataFrame | None:
    """The regressors on ``grid`` (each value held over its own source interval); those not known on every
    target interval or on too little of the training history are dropped with a note. ``keep_partial`` names
    columns kept even so (the external PV forecast is judged by the backtest instead)."""
    step = grid[1] - grid[0] if len(grid) > 1 else pd.Timedelta(hours=1)
    out = pd.DataFrame(index=grid)
    if exog is not None:
        unknown = sorted(set(exog.columns) - set(KNOWN))
        if unknown:
            notes.append(f"regressor(s) {', '.join(unknown)} not understood; ignored (known: {', '.join(KNOWN)})")
        frame = exog.reindex(columns=[c for c in exog.columns if c in KNOWN])
        source_step = infer_step(frame.index) or step
        # a value holds for its own source interval only: hourly weather fills the four quarter-hours of its hour
        frame = frame.reindex(grid, method="ffill", tolerance=max(source_step - pd.Timedelta(seconds=1),
                                                                   pd.Timedelta(0)))
        history = slice(max(0, cutoff - train_rows), cutoff)
        for column in frame.columns:
            values = frame[column].to_numpy()
            future_missing = int((~np.isfinite(values[target])).sum())
            past_share = float(np.isfinite(values[history]).mean()) if cutoff > 0 else 0.0
            if column in keep_partial:
                out[column] = values
            elif future_missing:
                notes.append(f"{column}: no forecast for {future_missing} of the {len(target)} intervals "
                             f"forecast; models run without {column}")
            elif past_share < MIN_HISTORY_SHARE:
                notes.append(f"{column}: known on only {past_share:.0%} of the training history (needs "
                             f"{MIN_HISTORY_SHARE:.0%}); models run without {column}")
            else:
                out[column] = values
    if country:
        if supported(country):
            out["holiday"] = holiday_flags(grid, tz, country)
        else:
            notes.append(f"no public-holiday calendar for country {country!r}; holidays not modelled")
    return out if len(out.columns) else None
