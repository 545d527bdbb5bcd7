"""The ``flexopt`` command line: each command group lives in :mod:`flexopt.commands`."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Optimisation-based flexibility scheduling for DER portfolios.",
)

# Each module has register(app); a group whose module is not there yet is simply absent.
_COMMAND_MODULES = ("portfolio_cmds", "schedule", "forecast", "simulate", "dispatch", "check", "telemetry",
                    "replay", "uftp")


@app.command()
def version() -> None:
    """Print the flexopt version."""
    from flexopt.version import __version__

    typer.echo(__version__)


for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"flexopt.commands.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"flexopt.commands.{_name}":
            raise
        continue
    _module.register(app)
