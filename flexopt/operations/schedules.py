"""Which stored schedule run is in force: the newest of the day whose intervals contain a time, else (a rolling
horizon crosses midnight) the newest of an earlier day whose intervals contain it."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from flexopt.adapters.base import utcnow
from flexopt.data.wall_clock import wall_clock_instant
from flexopt.runs.store import LOOKBACK_DAYS, completed_runs, run_span, runs_in_force_order

SCHEDULE_KINDS = ("intraday", "day-ahead")


class ScheduleNotFound(LookupError):
    """No usable schedule for the requested day or time; the message says where flexopt looked."""


@dataclass
class ScheduleRun:
    """One stored run: its folder, its schedule rows and its run.json record."""

    path: Path
    frame: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.path.name

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "version": self.version, "kind": self.info.get("kind"),
                "date": self.info.get("date"), "created_utc": self.info.get("created_utc")}


def load_schedule_run(path: Path) -> ScheduleRun:
    """Read ``schedule.parquet`` (and ``run.json`` when present) of a run folder; a damaged one is
    :class:`ScheduleNotFound` with the reason, not a traceback."""
    file = path / "schedule.parquet"
    if not file.is_file():
        raise ScheduleNotFound(f"{path}: no schedule.parquet (is this a run folder of flexopt schedule?)")
    try:
        frame = pd.read_parquet(file)
        for col in ("interval_start", "interval_end"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        info: dict[str, Any] = {}
        if (path / "run.json").is_file():
            info = json.loads((path / "run.json").read_text())
    except (OSError, ValueError, KeyError) as exc:  # pyarrow's errors are OSError or ValueError
        raise ScheduleNotFound(f"{path}: cannot read the run ({type(exc).__name__}: {exc})") from None
    return ScheduleRun(path, frame, info)


def _covers(run: ScheduleRun, at: dt.datetime) -> bool:
    return not rows_at(run.frame, at).empty


def find_schedule_run(store: Path, portfolio_name: str, day: dt.date, at: dt.datetime | None = None) -> ScheduleRun:
    """The last completed run (intraday or day-ahead) of a local day in the store; with ``at``, the last one
    whose intervals contain it (an intraday run written before its first interval leaves the earlier run in
    force), else the last run of the nearest earlier day that contains it (an intraday run of yesterday whose
    horizon reaches past midnight). A run of the day always wins over one of an earlier day. A run that cannot
    be read is passed over and named in the error when nothing else fits."""
    own = completed_runs(store, portfolio_name, day, SCHEDULE_KINDS)
    runs = own if at is None else runs_in_force_order(store, portfolio_name, day, SCHEDULE_KINDS)
    missing = ScheduleNotFound(
        f"no schedule for {portfolio_name} on {day.isoformat()} in {store} (looked for "
        f"{'/'.join(SCHEDULE_KINDS)} runs of that day" + ("" if at is None else
                                                         f", and of the {LOOKBACK_DAYS} days before covering "
                                                         f"{at.isoformat()}")
        + f"); run `flexopt schedule day-ahead ... --date {day.isoformat()}` or pass --run RUN_DIR")
    if not runs:
        raise missing
    unreadable = []
    for path in runs:
        span = run_span(path) if at is not None else None
        if span is not None and not span[0] <= at < span[1]:
            continue  # its run.json says it does not reach `at`: no need to read its schedule
        try:
            candidate = load_schedule_run(path)
        except ScheduleNotFound as exc:
            unreadable.append(str(exc))
            continue
        if at is None or _covers(candidate, at):
            return candidate
    if not own:
        raise missing
    covers = "" if at is None else f" covers {at.isoformat()}"
    raise ScheduleNotFound(f"no schedule run for {portfolio_name} on {day.isoformat()} in {store}{covers} "
                           f"(newest: {runs[0]})" + "".join(f"; {u}" for u in unreadable))


def parse_at(text: str | None, tz: str) -> dt.datetime:
    """A local wall-clock time of the portfolio (or a time with an offset) as UTC; now when None."""
    if not text:
        return utcnow()
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time; use YYYY-MM-DDTHH:MM (portfolio local time)") from None
    if t.tzinfo is None:
        t = wall_clock_instant(t, ZoneInfo(tz), text)  # a time the clocks show twice or never is refused
    return t.astimezone(dt.UTC)


def rows_at(frame: pd.DataFrame, at: dt.datetime) -> pd.DataFrame:
    """The schedule rows of the interval that contains ``at``."""
    ts = pd.Timestamp(at)
    return frame[(frame["interval_start"] <= ts) & (frame["interval_end"] > ts)]
