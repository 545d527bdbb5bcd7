"""Point-forecast error measures. WAPE, not MAPE: loads and PV have zeros."""

from __future__ import annotations

import numpy as np


def error_metrics(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, WAPE (sum |error| / sum |actual|) and bias (mean forecast minus actual), over known points."""
    actual = np.asarray(actual, dtype=float)
    forecast = np.asarray(forecast, dtype=float)
    ok = np.isfinite(actual) & np.isfinite(forecast)
    err = forecast[ok] - actual[ok]
    if len(err) == 0:
        return {"n": 0, "mae": np.nan, "rmse": np.nan, "wape": np.nan, "bias": np.nan}
    total = np.abs(actual[ok]).sum()
    return {
        "n": len(err),
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "wape": float(np.abs(err).sum() / total) if total > 0 else np.nan,
        "bias": float(err.mean()),
    }


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of known actual values inside [lower, upper]."""
    actual = np.asarray(actual, dtype=float)
    ok = np.isfinite(actual)
    if not ok.any():
        return np.nan
    return float(((actual[ok] >= lower[ok]) & (actual[ok] <= upper[ok])).mean())
