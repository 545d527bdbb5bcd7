"""The automatic forecast against the best naive baseline on every fortnight of every real series flexopt has.

Run: .venv/bin/python bench/bench_forecast_blocks.py [--jobs 2] [--system50 DIR]

Each series is cut into consecutive 14-day blocks (after 28 days of training and the backtest days the choice
needs); in each block every candidate forecasts every day once, day-ahead from local midnight, and the choice
for a day sees only the days before it (``flexopt.forecasts.evaluation.choice_study``, the rule of
``forecast_series``). Per series it prints, over the blocks: how far the automatic forecast is below the best naive
baseline in hindsight (mean and worst block: the target is >= 10 %), how far the best single model in hindsight is
(what an oracle that knew the fortnight in advance would get), and what the choice costs against that oracle.

Bundled series: the French household's load and PV (examples/data/household_fr_2024_30min.csv, at its 30 min and
as hourly means; 15 min by interpolation), the Ontario household (hourly), the SERF East PV array with and
without its site's irradiance (15 min and hourly means). ``--system50 DIR`` adds the same array's 2011-2013 record
from a pvanalytics checkout (``pvanalytics/data/system_50_ac_power_2_full_DST.parquet`` and its ``_psm3`` file),
not bundled for its size.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_forecasts import markdown, resolutions

from flexopt.forecasts.api import BACKTEST_DAYS
from flexopt.forecasts.evaluation import choice_study, load_household_csv

DATA = Path(__file__).resolve().parents[1] / "examples/data"
BLOCK_DAYS = 14
TRAIN_DAYS = 28


def bundled() -> list[tuple]:
    """(name, kind, local tz, history kW, regressors or None) for every bundled real series."""
    household = load_household_csv(DATA / "household_fr_2024_30min.csv")
    out = []
    for res, series in resolutions(household["load_kw"]).items():
        out.append((f"FR household load, {res}", "load", "Europe/Paris", series, None))
    for res, series in resolutions(household["pv_kw"]).items():
        out.append((f"FR household PV, no weather, {res}", "pv", "Europe/Paris", series, None))
    ontario = pd.read_csv(DATA / "household_ontario_2011_hourly.csv", index_col="timestamp_utc", parse_dates=True)
    out.append(("Ontario household load, 60 min", "load", "America/Toronto", ontario["load_kw"], None))
    serf = pd.read_csv(DATA / "pv_serf_east_2016_15min.csv", index_col="timestamp_utc", parse_dates=True)
    weather = serf[["ghi_w_per_m2"]].rename(columns={"ghi_w_per_m2": "irradiance_w_per_m2"})
    pv = serf["ac_power_w"] / 1000.0
    for res, series in {"15 min": pv, "60 min": pv.resample("60min").mean()}.items():
        out.append((f"SERF East PV, no weather, {res}", "pv", "America/Denver", series, None))
        out.append((f"SERF East PV, irradiance, {res}", "pv", "America/Denver", series, weather))
    return out


def system50(folder: Path) -> list[tuple]:
    power = pd.read_parquet(folder / "system_50_ac_power_2_full_DST.parquet")
    pv = pd.Series(power["ac_power_2"].to_numpy() / 1000.0,
                   index=pd.DatetimeIndex(power["measured_on"]).tz_convert("UTC"))
    psm3 = pd.read_parquet(folder / "system_50_ac_power_2_full_DST_psm3.parquet")
    weather = pd.DataFrame({"irradiance_w_per_m2": psm3["ghi"].to_numpy()},
                           index=pd.DatetimeIndex(psm3["index"]).tz_convert("UTC"))
    hourly = pv.resample("60min").mean()
    return [("SERF East PV 2011-13, no weather, 15 min", "pv", "Etc/GMT+7", pv, None),
            ("SERF East PV 2011-13, no weather, 60 min", "pv", "Etc/GMT+7", hourly, None),
            ("SERF East PV 2011-13, irradiance, 60 min", "pv", "Etc/GMT+7", hourly, weather)]


def blocks(series: pd.Series, kind: str, tz: str) -> dict[str, tuple[str, str]]:
    known = series.dropna().index.tz_convert(tz)
    first = known[0].normalize().tz_localize(None) + pd.Timedelta(days=TRAIN_DAYS + BACKTEST_DAYS[kind] + 1)
    last = known[-1].normalize().tz_localize(None) - pd.Timedelta(days=1)
    out = {}
    while first + pd.Timedelta(days=BLOCK_DAYS - 1) <= last:
        end = first + pd.Timedelta(days=BLOCK_DAYS - 1)
        out[first.strftime("%Y-%m-%d")] = (first.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d"))
        first = end + pd.Timedelta(days=1)
    return out


def study(case: tuple) -> dict:
    name, kind, tz, series, exog = case
    table = choice_study(series, kind, blocks(series, kind, tz), tz, train_days=TRAIN_DAYS, exog_history=exog)
    auto = 100 * (1 - table["combination_mae"] / table["best_naive_mae"])
    oracle = 100 * (1 - table["best_single_mae"] / table["best_naive_mae"])
    return {"series": name, "blocks": len(table), "auto_vs_naive_mean_pct": auto.mean(),
            "auto_vs_naive_worst_pct": auto.min(), "blocks_at_10_pct": f"{int((auto >= 10).sum())}/{len(table)}",
            "oracle_vs_naive_mean_pct": oracle.mean(),
            "auto_above_oracle_pct": float(np.mean(100 * (table["combination_mae"] / table["best_single_mae"] - 1))),
            "picking_one_above_oracle_pct": float(np.mean(100 * (table["picked_single_mae"]
                                                                  / table["best_single_mae"] - 1)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--system50", type=Path, help="pvanalytics/data folder with the 2011-2013 SERF East files")
    args = parser.parse_args()
    cases = bundled() + (system50(args.system50) if args.system50 else [])
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(study, cases))
    print(markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
