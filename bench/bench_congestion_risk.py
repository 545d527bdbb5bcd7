"""Backtest: congestion-point limits planned on the point forecast vs on a load quantile (risk.congestion_quantile).

Run: .venv/bin/python bench/bench_congestion_risk.py [--days 28] [--homes 8] [--quantile 0.9]

A congestion point feeds ``--homes`` homes. Each home's uncontrolled load is the example household's measured
load from another week (home k is the series shifted by 7k + k days: real, weakly correlated loads, scaled
0.8-1.2) given as ``kind: history``, so flexopt forecasts it; each home has a 7.4 kW wallbox whose car arrives at
17:00 and needs 9 kWh by 23:30, and the energy is cheaper from 18:00 to 21:00, so the optimiser wants the cars
in the evening peak. The limit is set so that the cars fit under it on an average evening.

For every day the real scheduler plans the day three times: on the point forecast, and with the congestion
quantile where the homes' margins add as independent errors (root sum of squares, the default) or as
comonotone ones (plain sum). Each plan is then checked against the realised load (the cars as planned, the
homes as measured): intervals and energy above the limit, the plan's cost (at the point forecast, as the
scheduler prices it) and the energy the cars did not get.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_forecasts import markdown

from flexopt.config.loader import LoadedPortfolio
from flexopt.config.portfolio import Portfolio
from flexopt.data.forecasting import default_forecaster
from flexopt.data.inputs import Horizon, Inputs
from flexopt.forecasts.evaluation import load_household_csv
from flexopt.scheduling.problem import schedule

TZ = "Europe/Paris"
ROOT = Path(__file__).resolve().parents[1]


def homes(n: int) -> dict[str, pd.Series]:
    """``n`` household loads (kW, 30 min) from the example series shifted by whole weeks plus a day."""
    load = load_household_csv(ROOT / "examples/data/household_fr_2024_30min.csv")["load_kw"]
    rng = np.random.default_rng(0)
    out = {}
    for k in range(n):
        shift = pd.Timedelta(days=7 * k + k)
        moved = load.copy()
        moved.index = moved.index + shift
        out[f"home{k}"] = moved * rng.uniform(0.8, 1.2)
    return out


def portfolio(folder: Path, loads: dict[str, pd.Series], limit_kw: float, quantile: float | None,
              errors: str = "independent") -> LoadedPortfolio:
    sources, sites = {}, []
    for name, series in loads.items():
        path = folder / f"{name}.csv"
        if not path.exists():
            pd.DataFrame({"timestamp": series.index.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "load_kw": series.to_numpy()}).to_csv(path, index=False)
        sources[name] = {"path": str(path), "column": "load_kw", "unit": "kW", "kind": "history"}
        sites.append({"id": name, "congestion_point": "cp", "assets": [
            {"id": f"{name}-load", "type": "load", "power_kw": {"source": name}},
            {"id": f"{name}-ev", "type": "ev_charger", "max_charge_kw": 7.4, "phases": 1, "min_current_a": 0,
             "sessions": [{"arrival_local": "17:00", "departure_local": "23:30", "energy_kwh": 9.0}]}]})
    price = folder / "price.csv"
    if not price.exists():
        hours = pd.date_range("2024-01-01", "2025-12-31", freq="60min", tz=TZ)
        value = np.where((hours.hour >= 18) & (hours.hour < 21), 0.12, 0.25)
        pd.DataFrame({"timestamp": hours.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "price": value}).to_csv(price, index=False)
    sources["price"] = {"path": str(price), "column": "price", "unit": "EUR/kWh"}
    raw = {"portfolio": {"name": "risk", "timezone": TZ, "resolution_min": 30}, "data_sources": sources,
           "tariff": {"import_price_eur_per_kwh": {"source": "price"}}, "sites": sites,
           "congestion_points": [{"id": "cp", "import_limit_kw": limit_kw}],
           "risk": {"congestion_quantile": quantile, "congestion_errors": errors} if quantile else {}}
    return LoadedPortfolio(portfolio=Portfolio.model_validate(raw), path=folder / "p.yaml", files=[], base_dir=folder)


class CachedForecaster:
    """Forecast each home once per day (with both quantiles) and serve both plans from it."""

    def __init__(self, quantile: float) -> None:
        self.levels = (quantile, round(1 - quantile, 10))
        self.cache: dict = {}

    def __call__(self, name, history, index, **kwargs):
        key = (name, index[0])
        if key not in self.cache:
            self.cache[key] = default_forecaster(name, history, index, **{**kwargs, "quantiles": self.levels})
        return self.cache[key]


def realised(result, loads: dict[str, pd.Series], horizon: Horizon, limit_kw: float) -> dict:
    """The plan's cars against the measured homes: breaches of the limit and the energy the cars missed."""
    plan = result.schedule
    ev = plan[plan.asset_type == "ev_charger"].groupby("interval_start")["power_kw"].sum().reindex(horizon.index)
    actual = sum(s.reindex(horizon.index).interpolate(limit_direction="both") for s in loads.values())
    net = actual.to_numpy() + ev.to_numpy()
    over = np.clip(net - limit_kw, 0.0, None)
    missed = sum(v["amount"] for v in result.kpis["violations"]["list"] if v["kind"] == "ev_energy")
    return {"intervals_over": int((over > 1e-6).sum()), "kwh_over": float(over.sum() * horizon.dt_h),
            "max_over_kw": float(over.max()), "planned_cost_eur": result.kpis["cost_eur"], "ev_missed_kwh": missed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--first", default="2025-01-30")
    parser.add_argument("--homes", type=int, default=8)
    parser.add_argument("--quantile", type=float, default=0.9)
    args = parser.parse_args()
    loads = homes(args.homes)
    days = [dt.date.fromisoformat(args.first) + dt.timedelta(days=i) for i in range(args.days)]
    evening = [s[(s.index.tz_convert(TZ).hour >= 17) & (s.index.tz_convert(TZ).hour < 23)].mean()
               for s in loads.values()]
    limit = round(float(sum(evening)) + 0.45 * 7.4 * args.homes, 1)  # the cars fit on an average evening
    forecaster = CachedForecaster(args.quantile)
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for day in days:
            horizon = Horizon.for_day(day, TZ, 30)
            plans = (("point", None, ""), (f"q{args.quantile:g} independent", args.quantile, "independent"),
                     (f"q{args.quantile:g} comonotone", args.quantile, "comonotone"))
            for label, q, errors in plans:
                loaded = portfolio(Path(tmp), loads, limit, q, errors)
                inputs = Inputs(loaded, horizon, forecaster=forecaster)
                rows.append({"day": day, "plan": label, **realised(schedule(loaded, inputs), loads, horizon, limit)})
    table = pd.DataFrame(rows)
    summary = table.groupby("plan").agg(
        days=("day", "count"), days_with_breach=("intervals_over", lambda x: int((x > 0).sum())),
        intervals_over=("intervals_over", "sum"), kwh_over=("kwh_over", "sum"), max_over_kw=("max_over_kw", "max"),
        planned_cost_eur=("planned_cost_eur", "sum"), ev_missed_kwh=("ev_missed_kwh", "sum"))
    print(f"{args.homes} homes, limit {limit:g} kW, {len(days)} days from {days[0]}, 30-min intervals "
          f"({time.perf_counter() - t0:.0f} s)\n")
    print(markdown(summary.reset_index()))


if __name__ == "__main__":
    main()
