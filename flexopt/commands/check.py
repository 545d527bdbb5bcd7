"""``flexopt check PORTFOLIO RUN_DIR``: the independent physics check of a schedule run (docs/check.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from flexopt.commands.exit_codes import EXIT_BREACH, EXIT_INVALID


def register(app: typer.Typer) -> None:
    @app.command()
    def check(
        portfolio: Path = typer.Argument(..., help="portfolio YAML file the run was made from"),
        run_dir: Path = typer.Argument(..., help="run folder (schedule.parquet, sites.parquet, kpis.json, run.json)"),
        as_json: bool = typer.Option(False, "--json", help="print the breaches as JSON (UTC times) instead"),
    ) -> None:
        """Check a run against the portfolio's physics; exit 1 when a breach is not reported in its kpis.json."""
        from flexopt.check import CheckInputError, check_run
        from flexopt.check.report import as_json as to_json
        from flexopt.check.report import print_report

        try:
            result = check_run(portfolio, run_dir)
        except CheckInputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        if as_json:
            typer.echo(json.dumps(to_json(result), indent=2))
        else:
            console = Console()
            # a pipe or a CI log gets room for the table instead of rich's 80 columns
            print_report(result, console if console.is_terminal else Console(width=200))
        if result.unreported:
            raise typer.Exit(EXIT_BREACH)
