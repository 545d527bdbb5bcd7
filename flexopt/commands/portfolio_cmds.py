"""``flexopt validate`` and ``flexopt schema``: check a portfolio before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flexopt.commands.exit_codes import EXIT_INVALID
from flexopt.config.loader import PortfolioError, load_portfolio
from flexopt.data.summary import summarise


def load_or_exit(path: Path, *, data: bool = False):
    """The validated portfolio, or every problem printed and exit code 2 (no traceback). With ``data``, every
    data file and the DSO limits file are read whole too (what a run would read, for any date)."""
    from flexopt.data.checks import check_inputs

    try:
        loaded = load_portfolio(path)
        if data and (problems := check_inputs(loaded)):
            raise PortfolioError(problems)
        return loaded
    except PortfolioError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INVALID) from None


def print_summary(loaded, console: Console) -> None:
    s = summarise(loaded)
    console.print(f"[bold]{s.name}[/bold]: {s.sites} site(s), {sum(s.devices_by_type.values())} devices, "
                  f"{sum(s.power_kw_by_type.values()):,.1f} kW rated, {s.storage_kwh:,.1f} kWh storage")
    table = Table("site", "name", "devices", "rated kW", title="sites")
    for sid, name, n, kw in s.per_site:
        table.add_row(sid, name, str(n), f"{kw:,.1f}")
    console.print(table)
    types = Table("asset type", "devices", "rated kW", title="assets by type")
    for kind, n in sorted(s.devices_by_type.items()):
        types.add_row(kind, str(n), f"{s.power_kw_by_type[kind]:,.1f}")
    console.print(types)
    console.print("protocols: " + (", ".join(f"{p} ({n})" for p, n in sorted(s.protocols.items())) or "none"))
    for name, text in s.data_sources.items():
        console.print(f"data source {name}: {text}", markup=False)


def register(app: typer.Typer) -> None:
    @app.command()
    def validate(portfolio: Path = typer.Argument(..., help="portfolio YAML file")) -> None:
        """Validate a portfolio and print its summary; exit 2 with every problem when it is invalid."""
        from flexopt.config.endpoints import endpoint_warnings

        console = Console()
        loaded = load_or_exit(portfolio, data=True)
        print_summary(loaded, console)
        for warning in endpoint_warnings(loaded.portfolio):  # valid, but worth a second look
            typer.echo(f"warning: {warning}", err=True)
        console.print("[green]valid[/green]")

    @app.command()
    def schema(merged: bool = typer.Option(False, "--merged", help="the whole portfolio after includes are merged "
                                           "(portfolio, tariff and sites required), not one file")) -> None:
        """Print the JSON Schema of portfolio files (every file, main or included, satisfies it)."""
        from flexopt.config.plugins import PluginError
        from flexopt.config.schema import merged_schema, portfolio_file_schema

        try:
            schema = merged_schema() if merged else portfolio_file_schema()
        except PluginError as exc:  # a plug-in that cannot be loaded
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        typer.echo(json.dumps(schema, indent=2))
