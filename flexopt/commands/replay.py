"""``flexopt replay PORTFOLIO --date D``: a whole operating day on a compressed, simulated clock, through the code
of a live day: the simulators of ``flexopt simulate``, the day-ahead run, ``flexopt dispatch``'s rounds, and
``flexopt schedule intraday`` every hour as cron starts it, all on one injected clock. Ends with the day summary
(JSON and printed) and the HTML report. ``flexopt report RUN_DIR`` draws the same for any schedule run.

Exit codes: 0 the day was replayed (alarms are in the summary), 2 invalid input (portfolio, date, perturbation file,
options), 3 the day-ahead run found no schedule.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import re
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from flexopt.commands.args import parse_day
from flexopt.commands.exit_codes import EXIT_INVALID
from flexopt.commands.portfolio_cmds import load_or_exit

LEAD_MIN = 5.0  # cron starts an intraday run this long before its first interval (":55" for ":00")


def parse_every(text: str) -> dt.timedelta:
    """``1h``, ``30min``, ``90m``, ``2h30m``: a duration of whole minutes."""
    match = re.fullmatch(r"\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*(?:m|min))?\s*", text or "")
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; use e.g. 1h, 30min, 2h30m")
    minutes = int(match.group(1) or 0) * 60 + int(match.group(2) or 0)
    if minutes <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return dt.timedelta(minutes=minutes)


def _clock_time(text: str, option: str) -> dt.time | None:
    if text in ("24:00", ""):
        return None
    try:
        hours, minutes = text.split(":")
        return dt.time(int(hours), int(minutes))
    except ValueError:
        typer.echo(f'{option}: {text!r} is not a local time "HH:MM"', err=True)
        raise typer.Exit(EXIT_INVALID) from None


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay_cmd(
        portfolio: Path = typer.Argument(..., help="portfolio YAML"),
        date: str = typer.Option(..., "--date", help="local day to replay, YYYY-MM-DD"),
        speed: float = typer.Option(600.0, "--speed", min=1.0, help="simulated seconds per wall second"),
        perturb: Path | None = typer.Option(None, "--perturb", help="YAML list of perturbations "
                                            '({at: "HH:MM", asset: ID, soc_pct|temp_c|offline_min|pv_scale|'
                                            "ev_arrival_delay_min: x})"),
        intraday_every: str = typer.Option("1h", "--intraday-every", help="intraday runs every this long "
                                           "(e.g. 1h, 30min), each started 5 min before its first interval"),
        store: Path = typer.Option(Path("runs"), "--store", help="where runs, rounds and the telemetry database go"),
        start: str = typer.Option("00:00", "--from", help="local time the replay starts (default the day's start)"),
        until: str = typer.Option("24:00", "--until", help="local time the replay stops (default the day's end)"),
        settle_s: float = typer.Option(5.0, "--settle-s", min=0.0, help="simulated seconds between sending and "
                                       "reading back"),
        reoptimise_deviation_kw: float | None = typer.Option(
            None, "--reoptimise-deviation-kw", min=0.0, help="as flexopt dispatch: re-run intraday when the total "
            "deviation is above this for --reoptimise-after-rounds rounds"),
        reoptimise_after_rounds: int = typer.Option(3, "--reoptimise-after-rounds", min=1),
        reoptimise_min_interval_min: float = typer.Option(60.0, "--reoptimise-min-interval-min", min=0.0),
        report: bool = typer.Option(True, "--report/--no-report", help="write the HTML report of the day"),
    ) -> None:
        """Replay a whole operating day on a compressed clock: simulators, day-ahead, dispatch every interval,
        intraday every hour, perturbations; then the day summary (JSON, printed) and the HTML report."""
        from flexopt.replay.perturbations import PerturbationError, read_perturbations

        day = parse_day(date, "--date")
        try:
            every = parse_every(intraday_every)
        except ValueError as exc:
            typer.echo(f"--intraday-every: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        loaded = load_or_exit(portfolio)
        tz = loaded.portfolio.tz
        first, last = _clock_time(start, "--from"), _clock_time(until, "--until")
        begin = dt.datetime.combine(day, first or dt.time(), tzinfo=tz)
        end = (dt.datetime.combine(day, last, tzinfo=tz) if last is not None
               else dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz))
        if end <= begin:
            typer.echo(f"--until {until} is not after --from {start}", err=True)
            raise typer.Exit(EXIT_INVALID)
        try:
            perturbations = read_perturbations(perturb, loaded) if perturb is not None else []
        except PerturbationError as exc:
            typer.echo(f"--perturb: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        triggers = None
        if reoptimise_deviation_kw is not None:
            from flexopt.operations.triggers import TriggerOptions

            triggers = TriggerOptions(deviation_kw=reoptimise_deviation_kw, after_rounds=reoptimise_after_rounds,
                                      min_interval_min=reoptimise_min_interval_min)
        replay(portfolio, loaded, day=day, begin=begin, end=end, speed=speed, every=every, store=store,
               perturbations=perturbations, settle_s=settle_s, triggers=triggers, html=report, console=Console())

    @app.command("report")
    def report_cmd(
        run_dir: Path = typer.Argument(..., help="a schedule run folder (flexopt schedule)"),
        out: Path | None = typer.Option(None, "--out", help="HTML file (default RUN_DIR/report.html)"),
    ) -> None:
        """Draw a schedule run as a self-contained HTML page (works offline): per site net power against its
        limits, battery SoC, EV energy, temperatures against the comfort band, prices."""
        from flexopt.replay.report import ReportError, run_report

        try:
            path = run_report(run_dir, out)
        except ReportError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        typer.echo(f"report written to {path}")


def replay(portfolio: Path, loaded: Any, *, day: dt.date, begin: dt.datetime, end: dt.datetime, speed: float,
           every: dt.timedelta, store: Path, perturbations: list, settle_s: float, triggers: Any, html: bool,
           console: Console) -> dict:
    """The replay itself; returns the day summary (also written as JSON beside the day's runs)."""
    import pandas as pd

    from flexopt.adapters.clock import SimClock
    from flexopt.commands.schedule import execute_run
    from flexopt.config.credentials import register_portfolio_secrets
    from flexopt.operations.schedules import load_schedule_run
    from flexopt.replay.summary import day_summary, print_summary, write_summary
    from flexopt.replay.world import build_simulation
    from flexopt.runs.runner import RunRequest
    from flexopt.runs.store import StorageError, check_writable

    try:
        check_writable(store, "--store")
    except StorageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    wall0 = time.perf_counter()
    quiet = Console(file=io.StringIO())  # the runs' KPI tables: the summary says what matters
    until = "24:00" if end.date() > begin.date() and f"{end:%H:%M}" == "00:00" else f"{end:%H:%M}"
    console.print(f"replay of {day.isoformat()} from {begin:%H:%M} to {until} at {speed:g}x", highlight=False)
    day_ahead = execute_run(RunRequest(portfolio_path=portfolio, kind="day-ahead", day=day, store=store), quiet)
    console.print(f"day-ahead: {day_ahead.directory}", highlight=False, soft_wrap=True)
    clock = SimClock(begin, speed, held=True)  # released when the first round is due
    try:
        sim = build_simulation(loaded, clock, load_schedule_run(day_ahead.directory).frame, day, perturbations,
                               states=pd.read_parquet(day_ahead.directory / "states.parquet"), central=False)
    except ValueError as exc:
        typer.echo(f"cannot simulate the portfolio: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    exported = {k: v for k, v in sim.tokens_to_export().items() if not os.environ.get(k)}
    os.environ.update(exported)  # the simulated devices' secrets, as `flexopt simulate` prints them
    try:
        register_portfolio_secrets(loaded.portfolio)
        events = asyncio.run(_day(portfolio, loaded, sim, clock, begin=begin, end=end, every=every, store=store,
                                  perturbations=perturbations, settle_s=settle_s, triggers=triggers, console=console,
                                  quiet=quiet))
    finally:
        for key in exported:
            os.environ.pop(key, None)
    wall_s = time.perf_counter() - wall0
    summary = day_summary(loaded, store, day, begin, end, day_ahead.directory, events, wall_s=wall_s, speed=speed)
    folder = write_summary(summary, store, loaded, day)
    print_summary(summary, console)
    console.print(f"summary written to {folder / 'summary.json'}", highlight=False, soft_wrap=True)
    if html:
        from flexopt.replay.report import replay_report

        path = replay_report(summary, folder / "report.html")
        console.print(f"report written to {path}", highlight=False, soft_wrap=True)
    return summary


async def _day(portfolio: Path, loaded: Any, sim: Any, clock: Any, *, begin: dt.datetime, end: dt.datetime,
               every: dt.timedelta, store: Path, perturbations: list, settle_s: float, triggers: Any,
               console: Console, quiet: Console) -> dict:
    """Simulators up; dispatch's rounds, cron's intraday runs and the perturbations on the one clock; down."""
    import flexopt.operations as ops
    from flexopt.adapters.clock import using
    from flexopt.commands.dispatch import _session
    from flexopt.commands.reoptimise import Reoptimise
    from flexopt.commands.telemetry import open_or_exit
    from flexopt.replay.world import run_perturbations
    from flexopt.telemetry import RoundSync

    pf = loaded.portfolio
    events: dict[str, list] = {"intraday": [], "perturbations": [], "reoptimisations": []}
    database = open_or_exit(None, store)
    reoptimise = (Reoptimise(portfolio, loaded, triggers, store=store, clock=clock, console=console,
                             run_console=quiet) if triggers is not None else None)
    with using(clock):
        with clock.work():  # the simulators start before the day does
            await sim.start()
        try:
            tasks = [
                asyncio.create_task(_cron(portfolio, loaded, clock, begin, end, every, store, events, console, quiet)),
                asyncio.create_task(run_perturbations(sim, clock, perturbations, begin.date(), pf.tz,
                                                      lambda line: _note(events, clock, line, console))),
            ]
            options = ops.RoundOptions(settle_s=settle_s)
            clock.release()
            await _session(pf, store=store, run=None, at=None, once=False, duration_s=None, options=options,
                           connect_wait_s=5.0 if _has_ocpp(pf) else 0.0, console=quiet,
                           telemetry=RoundSync(database, pf.portfolio.name), clock=clock, reoptimise=reoptimise,
                           until=end)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await sim.stop()
            database.close()
    if reoptimise is not None:
        events["reoptimisations"] = reoptimise.runs
    return events


def _has_ocpp(pf: Any) -> bool:
    return any(a.endpoint is not None and a.endpoint.protocol == "ocpp" for _, a in pf.assets())


def _note(events: dict, clock: Any, line: str, console: Console) -> None:
    events["perturbations"].append({"at": clock.now().isoformat(), "what": line})
    console.print(line, highlight=False, markup=False, soft_wrap=True)


async def _cron(portfolio: Path, loaded: Any, clock: Any, begin: dt.datetime, end: dt.datetime, every: dt.timedelta,
                store: Path, events: dict, console: Console, quiet: Console) -> None:
    """What cron does on a live day: ``flexopt schedule intraday`` shortly before each run's first interval."""
    from flexopt.commands.schedule import run_intraday

    info = loaded.portfolio.portfolio
    start = begin + every
    while start < end:
        await clock.sleep_until(start - dt.timedelta(minutes=LEAD_MIN))
        entry: dict[str, Any] = {"from": start.isoformat(), "started": clock.now().isoformat()}
        with clock.work():
            try:
                outcome = await asyncio.to_thread(run_intraday, portfolio, start.astimezone(loaded.portfolio.tz),
                                                  store=store, resolution_min=info.resolution_min, console=quiet)
                entry |= {"outcome": "written", "run": str(outcome.directory)}
            except typer.Exit as exc:
                entry |= {"outcome": "failed", "exit_code": exc.exit_code}
        events["intraday"].append(entry)
        console.print(f"intraday from {start:%H:%M}: {entry['outcome']}"
                      + (f" {entry['run']}" if "run" in entry else f" (exit {entry.get('exit_code')})"),
                      highlight=False, soft_wrap=True)
        start += every
