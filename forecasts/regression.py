"""Statistical regressions: a median regression on lagged profiles, and calendar Fourier terms with AR errors.

The profile regression is the workhorse: it learns how much to trust yesterday, last week and the 4-week
mean (fitted by statsmodels QuantReg at q=0.5, which minimises absolute error). The Fourier model is the
classic "daily and weekly cycles plus autoregressive errors" (statsmodels GLSAR).
"""

from __future__ import annotations

import warnings

import numpy as np

# statsmodels is imported where a model is fitted (~1 s with scipy.stats): a run whose chosen models need none of
# it, or that forecasts nothing, never pays for it. The modules themselves, not statsmodels.api (+0.45 s).
from flexopt.forecasts.base import Model, Prediction, Window, column, level, profile, train_rows
from flexopt.forecasts.features import SeriesData

LAGGED = ("lag_day", "lag_week", "mean_4w", "median_4w", "mean_7d", "median_7d", "kernel_median", "mean_24h")
CALENDAR = ("weekend", "day_sin1", "day_cos1", "day_sin2", "day_cos2")
EXOG = ("temperature_c", "heating_deg", "cooling_deg", "heating_deg_24h", "holiday")
FOURIER = ("day_sin1", "day_cos1", "day_sin2", "day_cos2", "day_sin3", "day_cos3")
WEEKLY = ("week_sin1", "week_cos1", "week_sin2", "week_cos2", "weekend")
LONG_WINDOW_FACTOR = 2
"""``profile_median_reg_long`` fits on this many training windows (a forecast keeps that much history)."""
QUANTREG_ITERATIONS = 15
"""IRLS steps of the median regressions (statsmodels stops earlier when the fit converges). A household's fit
rarely converges to 1e-4; out of sample 12 steps forecast as well as 30 (within 0.2 points against the best naive
baseline on three real households) at less than half the cost."""


def design(data: SeriesData, rows: np.ndarray, lagged: tuple[str, ...], other: tuple[str, ...], fill: float):
    """Regressor matrix (with constant) at ``rows``: gap-filled lags, calendar terms, available exog."""
    cols = [profile(data, c, rows, fill) for c in lagged]
    present = [c for c in other if c in data.features]
    cols += [np.nan_to_num(column(data, c)[rows], nan=0.0) for c in present]
    return np.column_stack([np.ones(len(rows)), *cols]) if cols else np.ones((len(rows), 1))


def informative(x: np.ndarray) -> np.ndarray:
    """Columns that vary in the training rows, plus the constant (avoids singular fits on short windows)."""
    keep = np.ptp(x, axis=0) > 1e-12
    keep[0] = True
    return keep


class ProfileRegression(Model):
    """y ~ lagged same-time profiles + calendar terms (+ temperature, holiday): median or least squares."""

    min_days = 14.0
    kinds = ("load",)

    def __init__(self, name: str, method: str = "median", window_factor: int = 1) -> None:
        self.name = name
        self.method = method
        self.window_factor = window_factor  # 2: fitted on twice the training window (a second, steadier view)

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        if self.window_factor > 1:
            span = (window.cutoff - window.train_start) * self.window_factor
            window = Window(max(0, window.cutoff - span), window.cutoff, window.target)
        fill = level(data, window)
        rows = train_rows(data, window)
        x = design(data, rows, LAGGED, CALENDAR + EXOG, fill)
        keep = informative(x)
        params = fit_linear(x[:, keep], data.y[rows], self.method)
        x_new = design(data, window.target, LAGGED, CALENDAR + EXOG, fill)[:, keep]
        return Prediction(x_new @ params, data.y[rows] - x[:, keep] @ params)


def fit_linear(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """Coefficients by QuantReg (q=0.5) or OLS. Collinear lags (a perfectly regular series) and the IRLS
    iteration limit give warnings that are not failures here: pinv still yields a usable fit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "median":
            from statsmodels.regression.quantile_regression import QuantReg
            from statsmodels.tools.sm_exceptions import IterationLimitWarning

            # catch_warnings is not thread-safe (forecasts run in threads): the limit, reached by design, is also
            # filtered for good, for this module only, so that it never reaches an operator's terminal
            warnings.filterwarnings("ignore", category=IterationLimitWarning, module=__name__)
            return QuantReg(y, x).fit(q=0.5, max_iter=QUANTREG_ITERATIONS, p_tol=1e-4).params
        from statsmodels.regression.linear_model import OLS

        return OLS(y, x).fit().params


class FourierAR(Model):
    """Daily and weekly Fourier terms with AR(p) errors (GLSAR), the errors propagated to the horizon."""

    min_days = 7.0
    kinds = ("load",)

    automatic = False  # never better than the 4-week mean on household loads, and costly: by name only

    def __init__(self, name: str, ar: int = 2) -> None:
        self.name = name
        self.ar = ar

    def predict(self, data: SeriesData, window: Window) -> Prediction:
        rows = train_rows(data, window)
        x = design(data, rows, (), FOURIER + WEEKLY + EXOG, 0.0)
        keep = informative(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from statsmodels.regression.linear_model import GLSAR  # imported by the models that fit, not by all

            fit = GLSAR(data.y[rows], x[:, keep], rho=self.ar).iterative_fit(maxiter=3)
        params, rho = fit.params, np.atleast_1d(fit.model.rho)
        resid = data.y[rows] - x[:, keep] @ params
        x_new = design(data, window.target, (), FOURIER + WEEKLY + EXOG, 0.0)[:, keep]
        return Prediction(x_new @ params + ar_error_path(resid, rows, window, rho), resid)


def ar_error_path(resid: np.ndarray, rows: np.ndarray, window: Window, rho: np.ndarray) -> np.ndarray:
    """Forecast the AR error from the last training residuals to each target row (unknown rows count as 0)."""
    p = len(rho)
    last = max(int(window.target.max()), window.cutoff)
    path = np.zeros(last + 1 - window.cutoff + p)
    recent = np.zeros(window.cutoff - window.train_start)
    recent[rows - window.train_start] = resid
    path[:p] = recent[-p:] if len(recent) >= p else 0.0
    if not np.all(np.isfinite(rho)) or np.sum(np.abs(rho)) >= 1.0:
        return np.zeros(len(window.target))  # non-stationary estimate: do not extrapolate the error
    for i in range(p, len(path)):
        path[i] = rho @ path[i - p : i][::-1]
    return path[window.target - window.cutoff + p]
