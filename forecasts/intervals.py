"""Prediction intervals from out-of-sample day-ahead errors, by block of local time of day."""

from __future__ import annotations

import numpy as np

BLOCKS = 6  # 4-hour blocks of local time: errors at night are smaller than at the evening peak
MIN_PER_BLOCK = 20


def residual_offsets(
    residuals: np.ndarray,
    residual_hours: np.ndarray,
    target_hours: np.ndarray,
    quantiles: tuple[float, ...] = (0.1, 0.9),
) -> np.ndarray:
    """Offsets to add to a point forecast, one row per quantile: quantiles of actual-minus-forecast errors.

    A block of the day with too few errors uses all errors; with no errors at all the offsets are 0.
    """
    ok = np.isfinite(residuals)
    residuals, residual_hours = residuals[ok], residual_hours[ok]
    out = np.zeros((len(quantiles), len(target_hours)))
    if len(residuals) == 0:
        return out
    overall = np.quantile(residuals, quantiles)
    res_block = (residual_hours * BLOCKS // 24).astype(int)
    tgt_block = (target_hours * BLOCKS // 24).astype(int)
    for block in np.unique(tgt_block):
        sel = res_block == block
        q = np.quantile(residuals[sel], quantiles) if sel.sum() >= MIN_PER_BLOCK else overall
        out[:, tgt_block == block] = np.asarray(q)[:, None]
    return out
