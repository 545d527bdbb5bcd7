"""Forecast many series at once, in worker processes: each series is independent and CPU-bound."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor

import pandas as pd

from flexopt.forecasts.api import ForecastResult, forecast_series


def _one(args: tuple) -> ForecastResult:
    history, index, kind, name, kwargs = args
    return forecast_series(history, index, kind, name=name, **kwargs)


def forecast_many(
    histories: Mapping[str, pd.Series],
    index: pd.DatetimeIndex,
    kinds: Mapping[str, str] | str = "load",
    *,
    n_jobs: int = 1,
    per_series: Mapping[str, dict] | None = None,
    **kwargs,
) -> dict[str, ForecastResult]:
    """``forecast_series`` for every named history; ``n_jobs`` > 1 uses that many processes (0: all cores).
    ``per_series`` adds keyword arguments for some series (their regressors, their country).

    Worker processes should run single-threaded BLAS (OPENBLAS_NUM_THREADS=1): the regressions are small
    and threaded BLAS on busy cores is many times slower.
    """
    jobs = [
        (history, index, kinds if isinstance(kinds, str) else kinds.get(name, "load"), name,
         {**kwargs, **(per_series or {}).get(name, {})})
        for name, history in histories.items()
    ]
    workers = (os.cpu_count() or 1) if n_jobs == 0 else n_jobs
    if workers <= 1 or len(jobs) <= 1:
        return {job[3]: _one(job) for job in jobs}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_one, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
        return {job[3]: result for job, result in zip(jobs, results, strict=True)}
