"""Benchmark: fit, select and forecast 200 series with 8 weeks of 15-minute history, on 2 processes.

Run: .venv/bin/python bench/bench_forecasts.py [--series 200] [--jobs 2]
Prints wall time and the models chosen. Synthetic loads: daily and weekly shapes, noise, random level
steps and a few gaps.

.venv/bin/python bench/bench_forecasts.py --household CSV prints the household evaluation tables
(markdown) recorded in docs/forecasting.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small regressions: threaded BLAS only contends
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
from collections import Counter

import numpy as np
import pandas as pd

from flexopt.forecasts import backtest_series
from flexopt.forecasts.batch import forecast_many
from flexopt.forecasts.evaluation import household_load_evaluation, load_household_csv

TZ = "Europe/Paris"


def synthetic_histories(n: int, weeks: int = 8, seed: int = 0) -> tuple[dict[str, pd.Series], pd.DatetimeIndex]:
    """``n`` 15-minute load histories (kW) ending at a local midnight, and the next local day's index."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp("2024-10-21", tz=TZ)
    grid = pd.date_range(end - pd.Timedelta(weeks=weeks), end, freq="15min", inclusive="left").tz_convert("UTC")
    local = grid.tz_convert(TZ)
    day = (local.hour.to_numpy() + local.minute.to_numpy() / 60) / 24
    weekend = local.day_of_week.to_numpy() >= 5
    out = {}
    for i in range(n):
        base = rng.uniform(0.5, 50)
        shape = 1 + 0.4 * np.sin(2 * np.pi * (day - 0.3)) + 0.2 * np.sin(4 * np.pi * day + rng.uniform(0, 6))
        y = base * shape * np.where(weekend, rng.uniform(0.6, 1.1), 1.0)
        y *= 1 + rng.normal(0, 0.15, len(y))
        if rng.random() < 0.3:
            y[rng.integers(len(y) // 2, len(y)) :] *= rng.uniform(0.7, 1.3)
        if rng.random() < 0.3:
            start = rng.integers(0, len(y) - 40)
            y[start : start + rng.integers(2, 40)] = np.nan
        out[f"load_{i:03d}"] = pd.Series(np.clip(y, 0, None), index=grid)
    index = pd.date_range(end, end + pd.Timedelta(days=1), freq="15min", inclusive="left").tz_convert("UTC")
    return out, index


def markdown(frame: pd.DataFrame) -> str:
    """A markdown table, floats to 3 decimals (no tabulate dependency)."""
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def household(path: str) -> None:
    """Load (every model and the automatic choice) and PV backtests on the example household."""
    t0 = time.perf_counter()
    table, per_origin = household_load_evaluation(path)
    print(f"household load, 28 origins 2025-01-30..2025-02-26 ({time.perf_counter() - t0:.1f} s)\n")
    print(markdown(table.drop(columns=["n_origins"])))
    print("\nchosen model per origin: " + ", ".join(
        f"{k} {v}" for k, v in per_origin["model"].value_counts().items()))
    data = load_household_csv(path)
    origins = pd.date_range("2025-01-30", "2025-02-26", freq="D", tz="Europe/Paris")
    exog = data[["pv_forecast_kw"]]
    pv = backtest_series(data["pv_kw"], origins, "pv", local_tz="Europe/Paris", exog_history=exog)
    print("\nhousehold PV, same origins (missing night values count as 0 after hygiene)\n")
    print(markdown(pv.drop(columns=["n_origins"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--household", help="CSV of the example household: print its evaluation instead")
    args = parser.parse_args()
    if args.household:
        household(args.household)
        return
    histories, index = synthetic_histories(args.series, args.weeks)
    t0 = time.perf_counter()
    results = forecast_many(histories, index, "load", n_jobs=args.jobs, local_tz=TZ)
    elapsed = time.perf_counter() - t0
    chosen = Counter(r.model for r in results.values())
    points = len(next(iter(histories.values())))
    print(f"series: {len(results)}, history points each: {points} (15 min, {args.weeks} weeks), "
          f"forecast points: {len(index)}, processes: {args.jobs}, cpu count: {os.cpu_count()}")
    print(f"fit + 7-origin backtest selection + forecast: {elapsed:.1f} s total, "
          f"{1000 * elapsed / len(results):.0f} ms per series")
    print("models chosen: " + ", ".join(f"{k} {v}" for k, v in chosen.most_common()))
    print(f"bar: < 60 s -> {'PASS' if elapsed < 60 else 'FAIL'}")


if __name__ == "__main__":
    main()
