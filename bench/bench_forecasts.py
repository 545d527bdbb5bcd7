"""Benchmark: fit, select and forecast 200 series with 8 weeks of 15-minute history, on 2 processes.

Run: .venv/bin/python bench/bench_forecasts.py [--series 200] [--jobs 2]
Prints wall time and the models chosen. Synthetic loads: daily and weekly shapes, noise, random level
steps and a few gaps.

.venv/bin/python bench/bench_forecasts.py --household CSV prints the household evaluation tables
(markdown) recorded in docs/forecasting.md; add --seasons for the automatic forecast against the best naive
baseline per series, resolution and season (and the synthetic heat-pump household and PV with a cloud-cover
forecast, built from the real series as described in docs/forecasting.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small regressions: threaded BLAS only contends
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
from collections import Counter
from pathlib import Path

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


SEASONS = {"winter": ("2025-02-13", "2025-02-26"), "spring": ("2024-05-27", "2024-06-09"),
           "summer": ("2024-07-01", "2024-07-14"), "autumn": ("2024-10-28", "2024-11-10")}


def resolutions(series: pd.Series) -> dict[str, pd.Series]:
    """The 30-min series as measured, hourly (mean) and 15-min (linear interpolation of the 30-min values)."""
    grid = pd.date_range(series.index[0], series.index[-1], freq="15min")
    return {"15 min": series.reindex(grid).interpolate(limit_area="inside", limit=1),
            "30 min": series, "60 min": series.resample("60min").mean()}


def heat_pump_household(path: str, temperature_path: str, seed: int = 0) -> tuple[pd.Series, pd.DataFrame]:
    """The household's load plus a heat pump driven by an outdoor temperature and an EV charging most evenings
    (kW, hourly), and that temperature as a regressor. The temperature is the synthetic Mougins series moved 5
    degC colder (a Lorraine winter); the heat pump draws 0.22 kW per degree below 16 degC of the day's mean,
    more in the morning and evening; the car charges 7 kW for 2-4 h from 18-21 h on 60 % of days."""
    rng = np.random.default_rng(seed)
    load = load_household_csv(path)["load_kw"].resample("60min").mean()
    temp = pd.read_csv(temperature_path, index_col="timestamp", parse_dates=True)["mougins_degc"] - 5.0
    temp.index = pd.DatetimeIndex(temp.index).tz_convert("UTC")
    temp = temp.reindex(load.index).interpolate(limit_area="inside")
    local = load.index.tz_convert(TZ)
    hour = local.hour.to_numpy()
    daily = temp.rolling(24, min_periods=12).mean().to_numpy()
    shape = 1.0 + 0.35 * np.isin(hour, [6, 7, 8, 18, 19, 20, 21]) - 0.25 * np.isin(hour, [1, 2, 3, 4])
    hp = np.clip(16.0 - daily, 0.0, None) * 0.22 * shape * (1 + rng.normal(0, 0.15, len(load)))
    ev = np.zeros(len(load))
    for day in np.unique(local.normalize()):
        if rng.random() < 0.6:
            start = np.flatnonzero((local.normalize() == day) & (hour == rng.integers(18, 22)))
            if len(start):
                ev[start[0] : start[0] + rng.integers(2, 5)] = 7.0
    total = load + np.nan_to_num(hp) + ev
    return total[temp.notna().to_numpy()], pd.DataFrame({"temperature_c": temp}).dropna()


def cloud_forecast(pv: pd.Series, seed: int = 1) -> pd.DataFrame:
    """A cloud-cover forecast with a realistic error, made from the PV series itself (no weather data ships
    with flexopt): each hour's clear-sky index (PV over the 14-day envelope) inverted through Kasten-Czeplak,
    plus an error of 12 percentage points per day and 15 per hour, clipped to 0-100 %."""
    rng = np.random.default_rng(seed)
    hourly = pv.resample("60min").mean()
    local = hourly.index.tz_convert(TZ)
    envelope = hourly.groupby(local.hour).transform(lambda x: x.rolling(14, min_periods=1).max())
    index = (hourly / envelope.where(envelope > 0.05)).clip(0.0, 1.0)
    cover = 100 * ((1 - index) / 0.75).clip(0.0, 1.0) ** (1 / 3.4)
    days = local.normalize()
    daily_error = pd.Series(rng.normal(0, 12, len(days.unique())), index=days.unique()).reindex(days).to_numpy()
    cover = (cover.fillna(50.0) + daily_error + rng.normal(0, 15, len(cover))).clip(0.0, 100.0)
    return pd.DataFrame({"cloud_cover_pct": cover})


def seasonal(path: str, jobs: int) -> None:
    """Automatic forecast vs best naive per series, resolution and season (``flexopt backtest``'s figures)."""
    from concurrent.futures import ProcessPoolExecutor

    data = load_household_csv(path)
    temperature = str(Path(path).with_name("synthetic_outdoor_temp_hourly.csv"))
    cases = []
    for kind, column in (("load", "load_kw"), ("pv", "pv_kw")):
        for res, series in resolutions(data[column]).items():
            for season, span in SEASONS.items():
                cases.append((f"household {kind}", kind, res, season, span, series, None, None))
    hp, temp = heat_pump_household(path, temperature)
    for season, span in {"autumn": SEASONS["autumn"], "december": ("2024-12-15", "2024-12-28")}.items():
        cases.append(("heat pump + EV (synthetic T)", "load", "60 min", season, span, hp, None, None))
        cases.append(("heat pump + EV, temperature given", "load", "60 min", season, span, hp, temp, None))
    clouds = cloud_forecast(data["pv_kw"])
    for season, span in SEASONS.items():
        cases.append(("household pv, cloud forecast", "pv", "60 min", season, span,
                      data["pv_kw"].resample("60min").mean(), clouds, None))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(_season_case, cases))
    table = pd.DataFrame(rows)
    print(markdown(table))
    print(f"\nmean improvement over the best naive: {table['vs_best_naive_pct'].mean():.1f} %, "
          f"lowest {table['vs_best_naive_pct'].min():.1f} %")


def _season_case(case) -> dict:
    from flexopt.forecasts.evaluation import evaluate_chosen

    name, kind, res, season, (first, last), series, exog, _ = case
    origins = pd.date_range(first, last, freq="D", tz=TZ)
    models = backtest_series(series, origins, kind, local_tz=TZ, exog_history=exog)
    kwargs = {} if exog is None else {"exog_history": exog, "exog_future": exog}
    chosen, _ = evaluate_chosen(series, origins, kind, local_tz=TZ, **kwargs)
    naive = models[models["family"] == "naive"].iloc[0]
    best = models.iloc[0]
    auto = chosen.iloc[0]
    return {"series": name, "resolution": res, "season": season, "days": len(origins),
            "best_naive": naive["model"], "naive_mae": naive["mae"], "naive_wape": naive["wape"],
            "auto_mae": auto["mae"], "auto_wape": auto["wape"],
            "vs_best_naive_pct": 100 * (1 - auto["mae"] / naive["mae"]),
            "best_single": best["model"], "best_single_mae": best["mae"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--household", help="CSV of the example household: print its evaluation instead")
    parser.add_argument("--seasons", action="store_true", help="with --household: per season and resolution")
    args = parser.parse_args()
    if args.household and args.seasons:
        seasonal(args.household, args.jobs)
        return
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
    print(f"fit + backtest (14 origins), combination + forecast: {elapsed:.1f} s total, "
          f"{1000 * elapsed / len(results):.0f} ms per series")
    print("models chosen: " + ", ".join(f"{k} {v}" for k, v in chosen.most_common()))
    print(f"bar: < 60 s -> {'PASS' if elapsed < 60 else 'FAIL'}")


if __name__ == "__main__":
    main()
