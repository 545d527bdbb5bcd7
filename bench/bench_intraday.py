"""Intraday benchmark: one `flexopt schedule intraday` run of the combined pilots, stage by stage, in-process.

The day-ahead run of the day is written to a temporary store first (as the day before would have); then intraday
runs from ``--from`` with the default 24-hour horizon, each reading its start states from the store, through
:func:`flexopt.runs.runner.run_schedule` (what the command line runs). Timed from the call, so Python start-up and
imports are not in the figures (the command line adds them: see docs/benchmarks.md).

* **cold**: each run in a fresh Python process that has imported flexopt and nothing else (a cron job);
* **warm**: further runs in one process that already ran the day-ahead and an intraday run (a long-lived process,
  e.g. a replay or a service calling the API), where what was parsed or forecast before is reused.

Stages (kpis.json ``timings_s``): **state** start states from the store, **load** portfolio file and every input
file checked, **inputs** series read and history forecast on the horizon, **build** the model (its arrays),
**translate** the arrays to HiGHS (one model per block), **solve**, **extract** schedule frames and KPIs,
**write** the run's files; **total** from the call to the run in place. The objective is printed so that a change
can be seen not to move it.

    .venv/bin/python bench/bench_intraday.py                   # 3 cold and 3 warm runs from 2024-06-25 14:00
    .venv/bin/python bench/bench_intraday.py --cold 5 --warm 0 --from 2024-06-25T20:00
    .venv/bin/python bench/bench_intraday.py --horizon-h 1            # to the end of the day only (40 intervals)
    .venv/bin/python bench/bench_intraday.py --profile         # cProfile of one warm run, top 30 by cumulative time
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("state", "load", "inputs", "correction", "build", "translate", "solve", "extract", "write", "total")

def intraday_request(portfolio: Path, store: Path, start: dt.datetime, horizon_h: float | None = None):
    """The request `flexopt schedule intraday PORTFOLIO --from START --store STORE [--horizon-h H]` makes: states
    and forecast corrections from the store's telemetry database when it has one (``--telemetry``)."""
    from flexopt.config.loader import load_portfolio
    from flexopt.runs.correction import correct_forecasts
    from flexopt.runs.intraday import start_states
    from flexopt.runs.runner import RunRequest
    from flexopt.telemetry import open_db, resolve_url

    local = start.replace(tzinfo=load_portfolio(portfolio).portfolio.tz)
    db = open_db(resolve_url(None, store)) if (store / "telemetry.sqlite3").is_file() else None
    age = dt.timedelta(minutes=30)
    return RunRequest(portfolio_path=portfolio, kind="intraday", day=local.date(), start=local, store=store,
                      horizon_h=horizon_h,
                      resolve_state=lambda loaded: start_states(loaded, store, local.date(), local, db=db,
                                                                max_age=age if db else None),
                      correct=lambda loaded, inputs: correct_forecasts(loaded, inputs, db))


def fill_telemetry(portfolio: Path, store: Path, start: dt.datetime) -> int:
    """Rounds as dispatch records them for the hour before ``start``: every asset with an endpoint measured at
    1.1 x its day-ahead power, batteries at 55 % SoC, into the store's telemetry database. The readings stored."""
    from flexopt.config.loader import load_portfolio
    from flexopt.operations import dispatch_folder, find_schedule_run, write_round
    from flexopt.operations.schedules import rows_at
    from flexopt.runs.files import jsonable
    from flexopt.telemetry import import_folder, open_db, resolve_url

    loaded = load_portfolio(portfolio)
    name, local = loaded.portfolio.portfolio.name, start.replace(tzinfo=loaded.portfolio.tz)
    run = find_schedule_run(store, name, local.date())
    folder = dispatch_folder(store, name, local.date())
    readings = 0
    for k in range(4):
        at = (local - dt.timedelta(minutes=60 - 15 * k - 7)).astimezone(dt.UTC)
        rows = rows_at(run.frame, at)
        assets = {}
        for site, asset in loaded.portfolio.assets():
            if asset.endpoint is None:
                continue
            row = rows[rows["asset_id"] == asset.id]
            power = float(row["power_kw"].iloc[0]) if len(row) else 0.0
            tele = {"asset_id": asset.id, "at": at, "connected": True, "quality": "good", "notes": "", "extra": {},
                    "active_power_kw": 1.1 * power, **({"soc_pct": 55.0} if asset.type == "battery" else {})}
            assets[asset.id] = {"asset_type": asset.type, "site_id": site.id, "devices": 1,
                                "scheduled_power_kw": power, "telemetry": tele, "command": None}
            readings += 1
        record = {"at": at, "interval_start": at - dt.timedelta(minutes=7), "summary": {"assets": len(assets)},
                  "assets": assets, "alarms": []}
        write_round(folder, jsonable(record), at)
    db = open_db(resolve_url(None, store))
    try:
        import_folder(db, name, local.date(), folder)
    finally:
        db.close()
    return readings


def one_run(portfolio: Path, store: Path, start: dt.datetime, horizon_h: float | None = None) -> dict:
    from flexopt.runs.runner import run_schedule

    out = run_schedule(intraday_request(portfolio, store, start, horizon_h))
    return {**out.timings_s, "objective": out.kpis["solver"]["objective"],
            "intervals": int(out.result.schedule["interval_start"].nunique())}


def cold_run(portfolio: str, store: Path, start: str, horizon_h: float | None) -> dict:
    """One run in a fresh process; its imports happen before the clock starts."""
    extra = [] if horizon_h is None else ["--horizon-h", str(horizon_h)]
    proc = subprocess.run([sys.executable, __file__, "--portfolio", portfolio, "--from", start, "--one-run",
                           str(store), *extra], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def show(label: str, rows: list[dict]) -> None:
    if not rows:
        return
    objectives = ", ".join(sorted({f"{r['objective']:.6f}" for r in rows}))
    print(f"\n{label}: {len(rows)} runs, {rows[0]['intervals']} intervals, objective {objectives}")
    print("  " + " ".join(f"{s:>10}" for s in STAGES))
    for r in rows:
        print("  " + " ".join(f"{r.get(s, float('nan')):10.3f}" for s in STAGES))
    print("  " + " ".join(f"{statistics.median(r.get(s, float('nan')) for r in rows):10.3f}" for s in STAGES)
          + "   (median)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portfolio", default=str(ROOT / "examples" / "all_pilots.yaml"))
    ap.add_argument("--from", dest="start", default="2024-06-25T14:00", help="local start of the intraday runs")
    ap.add_argument("--cold", type=int, default=3, help="runs, each in a fresh process")
    ap.add_argument("--warm", type=int, default=3, help="runs in this process after a first one")
    ap.add_argument("--horizon-h", type=float, default=None, help="as the command's option (default 24 h)")
    ap.add_argument("--profile", action="store_true", help="cProfile one warm run instead")
    ap.add_argument("--telemetry", action="store_true",
                    help="states and forecast corrections from a telemetry database of the hour before the start")
    ap.add_argument("--one-run", metavar="STORE", help=argparse.SUPPRESS)  # what a cold run's process does
    args = ap.parse_args(argv)
    start, portfolio = dt.datetime.fromisoformat(args.start), Path(args.portfolio)

    import statsmodels.regression.linear_model
    import statsmodels.regression.quantile_regression
    import statsmodels.tsa.holtwinters  # imported by the first fit (flexopt imports it lazily)

    import flexopt.forecasts.api
    import flexopt.scheduling.problem  # imports are not part of a run's time

    del statsmodels

    del flexopt
    from flexopt.runs.runner import RunRequest, run_schedule

    if args.one_run:
        print(json.dumps(one_run(portfolio, Path(args.one_run), start, args.horizon_h)))
        return 0
    store = Path(tempfile.mkdtemp(prefix="bench-intraday-")) / "runs"
    t0 = time.perf_counter()
    run_schedule(RunRequest(portfolio_path=portfolio, kind="day-ahead", day=start.date(), store=store))
    print(f"day-ahead of {start.date()} written in {time.perf_counter() - t0:.2f} s")
    if args.telemetry:
        print(f"telemetry: {fill_telemetry(portfolio, store, start)} readings of the hour before the start")

    show("cold (a fresh process per run, imports excluded)",
         [cold_run(args.portfolio, store, args.start, args.horizon_h) for _ in range(args.cold)])
    if not (args.warm or args.profile):
        return 0
    one_run(portfolio, store, start, args.horizon_h)  # the first intraday run of this process
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(run_schedule, intraday_request(portfolio, store, start, args.horizon_h))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        return 0
    show("warm (one process, after a first intraday run)",
         [one_run(portfolio, store, start, args.horizon_h) for _ in range(args.warm)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
