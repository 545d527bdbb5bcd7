"""The ``flexopt`` command line."""

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Flexibility scheduling for DER portfolios.")


@app.command()
def version() -> None:
    """Print the flexopt version."""
    from flexopt import __version__

    typer.echo(__version__)
