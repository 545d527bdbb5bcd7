"""The forecast actually used: a weighted combination of the models that did best in the backtest.

Picking the single best model on a few backtest days is noisy: the model that won the last fortnight is
often not the one that wins tomorrow, so selection alone costs accuracy. Averaging the best few models
keeps most of the winner's skill and removes most of the luck of the draw. The rule, on the backtest MAE:

1. rank every model that produced forecasts (naive baselines included: on some series they are among the best);
2. keep the best ``ENSEMBLE_SIZE`` whose MAE is within ``MAX_MAE_RATIO`` of the best one;
3. combine them: the median of three (robust: one model that goes astray on a day is outvoted), the mean of
   two;
4. if that combination's backtest MAE is not below the best naive baseline's, use the best naive baseline and
   say so.

Measured on the example household over six four-week periods at 15, 30 and 60 minutes (docs/forecasting.md):
picking the single best model costs 1.4-2.2 % of MAE (load) and 7-9 % (PV) against the best model in
hindsight; the median of three is within 1 % of it for load (4.6-6 % for PV without weather). Means, also
weighted by 1/MAE or 1/MAE^2, did worse; medians of four or five were level with three.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexopt.forecasts.metrics import error_metrics

ENSEMBLE_SIZE = 3
MAX_MAE_RATIO = 1.10


@dataclass
class Choice:
    """Member models and their weights (summing to 1); one member means a single model."""

    weights: dict[str, float]
    note: str | None = None
    method: str = "mean"  # "mean" (weighted) or "median" (of the members, weights unused)

    @property
    def name(self) -> str:
        if len(self.weights) == 1:
            return next(iter(self.weights))
        return "ensemble(" + "+".join(sorted(self.weights)) + ")"

    def combine(self, forecasts: dict[str, np.ndarray]) -> np.ndarray:
        """The members' forecasts (each an array over the same rows) combined: median, or weighted mean."""
        stack = np.vstack([np.asarray(forecasts[m], dtype=float) for m in self.weights])
        if self.method == "median":
            return np.median(stack, axis=0)
        return np.asarray(list(self.weights.values())) @ stack


def members(table: pd.DataFrame, size: int = ENSEMBLE_SIZE) -> Choice | None:
    """The best ``size`` models of a backtest table (sorted by MAE) within ``MAX_MAE_RATIO`` of the best."""
    scored = table[table["mae"].notna() & np.isfinite(table["mae"])]
    if scored.empty:
        return None
    best = float(scored["mae"].iloc[0])
    top = scored[scored["mae"] <= best * MAX_MAE_RATIO + 1e-12].head(size)
    names = [str(m) for m in top["model"]]
    return Choice({m: 1.0 / len(names) for m in names}, method="median" if len(names) >= 3 else "mean")


def choose(table: pd.DataFrame, actual: np.ndarray, forecasts: dict[str, np.ndarray],
           size: int = ENSEMBLE_SIZE) -> tuple[Choice | None, dict | None]:
    """(choice, the combination's backtest metrics); ``forecasts`` are each model's backtest forecasts on the
    same rows as ``actual``. Falls back to the best naive baseline where the combination does not beat it."""
    choice = members(table, size)
    if choice is None:
        return None, None
    combined = error_metrics(actual, choice.combine(forecasts))
    naive = table[(table["family"] == "naive") & table["mae"].notna()]
    if not naive.empty and not combined["mae"] < float(naive["mae"].iloc[0]):
        best = naive.iloc[0]
        note = (f"naive model {best['model']} used because no statistical model or combination beat it in the "
                f"backtest (MAE {best['mae']:.3f} kW vs {choice.name} {combined['mae']:.3f} kW)")
        return Choice({str(best["model"]): 1.0}, note), None
    return choice, combined
