"""``flexopt simulate PORTFOLIO``: run a simulated device for every endpoint of a portfolio on
127.0.0.1, so schedules can be dispatched end to end without hardware."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flexopt.commands.exit_codes import EXIT_INVALID, EXIT_PORT_IN_USE
from flexopt.commands.portfolio_cmds import load_or_exit


async def _run(sim, duration_s: float | None, console: Console) -> None:
    await sim.start()
    table = Table("protocol", "address", "assets", "note", title="simulators running")
    for row in sim.summary:
        shown = ", ".join(row.assets[:4]) + (f" (+{len(row.assets) - 4})" if len(row.assets) > 4 else "")
        table.add_row(row.protocol, row.address, shown, row.note)
    console.print(table)
    for env, value in sim.tokens_to_export().items():
        typer.echo(f"export {env}={value}   # the simulated devices use this secret")
    console.print("running until stopped (Ctrl-C)" if duration_s is None else f"running for {duration_s:g} s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration_s)
    finally:
        await sim.stop()
        console.print("simulators stopped")


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        portfolio: Path = typer.Argument(..., help="portfolio YAML"),
        duration: float | None = typer.Option(None, "--duration", min=0.0, help="stop after S seconds"),
        ocpp_url: str = typer.Option(
            "ws://127.0.0.1:9000", "--ocpp-url", help="central system the simulated charge points connect to"
        ),
        central: bool = typer.Option(
            False, "--central/--no-central", help="also run a central system at --ocpp-url"
        ),
    ) -> None:
        """Start simulators for every endpoint of a portfolio (IEC 104 RTUs, Modbus BMS, HTTP clouds,
        OCPP charge points) and run until stopped."""
        from flexopt.adapters.sim.portfolio_sim import PortfolioSimulation

        loaded = load_or_exit(portfolio)
        console = Console()
        try:
            sim = PortfolioSimulation(loaded.portfolio, ocpp_url=ocpp_url, central=central)
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(EXIT_INVALID) from None
        try:
            asyncio.run(_run(sim, duration, console))
        except OSError as exc:  # a port is taken: say which, no traceback
            typer.echo(f"cannot start the simulators: {exc}", err=True)
            raise typer.Exit(EXIT_PORT_IN_USE) from None
