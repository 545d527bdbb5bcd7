"""``flexopt dispatch PORTFOLIO``: send the stored schedule's setpoints to the devices, read them back and
record every round (commands, telemetry, deviations, alarms) in a new audit file, then in the telemetry database.

Exit codes: 0 the rounds ran (alarms or not: they are in the record), 2 invalid input (portfolio, --at, no
schedule, a telemetry database that cannot be opened), 4 with ``--fail-on-alarm`` when any round raised a critical
alarm (for cron monitoring).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from flexopt.commands.exit_codes import EXIT_ALARM
from flexopt.commands.portfolio_cmds import EXIT_INVALID, load_or_exit
from flexopt.commands.telemetry import DB_HELP, open_or_exit

if TYPE_CHECKING:
    from flexopt.commands.reoptimise import Reoptimise


def _print_round(record: dict[str, Any], path: Path, console: Console) -> None:
    s = record["summary"]
    sched = record["schedule"]
    interval = f"{record['interval_start'] or '?'} .. {record['interval_end'] or '?'}"
    console.print(
        f"[bold]round[/bold] {interval} schedule {sched['version'] if sched else 'none'}: "
        f"{s['confirmed']} confirmed, {s['failed']} failed, {s['clamped']} clamped, {s['skipped']} skipped "
        f"of {s['assets']} assets; alarms: {s['alarms_critical']} critical, {s['alarms_warning']} warning",
        highlight=False, soft_wrap=True,  # one line per round: log readers and grep rely on it
    )
    if record["alarms"]:
        table = Table("severity", "asset", "kind", "reason", title=None, show_edge=False)
        for a in record["alarms"][:40]:
            style = "red" if a["severity"] == "critical" else "yellow"
            table.add_row(f"[{style}]{a['severity']}[/{style}]", a["asset_id"], a["kind"], a["reason"][:100])
        console.print(table)
        if len(record["alarms"]) > 40:
            console.print(f"... {len(record['alarms']) - 40} more alarms in the record")
    console.print(f"record: {path}", highlight=False, soft_wrap=True)


async def _session(portfolio: Any, *, store: Path, run: Path | None, at: dt.datetime | None, once: bool,
                   duration_s: float | None, options: Any, connect_wait_s: float, console: Console,
                   telemetry: Any = None, every_s: float | None = None, clock: Any = None,
                   reoptimise: Reoptimise | None = None, until: dt.datetime | None = None) -> int:
    """Run the rounds; returns how many critical alarms were raised. With ``telemetry`` (a
    :class:`flexopt.telemetry.RoundSync`), each round's record is then stored in the telemetry database too.
    ``clock`` is the time the rounds follow (default the wall clock; ``flexopt replay`` passes a simulated one),
    ``until`` a time on it to stop at; ``reoptimise`` a trigger and the intraday re-run it may start."""
    import flexopt.operations as ops
    from flexopt.adapters.clock import WALL, using
    from flexopt.config.redaction import redact_obj
    from flexopt.runs.store import clean_leftovers

    clock = clock or WALL
    with using(clock):
        return await _rounds(portfolio, store=store, run=run, at=at, once=once, duration_s=duration_s,
                             options=options, connect_wait_s=connect_wait_s, console=console, telemetry=telemetry,
                             every_s=every_s, clock=clock, reoptimise=reoptimise, until=until, ops=ops,
                             redact_obj=redact_obj, clean_leftovers=clean_leftovers)


async def _rounds(portfolio: Any, *, store: Path, run: Path | None, at: dt.datetime | None, once: bool,
                  duration_s: float | None, options: Any, connect_wait_s: float, console: Console, telemetry: Any,
                  every_s: float | None, clock: Any, reoptimise: Reoptimise | None, until: dt.datetime | None,
                  ops: Any, redact_obj: Any, clean_leftovers: Any) -> int:
    """The loop of :func:`_session`, on ``clock``."""

    name, tz = portfolio.portfolio.name, portfolio.tz
    resolution = portfolio.portfolio.resolution_min

    def schedule_for(t: dt.datetime) -> Any:
        if run is not None:
            return ops.load_schedule_run(run)
        return ops.find_schedule_run(store, name, t.astimezone(tz).date(), t)

    session = ops.DispatchSession(portfolio, connect_wait_s=connect_wait_s, state_dir=ops.state_folder(store, name))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    critical = 0
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        with clock.work():  # devices connecting take no simulated time
            await session.start()
        when = at
        while True:
            t = when or clock.now()
            with clock.work():
                try:
                    schedule = schedule_for(t)
                    if ops.rows_at(schedule.frame, t).empty:
                        schedule = None
                except ops.ScheduleNotFound:
                    schedule = None
                record = await session.round(schedule, t, options)
            if reoptimise is not None:  # before the record is written: it holds the trigger and its outcome
                record = await reoptimise.after_round(record, t)
            record = redact_obj(record)  # as written, so as printed
            folder = ops.dispatch_folder(store, name, t.astimezone(tz).date())
            for leftover in clean_leftovers(store, name):
                console.print(str(leftover), highlight=False, soft_wrap=True)
            path = ops.write_round(folder, record, t)
            ops.append_summary(folder, record, path)
            critical += record["summary"]["alarms_critical"]
            _print_round(record, path, console)
            if telemetry is not None:  # after the record: the database never holds a round its trail lacks
                day = t.astimezone(tz).date()
                for warning in await asyncio.to_thread(telemetry.after_round, day, folder):
                    console.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
            if once or stop.is_set():
                break
            now = clock.now()
            nxt = now + dt.timedelta(seconds=every_s) if every_s else ops.next_boundary(now, resolution)
            if until is not None and nxt >= until:
                break
            wait = (nxt - now).total_seconds() / clock.speed
            if deadline is not None and time.monotonic() + wait > deadline:
                with contextlib.suppress(TimeoutError):  # no round left before the end: just wait it out
                    await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.monotonic()))
                break
            if not await clock.sleep_until(nxt, stop):
                break
            when = None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        await session.close()
    return critical


def register(app: typer.Typer) -> None:
    @app.command("dispatch")
    def dispatch_cmd(
        portfolio: Path = typer.Argument(..., help="portfolio YAML"),
        store: Path = typer.Option(Path("runs"), "--store", help="versioned schedule runs; rounds are recorded "
                                   "under <store>/<portfolio>/<day>/dispatch/"),
        run: Path | None = typer.Option(None, "--run", help="use this run folder's schedule instead of the newest "
                                        "run of the day in the store"),
        at: str | None = typer.Option(None, "--at", help="with --once: dispatch the interval containing this "
                                      "time, 'YYYY-MM-DDTHH:MM' portfolio local time (default: now)"),
        once: bool = typer.Option(False, "--once", help="one round, then exit (cron)"),
        duration: float | None = typer.Option(None, "--duration", min=0.0, help="without --once: stop after S "
                                              "seconds (default: run until Ctrl-C/SIGTERM)"),
        every: float | None = typer.Option(None, "--every", min=0.1, help="without --once: a round every S seconds "
                                           "instead of at every interval boundary (commissioning, tests)"),
        settle_s: float = typer.Option(5.0, "--settle-s", min=0.0, help="wait between sending and reading back"),
        connect_wait_s: float = typer.Option(15.0, "--connect-wait-s", min=0.0,
                                             help="how long OCPP chargers get to connect to the central system"),
        tolerance_kw: float = typer.Option(1.0, "--tolerance-kw", min=0.0, help="deviation alarm threshold"),
        tolerance_pct: float = typer.Option(10.0, "--tolerance-pct", min=0.0,
                                            help="deviation alarm threshold, % of the scheduled power"),
        fail_on_alarm: bool = typer.Option(False, "--fail-on-alarm",
                                           help=f"exit {EXIT_ALARM} when any critical alarm was raised"),
        db: str | None = typer.Option(None, "--db", help=DB_HELP),
        reoptimise_deviation_kw: float | None = typer.Option(
            None, "--reoptimise-deviation-kw", min=0.0, help="continuous dispatch: start an intraday re-run when "
            "the round's total deviation (kW, summed over assets) is above this for --reoptimise-after-rounds "
            "consecutive rounds"),
        reoptimise_after_rounds: int = typer.Option(3, "--reoptimise-after-rounds", min=1,
                                                    help="consecutive deviating rounds before a re-run"),
        reoptimise_on_dso_change: bool = typer.Option(
            False, "--reoptimise-on-dso-change", help="continuous dispatch: start an intraday re-run when the "
            "content of the portfolio's dso_limits_file changes"),
        reoptimise_min_interval_min: float = typer.Option(60.0, "--reoptimise-min-interval-min", min=0.0,
                                                          help="at least this many minutes between two re-runs"),
    ) -> None:
        """Send the schedule's setpoints to every device, read them back and record each round (commands,
        telemetry, deviations, alarms) in a new file under <store>/<portfolio>/<day>/dispatch/. Device failures
        are alarms in the record, never a crash: exit 0 whenever the rounds ran. No secret (the portfolio's *_env
        values, a database password) appears in anything it writes."""
        from flexopt.config.redaction import install_log_filter, redacted_output

        install_log_filter()
        with redacted_output(passthrough=(typer.Exit, typer.Abort)):
            triggers = None
            if reoptimise_deviation_kw is not None or reoptimise_on_dso_change:
                from flexopt.operations.triggers import TriggerOptions

                triggers = TriggerOptions(deviation_kw=reoptimise_deviation_kw, after_rounds=reoptimise_after_rounds,
                                          min_interval_min=reoptimise_min_interval_min)
                triggers.dso_limits_file = Path() if reoptimise_on_dso_change else None  # resolved once loaded
            _dispatch(portfolio, store=store, run=run, at=at, once=once, duration=duration, every=every,
                      settle_s=settle_s, connect_wait_s=connect_wait_s, tolerance_kw=tolerance_kw,
                      tolerance_pct=tolerance_pct, fail_on_alarm=fail_on_alarm, db=db, triggers=triggers)


def dso_limits_path(loaded: Any) -> Path | None:
    """The portfolio's DSO limits file as a path to read (relative paths are relative to the portfolio file)."""
    path = loaded.portfolio.dso_limits_file
    if path is None or path.is_absolute():
        return path
    return Path(loaded.path).parent / path


def _dispatch(portfolio: Path, *, store: Path, run: Path | None, at: str | None, once: bool, duration: float | None,
              every: float | None, settle_s: float, connect_wait_s: float, tolerance_kw: float, tolerance_pct: float,
              fail_on_alarm: bool, db: str | None, triggers: Any = None) -> None:
    """The command's work, with its output redacted: every check that can fail before a device is touched, then
    the rounds."""
    import flexopt.operations as ops
    from flexopt.adapters.base import utcnow
    from flexopt.config.credentials import missing_secrets, register_portfolio_secrets
    from flexopt.config.redaction import register_secret
    from flexopt.runs.store import StorageError, check_writable
    from flexopt.telemetry import RoundSync

    try:  # rounds are recorded in the store: an unusable one fails before any device is touched
        check_writable(store, "--store")
    except StorageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    loaded = load_or_exit(portfolio)
    pf = loaded.portfolio
    if missing := missing_secrets(pf):  # never a placeholder: a device without its secret is a setup error
        typer.echo("\n".join(f"error: {line}" for line in missing), err=True)
        raise typer.Exit(EXIT_INVALID)
    register_portfolio_secrets(pf)
    if every is not None and once:
        typer.echo("--every is for a continuous dispatch, not with --once", err=True)
        raise typer.Exit(EXIT_INVALID)
    if triggers is not None and (once or run is not None):
        typer.echo("--reoptimise-* options are for a continuous dispatch that follows the store (not with --once "
                   "or --run)", err=True)
        raise typer.Exit(EXIT_INVALID)
    if triggers is not None and triggers.dso_limits_file is not None:
        if pf.dso_limits_file is None:
            typer.echo("--reoptimise-on-dso-change: the portfolio names no dso_limits_file", err=True)
            raise typer.Exit(EXIT_INVALID)
        triggers.dso_limits_file = dso_limits_path(loaded)
    if at is not None and not once:
        typer.echo("--at needs --once (a continuous dispatch always follows the clock)", err=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        t = ops.parse_at(at, pf.portfolio.timezone)
    except ValueError as exc:
        typer.echo(f"--at: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    try:  # the first round must have a schedule: say so before touching any device
        schedule = ops.load_schedule_run(run) if run is not None else ops.find_schedule_run(
            store, pf.portfolio.name, t.astimezone(pf.tz).date(), t)
    except ops.ScheduleNotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if ops.rows_at(schedule.frame, t).empty:
        span = (f"{schedule.frame['interval_start'].min()} .. {schedule.frame['interval_end'].max()}"
                if len(schedule.frame) else "no rows")
        typer.echo(f"schedule {schedule.path} does not cover {t.isoformat()} (it covers {span})", err=True)
        raise typer.Exit(EXIT_INVALID)
    ends = ops.rows_at(schedule.frame, t)["interval_end"].max()
    if once and ends <= utcnow():
        typer.echo(f"note: the interval of --at ended at {ends.isoformat()}; devices are not sent expired "
                   "setpoints (recorded as invalid), they are still read", err=True)
    options = ops.RoundOptions(settle_s=settle_s, tolerance_kw=tolerance_kw, tolerance_pct=tolerance_pct)
    console = Console()
    database = open_or_exit(db, store)  # a database that cannot be opened fails before any device is touched
    register_secret(database.url.password if isinstance(database.url.password, str) else None)
    console.print(f"telemetry database: {database.name}", highlight=False, markup=False, soft_wrap=True)
    reoptimise = None
    if triggers is not None:
        from flexopt.commands.reoptimise import Reoptimise

        reoptimise = Reoptimise(portfolio, loaded, triggers, store=store, db=db, console=console)
    try:
        critical = asyncio.run(_session(pf, store=store, run=run, at=t if once else None, once=once,
                                        duration_s=duration, options=options, connect_wait_s=connect_wait_s,
                                        console=console, telemetry=RoundSync(database, pf.portfolio.name),
                                        every_s=every, reoptimise=reoptimise))
    finally:
        database.close()
    if fail_on_alarm and critical:
        raise typer.Exit(EXIT_ALARM)
