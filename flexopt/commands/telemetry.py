"""``flexopt telemetry import|latest``: fill the telemetry database from a day's dispatch records, and show the
newest measurement of every asset.

Exit codes: 0 done, 2 invalid input (portfolio, date, time, store, no records for the day, a database that cannot
be opened: named without its password).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from flexopt.commands.args import in_range, parse_day
from flexopt.commands.exit_codes import EXIT_INVALID
from flexopt.commands.portfolio_cmds import load_or_exit

DB_HELP = ("telemetry database: sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB (default: $FLEXOPT_DB, "
           "else <store>/telemetry.sqlite3)")


def open_or_exit(db: str | None, store: Path, *, create: bool = True) -> Any:
    """The migrated telemetry database, or the reason on stderr (without the password) and exit 2. Without
    ``create``, a default SQLite file that does not exist yet is an error instead of a new empty database."""
    from flexopt.telemetry import ENV_VAR, TelemetryError, open_db, resolve_url

    try:
        url = resolve_url(db, store)
        file = Path(url.database or "") if url.get_backend_name() == "sqlite" else None
        if file is not None and not file.exists() and not create:
            raise TelemetryError(f"no telemetry database at {file}: nothing was recorded there yet (flexopt "
                                 "dispatch creates it), or pass --db")
        if file is not None and not db and not os.environ.get(ENV_VAR, "").strip():
            file.parent.mkdir(parents=True, exist_ok=True)  # the default lives in the store: create the store
        return open_db(url)
    except TelemetryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:
        typer.echo(f"error: telemetry database: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec) if isinstance(value, float) else str(value)


def _setpoint(value: float | None, unit: str | None) -> str:
    return "" if value is None else f"{value:g} {unit or ''}".strip()


def _table(readings: list[Any], now: dt.datetime, devices: bool) -> Table:
    table = Table("asset", *(["device"] if devices else []), "at (UTC)", "age", "P kW", "Q kvar", "V", "SoC %",
                  "temp °C", "EV plugged", "EV kWh", "sent", "reported", "deviation kW", "quality", show_edge=False)
    for r in readings:
        age = now - r.at
        table.add_row(r.asset_id, *([r.device or ""] if devices else []), r.at.strftime("%Y-%m-%d %H:%M:%S"),
                      f"{age.total_seconds() / 60:.0f} min", _fmt(r.active_power_kw), _fmt(r.reactive_power_kvar),
                      _fmt(r.voltage_v, ".1f"), _fmt(r.soc_pct, ".1f"), _fmt(r.temp_c, ".1f"), _fmt(r.ev_plugged),
                      _fmt(r.ev_energy_kwh), _setpoint(r.sent_setpoint, r.setpoint_unit),
                      _setpoint(r.reported_setpoint, r.setpoint_unit), _fmt(r.deviation_kw), r.quality)
    return table


def _jsonable(reading: Any) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.date | dt.datetime) else v
            for k, v in dataclasses.asdict(reading).items()}


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="The telemetry database of the dispatch rounds.")
    app.add_typer(group, name="telemetry")

    @group.command("import")
    def import_cmd(
        portfolio: Path = typer.Argument(..., help="portfolio YAML"),
        store: Path = typer.Option(Path("runs"), "--store", help="the store dispatch recorded the rounds in"),
        date: str = typer.Option(..., "--date", help="local day YYYY-MM-DD of the dispatch records"),
        db: str | None = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Store a day's dispatch records (<store>/<portfolio>/<day>/dispatch/*.json) in the telemetry database.
        Records already there are left alone: importing twice stores nothing twice."""
        import flexopt.operations as ops
        from flexopt.config.credentials import register_portfolio_secrets
        from flexopt.telemetry import TelemetryError, import_folder

        day = parse_day(date)
        pf = load_or_exit(portfolio).portfolio
        register_portfolio_secrets(pf)  # records written before flexopt redacted them are stored redacted
        name = pf.portfolio.name
        folder = ops.dispatch_folder(store, name, day)
        if not folder.is_dir():
            typer.echo(f"error: no dispatch records for {name} on {day.isoformat()} ({folder} does not exist)",
                       err=True)
            raise typer.Exit(EXIT_INVALID)
        database = open_or_exit(db, store)
        try:
            result = import_folder(database, name, day, folder)
        except TelemetryError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        finally:
            database.close()
        for problem in result.problems:
            typer.echo(f"warning: {problem}", err=True)
        typer.echo(f"stored {len(result.added)} round(s) of {name} on {day.isoformat()} in {database.name} "
                   f"({result.present} already there, {len(result.problems)} unreadable)")

    @group.command("latest")
    def latest_cmd(
        portfolio: Path = typer.Argument(..., help="portfolio YAML"),
        store: Path = typer.Option(Path("runs"), "--store", help="the store dispatch recorded the rounds in"),
        at: str | None = typer.Option(None, "--at", help="newest at or before this time, 'YYYY-MM-DDTHH:MM' "
                                      "portfolio local time or with an offset (default: now)"),
        max_age_min: float | None = typer.Option(None, "--max-age-min", callback=in_range("--max-age-min", 0, 1e7),
                                                 help="only readings at most this many minutes older than --at"),
        devices: bool = typer.Option(False, "--devices", help="each device of the assets with several devices"),
        as_json: bool = typer.Option(False, "--json", help="print JSON (one object per reading, UTC times)"),
        db: str | None = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Print the newest good reading (connected, quality good) of every asset, or of every device."""
        import flexopt.operations as ops
        from flexopt.telemetry import TelemetryError, latest_per_asset, latest_per_device

        pf = load_or_exit(portfolio).portfolio
        try:
            t = ops.parse_at(at, pf.portfolio.timezone)
        except ValueError as exc:
            typer.echo(f"--at: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        max_age = dt.timedelta(minutes=max_age_min) if max_age_min is not None else None
        database = open_or_exit(db, store, create=False)
        try:
            read = latest_per_device if devices else latest_per_asset
            readings = list(read(database, pf.portfolio.name, at=t, max_age=max_age).values())
        except TelemetryError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        finally:
            database.close()
        if as_json:
            typer.echo(json.dumps([_jsonable(r) for r in readings], indent=2))
            return
        console = Console(width=max(Console().width, 160))
        if not readings:
            console.print(f"no good reading of {pf.portfolio.name} at or before {t.isoformat()} in {database.name}",
                          highlight=False, markup=False)
            return
        console.print(f"newest readings of {pf.portfolio.name} at or before {t.isoformat()} ({database.name})",
                      highlight=False, markup=False)
        console.print(_table(readings, t, devices))
