"""Every example portfolio, scheduled on days that stress different physics, passes the independent check.

Days: summer 2024-06-25 (the demo day), negative prices 2024-07-04, winter 2024-03-11 (early March with ten days
of household history before it), spring DST 2024-03-31 (92 quarter-hours) and autumn DST 2024-10-27 (100). The
bundled prices end 2024-07-29: the autumn day runs on a copy of the examples in tmp_path whose price file is
extended by a clearly labelled copy of the real prices 364 days earlier (same weekday, 2023-10-29 was the autumn
DST day too). The bundled data are never changed. Intraday: from 12:00 on the negative-price day, then again from
the same interval into the same store (24 h each, across midnight). Rolling horizons: 24 h from 14:00 across both
DST nights, 48 h from a midnight, and a day whose next day has no prices (shortened to its end).

all_pilots (every device of the six files) runs on every day; each pilot file alone (its own tariff, time zone and
congestion points) on the summer, negative-price and autumn DST days. Run time: see docs/check.md.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from flexopt.check import check_run
from flexopt.check.report import breach_runs
from flexopt.config.loader import load_portfolio
from flexopt.runs.intraday import initial_state_from_store
from flexopt.runs.runner import RunRequest, run_schedule

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PILOTS = ("abadiano", "guadalix", "bilbao", "benidorm", "seville", "france")
SUMMER, NEGATIVE, WINTER = dt.date(2024, 6, 25), dt.date(2024, 7, 4), dt.date(2024, 3, 11)
SPRING_DST, AUTUMN_DST = dt.date(2024, 3, 31), dt.date(2024, 10, 27)
PRICE_FILE = "be_day_ahead_prices_2022_2024_hourly.csv"
EXTENDED_PRICE_FILE = "TEST_ONLY_be_prices_extended_with_2023_shifted_364_days.csv"
SHIFT = pd.Timedelta(days=364)

CASES = ([("all_pilots", d) for d in (SUMMER, NEGATIVE, WINTER, SPRING_DST, AUTUMN_DST)]
         + [(p, d) for d in (SUMMER, NEGATIVE, AUTUMN_DST) for p in PILOTS])


@pytest.fixture(scope="module")
def extended_examples(tmp_path_factory) -> Path:
    """A copy of examples/ whose price series goes on after 2024-07-29 with the price of 364 days earlier."""
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(EXAMPLES / "data", root / "data")
    prices = pd.read_csv(EXAMPLES / "data" / PRICE_FILE, dtype={"time_local": str})
    real = prices["price_eur_per_kwh"].notna()
    last_real = pd.Timestamp(prices.loc[real, "time_local"].iloc[-1])
    # occurrence k of a wall-clock hour (the repeated DST hour appears twice) takes occurrence k a year before
    prices["k"] = prices.groupby("time_local").cumcount()
    source = prices.set_index(["time_local", "k"])["price_eur_per_kwh"]
    later = pd.to_datetime(prices["time_local"]) > last_real
    earlier = (pd.to_datetime(prices.loc[later, "time_local"]) - SHIFT).dt.strftime("%Y-%m-%d %H:%M:%S")
    prices.loc[later, "price_eur_per_kwh"] = source.reindex(list(zip(earlier, prices.loc[later, "k"],
                                                                     strict=True))).to_numpy()
    prices["provenance"] = "ENTSO-E day-ahead price as published"
    prices.loc[later, "provenance"] = "TEST ONLY: not real, the price of the same wall-clock hour 364 days earlier"
    prices.drop(columns="k").to_csv(root / "data" / EXTENDED_PRICE_FILE, index=False)
    for name in ("all_pilots", *PILOTS):
        text = (EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8")
        (root / f"{name}.yaml").write_text(text.replace(PRICE_FILE, EXTENDED_PRICE_FILE), encoding="utf-8")
    return root


def _portfolio(name: str, day: dt.date, extended: Path) -> Path:
    return (extended if day > dt.date(2024, 7, 29) else EXAMPLES) / f"{name}.yaml"


def _unreported(portfolio: Path, run_dir: Path) -> list[str]:
    result = check_run(portfolio, run_dir)
    tz = result.horizon.tz
    return [f"{r.kind} {r.subject} {r.start.tz_convert(tz):%Y-%m-%d %H:%M} x{r.intervals}: {r.amount:.4g} {r.unit}"
            if r.start is not None else f"{r.kind} {r.subject}: {r.amount:.4g} {r.unit} ({r.note})"
            for r in breach_runs(result.unreported, result.horizon)]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "day"), CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_day_ahead_run_passes_the_physics_check(name, day, extended_examples, tmp_path):
    portfolio = _portfolio(name, day, extended_examples)
    outcome = run_schedule(RunRequest(portfolio_path=portfolio, kind="day-ahead", day=day, out=tmp_path / "run"))
    breaches = _unreported(portfolio, outcome.directory)
    assert not breaches, f"{len(breaches)} unreported breach runs:\n" + "\n".join(breaches)


@pytest.mark.slow
def test_winter_day_forecasts_have_a_week_of_history():
    """The winter day is late enough for the history forecasters (the household series starts 2024-02-28)."""
    household = pd.read_csv(EXAMPLES / "data" / "household_fr_2024_30min.csv", parse_dates=["timestamp_utc"])
    valid = household.dropna(subset=["load_w", "pv_w"])
    midnight = pd.Timestamp(WINTER, tz="Europe/Madrid").tz_convert("UTC")
    days = valid.loc[valid["timestamp_utc"] < midnight, "timestamp_utc"].dt.date.nunique()
    assert days >= 7


@pytest.fixture(scope="module")
def intraday_runs(tmp_path_factory) -> list[Path]:
    """Day-ahead, intraday from 12:00, intraday again from 12:00, all into one store (as cron does)."""
    store = tmp_path_factory.mktemp("store")
    portfolio = EXAMPLES / "all_pilots.yaml"
    loaded = load_portfolio(portfolio)
    runs = [run_schedule(RunRequest(portfolio_path=portfolio, kind="day-ahead", day=NEGATIVE, store=store)).directory]
    start = dt.datetime(2024, 7, 4, 12, 0, tzinfo=loaded.portfolio.tz)
    for _ in range(2):
        state, source, warnings = initial_state_from_store(loaded, store, NEGATIVE, start)
        assert not warnings  # every state at 12:00 is in a stored run, also for the re-run
        runs.append(run_schedule(RunRequest(portfolio_path=portfolio, kind="intraday", day=NEGATIVE, start=start,
                                            store=store, initial_state=state, state_source=source,
                                            state_warnings=warnings)).directory)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("which", [1, 2], ids=["intraday", "intraday-rerun"])
def test_intraday_run_passes_the_physics_check(which, intraday_runs):
    breaches = _unreported(EXAMPLES / "all_pilots.yaml", intraday_runs[which])
    assert not breaches, f"{len(breaches)} unreported breach runs:\n" + "\n".join(breaches)


# Rolling horizons on all_pilots: 24 h from 14:00 across both DST nights, two whole days from a midnight, and an
# afternoon whose next day has no prices yet (the horizon is shortened to the day's end, and says so).
ROLLING = [("intraday", dt.datetime(2024, 10, 26, 14), None, 96),
           ("intraday", dt.datetime(2024, 3, 30, 14), None, 96),
           ("day-ahead", dt.datetime(2024, 6, 25), 48.0, 192),
           ("intraday", dt.datetime(2024, 7, 29, 14), None, 40)]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "start", "hours", "intervals"), ROLLING,
                         ids=[f"{k}-{s:%Y-%m-%dT%H}" for k, s, _, _ in ROLLING])
def test_rolling_horizon_run_passes_the_physics_check(kind, start, hours, intervals, extended_examples, tmp_path):
    portfolio = _portfolio("all_pilots", start.date() + dt.timedelta(days=1), extended_examples)
    if start.date() == dt.date(2024, 7, 29):
        portfolio = EXAMPLES / "all_pilots.yaml"  # the bundled prices end that day
    local = start.replace(tzinfo=load_portfolio(portfolio).portfolio.tz)
    outcome = run_schedule(RunRequest(portfolio_path=portfolio, kind=kind, day=start.date(), horizon_h=hours,
                                      start=local if kind == "intraday" else None, out=tmp_path / "run"))
    horizon = json.loads((outcome.directory / "run.json").read_text())["horizon"]
    assert horizon["intervals"] == intervals and horizon["shortened"] == (intervals == 40)
    breaches = _unreported(portfolio, outcome.directory)
    assert not breaches, f"{len(breaches)} unreported breach runs:\n" + "\n".join(breaches)
