"""``flexopt schedule day-ahead`` and ``flexopt schedule intraday``."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flexopt.commands.args import check_year, in_range, parse_day
from flexopt.commands.exit_codes import EXIT_BUSY, EXIT_SOLVER
from flexopt.commands.portfolio_cmds import EXIT_INVALID, load_or_exit
from flexopt.config.loader import PortfolioError
from flexopt.runs.horizon import MAX_HORIZON_H, check_horizon_h
from flexopt.runs.locks import LockBusy
from flexopt.runs.runner import DEFAULT_WAIT_S, RunRequest, run_schedule
from flexopt.runs.store import StorageError, check_new_dir, check_writable

MIP_GAP = in_range("--mip-gap", 0.0, 1.0)
NOTES_MAX = 10  # assets named one by one when they fall back from telemetry to the schedule
TIME_LIMIT = in_range("--time-limit", 0.1, 7 * 24 * 3600.0)
HORIZON_H = in_range("--horizon-h", 0.0, MAX_HORIZON_H, lo_open=True)
WAIT_S = in_range("--wait-s", 0.0, 24 * 3600.0)
WAIT_HELP = (f"seconds to wait while another schedule run of the portfolio holds the store's lock; then exit "
             f"{EXIT_BUSY} without running (0: do not wait)")

schedule_app = typer.Typer(no_args_is_help=True, help="Compute day-ahead or intraday schedules.")


def execute(request: RunRequest, console: Console) -> dict:
    """Run, print progress and KPIs; turn every expected failure into a message and an exit code. A run that
    fails writes nothing: the message says which stored schedule stays in force."""
    return execute_run(request, console).kpis


def execute_run(request: RunRequest, console: Console):
    """:func:`execute`, returning the whole :class:`~flexopt.runs.runner.RunOutcome` (its folder too)."""
    from flexopt.data.dso_limits import DsoLimitsError
    from flexopt.data.timeseries import SeriesError
    from flexopt.scheduling.zones import ClusterError
    from flexopt.solver.highs import SolveError

    started = time.perf_counter()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.perf_counter() - started:6.2f} s[/dim]  {message}", highlight=False)

    def warn(message: str) -> None:
        typer.echo(f"warning: {message}", err=True)

    def failed(message: str, code: int) -> typer.Exit:
        typer.echo(message, err=True)
        typer.echo(in_force_note(request), err=True)
        return typer.Exit(code)

    try:
        outcome = run_schedule(request, progress, warn)
    except LockBusy as exc:
        raise failed(f"busy: another schedule run of this portfolio holds {exc.path}: {exc.holder}; not started "
                     f"after waiting {exc.waited_s:.0f} s (--wait-s {request.wait_s:g})", EXIT_BUSY) from None
    except PortfolioError as exc:
        raise failed(str(exc), EXIT_INVALID) from None
    except (SeriesError, StorageError, DsoLimitsError) as exc:
        raise failed(f"error: {exc}", EXIT_INVALID) from None
    except SolveError as exc:
        raise failed(f"solver failed: {exc}", EXIT_SOLVER) from None
    except ClusterError as exc:
        raise failed(f"cluster failed: {exc}", EXIT_SOLVER) from None
    print_kpis(outcome.kpis, console)
    # one line whatever its length: scripts and parallel cron jobs read the folder from it
    console.print(f"schedule written to [bold]{outcome.directory}[/bold]", highlight=False, soft_wrap=True)
    if outcome.loaded is not None and outcome.loaded.portfolio.uftp is not None:
        send_prognosis(request, outcome.directory, warn)
    return outcome


def cluster_spec(value: str | None) -> str | None:
    """--cluster: local:N or tcp://HOST:PORT, checked before anything runs (exit 2)."""
    if value is None:
        return None
    from flexopt.scheduling.zones import parse_cluster

    try:
        parse_cluster(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def model_file(value: Path | None) -> Path | None:
    """--write-model: a new .lp or .mps file in an existing folder, checked before anything runs (exit 2)."""
    if value is None:
        return None
    if value.suffix.lower() not in (".lp", ".mps"):
        raise typer.BadParameter(f"{value}: name the file .lp or .mps (the format follows the extension)")
    if value.exists():
        raise typer.BadParameter(f"{value} exists; flexopt never overwrites a file: give a new name")
    if not value.parent.is_dir():
        raise typer.BadParameter(f"{value.parent} is not a folder; create it first")
    return value


def cluster_or_model(cluster: str | None, write_model: Path | None) -> None:
    if cluster and write_model:
        typer.echo("error: --write-model writes one model; with --cluster each zone is its own: leave one out",
                   err=True)
        raise typer.Exit(EXIT_INVALID)


def send_prognosis(request: RunRequest, run_dir: Path, warn) -> None:
    """A portfolio that trades over UFTP sends the run's D-Prognoses; a failure is a warning, the run stands."""
    from flexopt.uftp.prognosis import after_run

    try:
        problems = after_run(request.portfolio_path, request.store, run_dir)
    except Exception as exc:  # the schedule is written and in force: nothing here may fail the command
        problems = [f"D-Prognosis not sent: {type(exc).__name__}: {exc}"]
    for problem in problems:
        warn(problem)


def in_force_note(request: RunRequest) -> str:
    """Which stored run dispatch follows at the failed run's first interval, now that no new one was written."""
    from flexopt.config.loader import load_portfolio
    from flexopt.operations.schedules import ScheduleNotFound, find_schedule_run

    try:
        loaded = load_portfolio(request.portfolio_path)
    except (PortfolioError, OSError):
        return "nothing was written; the stored schedules are unchanged"
    tz = loaded.portfolio.tz
    at = request.start or dt.datetime.combine(request.day, dt.time(), tzinfo=tz)
    when = at.astimezone(tz).isoformat(timespec="minutes")
    try:
        run = find_schedule_run(request.store, loaded.portfolio.portfolio.name, at.astimezone(tz).date(), at)
    except (ScheduleNotFound, OSError, ValueError):
        return (f"nothing was written; no stored schedule in {request.store} covers {when}: dispatch has nothing "
                "to follow there")
    return f"nothing was written; the schedule in force at {when} is still {run.path} (dispatch keeps following it)"


def _num(value, spec: str) -> str:
    """A KPI figure, or n/a when it does not exist (None) or is not a number."""
    return format(value, spec) if isinstance(value, int | float) and not isinstance(value, bool) else "n/a"


def print_kpis(kpis: dict, console: Console) -> None:
    table = Table("KPI", "value", title="schedule KPIs")
    table.add_row("cost (EUR)", _num(kpis.get("cost_eur"), ",.2f"))
    table.add_row("baseline cost (EUR)", _num(kpis.get("baseline_cost_eur"), ",.2f"))
    # saving_pct is None when the baseline costs nothing (e.g. a battery at constant prices): no percentage
    pct = kpis.get("saving_pct")
    table.add_row("saving (EUR)",
                  _num(kpis.get("saving_eur"), ",.2f") + ("" if pct is None else f" ({_num(pct, '.1f')} %)"))
    table.add_row("energy shifted (kWh)", _num(kpis.get("energy_shifted_kwh"), ",.1f"))
    solver = kpis.get("solver", {})
    table.add_row("solver", f"{solver.get('status', '?')}, gap {_num(solver.get('mip_gap'), '.3%')}")
    violations = kpis.get("violations", {})
    count = violations.get("count", 0) if isinstance(violations, dict) else len(violations)
    table.add_row("violations", str(count))
    timings = kpis.get("timings_s", {})
    table.add_row("timings (s)", ", ".join(f"{k} {v:.2f}" for k, v in timings.items() if isinstance(v, float)))
    console.print(table)
    peaks = kpis.get("peak_import_kw", {})
    if peaks:
        peak_table = Table("site / congestion point", "peak import kW", "baseline kW", title="peaks")
        for name, value in peaks.items():
            peak_table.add_row(name, f"{value.get('optimised', 0):,.1f}", f"{value.get('baseline', 0):,.1f}")
        console.print(peak_table)
    if count:
        items = violations.get("list", []) if isinstance(violations, dict) else violations
        for v in items[:20]:
            console.print(f"[yellow]violation[/yellow] {v.get('kind')} at {v.get('asset_id') or v.get('site_id')}"
                          f" {v.get('start')} .. {v.get('end')}: {v.get('amount', 0):.2f} {v.get('unit', '')}"
                          f" {v.get('detail', '')}", highlight=False)


CLUSTER_OPTION = typer.Option(
    None, "--cluster", callback=cluster_spec,
    help="solve the independent zones (congestion points, sites in none) on a Dask cluster: local:N starts N worker "
         "processes here, tcp://HOST:PORT uses a running dask scheduler (docs/scale.md)")
WRITE_MODEL_OPTION = typer.Option(
    None, "--write-model", callback=model_file,
    help="also write the whole model before it is solved, as FILE.lp or FILE.mps (a new file), for debugging")


@schedule_app.command("day-ahead")
def day_ahead(
    portfolio: Path = typer.Argument(..., help="portfolio YAML file"),
    date: str = typer.Option(..., "--date", help="local day to schedule, YYYY-MM-DD"),
    out: Path | None = typer.Option(None, "--out", help="new directory for the files (never overwritten)"),
    store: Path = typer.Option(Path("runs"), "--store", help="without --out: versioned runs are kept here"),
    mip_gap: float = typer.Option(0.005, "--mip-gap", callback=MIP_GAP, help="relative MIP gap, 0 to 1"),
    time_limit: float | None = typer.Option(None, "--time-limit", callback=TIME_LIMIT,
                                            help="solver time limit, seconds (0.1 to 604800)"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="solver threads"),
    horizon_h: float | None = typer.Option(
        None, "--horizon-h", callback=HORIZON_H,
        help=f"hours to schedule from local midnight (default: the local day; at most {MAX_HORIZON_H:g}); shortened "
             "to the end of the known prices, never below the day's end"),
    wait_s: float = typer.Option(DEFAULT_WAIT_S, "--wait-s", callback=WAIT_S, help=WAIT_HELP),
    cluster: str | None = CLUSTER_OPTION,
    write_model: Path | None = WRITE_MODEL_OPTION,
) -> None:
    """Schedule every device of the portfolio for one local day (or --horizon-h hours from its midnight)."""
    day = parse_day(date, "--date")
    resolution_or_exit(portfolio, horizon_h)
    request = RunRequest(portfolio_path=portfolio, kind="day-ahead", day=day, out=out, store=store,
                         mip_gap=mip_gap, time_limit_s=time_limit, threads=threads, horizon_h=horizon_h,
                         wait_s=wait_s, cluster=cluster, write_model=write_model)
    cluster_or_model(cluster, write_model)
    execute(request, Console())


def resolution_or_exit(portfolio: Path, horizon_h: float | None) -> None:
    """--horizon-h must be a whole number of the portfolio's intervals: exit 2 before anything runs."""
    if horizon_h is None:
        return
    try:
        check_horizon_h(horizon_h, load_or_exit(portfolio).portfolio.portfolio.resolution_min)
    except ValueError as exc:
        typer.echo(f"--horizon-h: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


@schedule_app.command("intraday")
def intraday(
    portfolio: Path = typer.Argument(..., help="portfolio YAML file"),
    start: str | None = typer.Option(
        None, "--from", help="first interval, local time 'YYYY-MM-DDTHH:MM', or with its UTC offset "
        "'YYYY-MM-DDTHH:MM+02:00' (needed on DST nights for a time that happens twice; default: the next interval "
        "from now)"),
    state: Path | None = typer.Option(
        None, "--state", help="JSON of states {asset_id: {key: x}}, keys as the asset type declares them "
        "(soc_pct, temp_c, energy_delivered_kwh, vehicles_plugged, ...), instead of telemetry and stored runs; "
        "assets it leaves out start from their configuration"),
    max_age_min: float | None = typer.Option(
        None, "--max-age-min", callback=in_range("--max-age-min", 0.0, 7 * 24 * 60.0),
        help="use telemetry at most this many minutes older than the start (default: two intervals)"),
    db: str | None = typer.Option(None, "--db", help="telemetry database: sqlite:///PATH or "
                                  "postgresql+psycopg://USER@HOST:PORT/DB (default: $FLEXOPT_DB, else "
                                  "<store>/telemetry.sqlite3 when it exists; none: no telemetry)"),
    out: Path | None = typer.Option(None, "--out", help="new directory for the files (never overwritten)"),
    store: Path = typer.Option(Path("runs"), "--store", help="versioned runs are read from and kept here"),
    mip_gap: float = typer.Option(0.005, "--mip-gap", callback=MIP_GAP, help="relative MIP gap, 0 to 1"),
    time_limit: float | None = typer.Option(None, "--time-limit", callback=TIME_LIMIT,
                                            help="solver time limit, seconds (0.1 to 604800)"),
    threads: int | None = typer.Option(None, "--threads", min=1),
    horizon_h: float | None = typer.Option(
        None, "--horizon-h", callback=HORIZON_H,
        help=f"hours to schedule from --from (default 24, at most {MAX_HORIZON_H:g}), across midnight; shortened to "
             "the end of the known prices, never below the end of the local day"),
    wait_s: float = typer.Option(DEFAULT_WAIT_S, "--wait-s", callback=WAIT_S, help=WAIT_HELP),
    correct: bool = typer.Option(True, "--correct/--no-correct",
                                 help="correct the load and PV forecasts from the telemetry before the start"),
    cluster: str | None = CLUSTER_OPTION,
    write_model: Path | None = WRITE_MODEL_OPTION,
    lookback_min: float = typer.Option(
        60.0, "--correct-lookback-min", callback=in_range("--correct-lookback-min", 1.0, 24 * 60.0),
        help="minutes of telemetry before the start compared with the forecast"),
    decay_h: float = typer.Option(
        3.0, "--correct-decay-h", callback=in_range("--correct-decay-h", 0.1, 72.0),
        help="hours after which the measured error carried into the horizon has fallen to 1/e"),
) -> None:
    """Re-optimise from an interval for the next 24 h (for cron): each asset from fresh telemetry, else from the
    newest stored schedule in force, else from its configuration (read once the store's lock is held)."""
    from flexopt.runs.intraday import file_states, first_interval

    try:  # the store is read for the states below and written at the end: check it before either
        if out is not None:
            check_new_dir(out)
        check_writable(out if out is not None else store, "--out" if out is not None else "--store")
    except StorageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    cluster_or_model(cluster, write_model)
    if state is not None and (db is not None or max_age_min is not None):
        typer.echo("error: --state gives the states itself; leave out --db and --max-age-min", err=True)
        raise typer.Exit(EXIT_INVALID)
    loaded = load_or_exit(portfolio)
    resolution_or_exit(portfolio, horizon_h)
    info = loaded.portfolio.portfolio
    try:
        start_local = first_interval(start, info.timezone, info.resolution_min)
    except (ValueError, OverflowError) as exc:
        typer.echo(f"--from: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    check_year(start_local, "--from", start or start_local.isoformat())
    day = start_local.date()
    if state is not None:
        found = file_states(loaded, _read_state_file(state, loaded), state)
        request = RunRequest(portfolio_path=portfolio, kind="intraday", day=day, start=start_local, out=out,
                             store=store, mip_gap=mip_gap, time_limit_s=time_limit, threads=threads,
                             horizon_h=horizon_h, wait_s=wait_s, resolve_state=lambda _loaded: found,
                             cluster=cluster, write_model=write_model)
        Console().print(f"intraday from {start_local.isoformat()}", highlight=False)
        execute(request, Console())
        return
    run_intraday(portfolio, start_local, store=store, db=db, max_age_min=max_age_min, out=out, mip_gap=mip_gap,
                 time_limit_s=time_limit, threads=threads, horizon_h=horizon_h, wait_s=wait_s,
                 resolution_min=info.resolution_min, console=Console(), correct=correct, lookback_min=lookback_min,
                 decay_h=decay_h, cluster=cluster, write_model=write_model)


def run_intraday(portfolio: Path, start_local: dt.datetime, *, store: Path, resolution_min: int,
                 db: str | None = None, max_age_min: float | None = None, out: Path | None = None,
                 mip_gap: float = 0.005, time_limit_s: float | None = None, threads: int | None = None,
                 horizon_h: float | None = None, wait_s: float = DEFAULT_WAIT_S, console: Console | None = None,
                 correct: bool = True, lookback_min: float = 60.0, decay_h: float = 3.0, cluster: str | None = None,
                 write_model: Path | None = None):
    """One intraday run from measured state, as cron starts it: the store's lock, the states from the telemetry
    database (else stored runs, else the configuration), the solve, a new version. Dispatch's triggers and
    ``flexopt replay`` call this too. Returns the :class:`~flexopt.runs.runner.RunOutcome`; a failure is
    ``typer.Exit`` with its code, after saying which schedule stays in force."""
    console = console or Console()
    max_age = dt.timedelta(minutes=max_age_min if max_age_min is not None else 2 * resolution_min)
    database, telemetry = _telemetry(store, db, max_age)
    day = start_local.date()
    try:  # the states are read once the store's lock is held: a run that waited continues from the one it waited for
        request = RunRequest(portfolio_path=portfolio, kind="intraday", day=day, start=start_local, out=out,
                             store=store, mip_gap=mip_gap, time_limit_s=time_limit_s, threads=threads,
                             horizon_h=horizon_h, wait_s=wait_s, state_telemetry=telemetry,
                             resolve_state=lambda lp: _stored_and_measured(lp, store, day, start_local, database,
                                                                          max_age, telemetry),
                             correct=_corrector(database, telemetry, lookback_min, decay_h) if correct else None,
                             cluster=cluster, write_model=write_model)
        console.print(f"intraday from {start_local.isoformat()}", highlight=False)
        return execute_run(request, console)
    finally:
        if database is not None:
            database.close()


def _corrector(database, telemetry: dict, lookback_min: float, decay_h: float):
    """The forecast correction of an intraday run (runs/correction.py); without a database it records why not."""
    from flexopt.runs.correction import CorrectionSettings, correct_forecasts

    settings = CorrectionSettings(lookback_min=lookback_min, decay_h=decay_h)
    reason = telemetry.get("reason") or "no telemetry database"
    return lambda loaded, inputs: correct_forecasts(loaded, inputs, database, settings, no_telemetry=reason)


def _read_state_file(state: Path, loaded) -> dict[str, dict[str, float]]:
    """A --state file checked against the portfolio, or the reason and exit 2."""
    from flexopt.runs.intraday import check_state

    try:
        if not state.is_file() or state.stat().st_size > 1 << 20:
            raise ValueError("must be a JSON file of at most 1 MB (a regular file, not a folder, pipe or device)")
        return check_state(json.loads(state.read_text(encoding="utf-8")), loaded)
    except OSError as exc:
        typer.echo(f"--state {state}: cannot read the file ({exc.strerror or exc})", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except UnicodeDecodeError as exc:
        typer.echo(f"--state {state}: byte {exc.start} is not UTF-8; save the file as UTF-8 JSON", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except ValueError as exc:  # JSON syntax, or a state that does not fit the portfolio
        typer.echo(f"--state {state}: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _telemetry(store: Path, db: str | None, max_age: dt.timedelta):
    """The telemetry database and run.json's ``initial_state_telemetry``. The database is ``--db``, else
    ``$FLEXOPT_DB``, else the store's SQLite file when it exists (none: no telemetry, and the record says why); one
    named but unusable is exit 2, before anything is solved."""
    from flexopt.commands.telemetry import open_or_exit
    from flexopt.telemetry import ENV_VAR, resolve_url

    limit = {"max_age_min": max_age.total_seconds() / 60}
    if not db and not os.environ.get(ENV_VAR, "").strip():
        default = Path(resolve_url(None, store).database or "")
        if not default.is_file():
            return None, {"db": None, **limit, "reason": f"no telemetry database ({default} does not exist)"}
    database = open_or_exit(db, store, create=False)
    return database, {"db": database.name, **limit}


def _stored_and_measured(loaded, store: Path, day: dt.date, start: dt.datetime, database, max_age: dt.timedelta,
                         telemetry: dict):
    """The start states (telemetry, stored runs, configuration), and a note for every asset that fell back."""
    from flexopt.runs.intraday import start_states
    from flexopt.telemetry import TelemetryError

    try:
        found = start_states(loaded, store, day, start, db=database, max_age=max_age,
                             no_telemetry=telemetry.get("reason") or "no telemetry database")
    except TelemetryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if telemetry.get("reason"):
        typer.echo(f"note: {telemetry['reason']}: states from stored runs and the configuration", err=True)
        return found
    fell_back = [f"{a} starts from the schedule {e['run']} ({e['reason']})" for a, e in found.record.items()
                 if e["source"] == "schedule"]
    for text in fell_back[:NOTES_MAX]:
        typer.echo(f"note: {text}", err=True)
    if len(fell_back) > NOTES_MAX:
        typer.echo(f"note: {len(fell_back) - NOTES_MAX} more start from the schedule (run.json initial_state says "
                   "why)", err=True)
    return found


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")
