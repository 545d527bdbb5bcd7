"""Command-line values checked the same way everywhere: dates in a sane range, finite numbers.

click's range checks let NaN through (every comparison with NaN is false) and a date like 9999-12-31 overflows
the calendar arithmetic later with a traceback; here both are exit code 2 with a message naming the option.
"""

from __future__ import annotations

import datetime as dt
import math

import typer

from flexopt.commands.exit_codes import EXIT_INVALID

FIRST_YEAR, LAST_YEAR = 1900, 2200  # the range of timestamps flexopt accepts in data files too


def fail(option: str, message: str) -> typer.Exit:
    typer.echo(f"{option}: {message}", err=True)
    return typer.Exit(EXIT_INVALID)


def check_year(value: dt.date | dt.datetime, option: str, text: str) -> None:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise fail(option, f"{text!r} is outside the years {FIRST_YEAR}-{LAST_YEAR} flexopt schedules; check the "
                           "date")


def parse_day(text: str, option: str = "--date") -> dt.date:
    """A local day written YYYY-MM-DD between 1900 and 2200."""
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise fail(option, f"{text!r} is not a date; use YYYY-MM-DD, e.g. 2024-06-12") from None
    check_year(day, option, text)
    return day


def in_range(option: str, lo: float, hi: float, *, lo_open: bool = False):
    """A typer callback for a number option: finite and in [lo, hi] ((lo, hi] with lo_open). click's own min/max
    let NaN through and call it 'less than or equal to' the maximum."""

    def check(value: float | None) -> float | None:
        if value is None:
            return value
        if not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number; give a value from {lo:g} to {hi:g}",
                                     param_hint=option)
        if value < lo or (lo_open and value == lo) or value > hi:
            low = f"above {lo:g}" if lo_open else f"at least {lo:g}"
            raise typer.BadParameter(f"{value:g} must be {low} and at most {hi:g}", param_hint=option)
        return value

    return check
