"""A dispatch that re-optimises itself: after each round the trigger decides, and a re-run is the very intraday run
of ``flexopt schedule intraday`` (the store's lock, the measured states from the telemetry database). The trigger
and its outcome go into the round's record; a failed re-run leaves the schedule in force and is a critical alarm."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from flexopt.adapters.alarms import Alarm
from flexopt.adapters.clock import WALL, Clock
from flexopt.operations.triggers import ReoptimisationTrigger, TriggerOptions
from flexopt.runs.files import jsonable
from flexopt.runs.intraday import first_interval


class Reoptimise:
    """The trigger of one dispatch and the intraday re-run it starts."""

    def __init__(self, portfolio_path: Path, loaded: Any, options: TriggerOptions, *, store: Path,
                 db: str | None = None, wait_s: float = 60.0, clock: Clock = WALL,
                 console: Console | None = None, run_console: Console | None = None) -> None:
        self.portfolio_path = portfolio_path
        self.info = loaded.portfolio.portfolio
        self.trigger = ReoptimisationTrigger(options)
        self.store, self.db, self.wait_s, self.clock = store, db, wait_s, clock
        self.console = console or Console()
        self.run_console = run_console or self.console
        self.runs: list[dict[str, Any]] = []  # every trigger's entry, in order (replay's summary reads them)

    async def after_round(self, record: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
        """The round's record, with ``reoptimisation`` (and an alarm when the re-run failed) when the trigger
        had something to say."""
        decision = self.trigger.observe(record, at)
        if decision is None:
            return record
        entry: dict[str, Any] = {"at": at, **decision.record()}
        alarm = None
        if not decision.fire:
            entry["outcome"] = "held"
        else:
            start = first_interval(None, self.info.timezone, self.info.resolution_min, now=self.clock.now())
            entry["from"] = start.astimezone(dt.UTC)
            ok = False
            with self.clock.work():
                try:
                    outcome = await asyncio.to_thread(self._run, start)
                    entry |= {"outcome": "written", "run": str(outcome.directory)}
                    ok = True
                except typer.Exit as exc:
                    entry |= {"outcome": "failed", "exit_code": exc.exit_code}
                except Exception as exc:  # an unexpected error must not stop the dispatch: it is the alarm
                    entry |= {"outcome": "failed", "error": f"{type(exc).__name__}: {exc}"}
            self.trigger.ran(at, ok)
            if not ok:
                in_force = (record.get("schedule") or {}).get("path") or "none"
                why = f"exit {entry['exit_code']}" if "exit_code" in entry else entry["error"]
                alarm = Alarm("critical", "*", "reoptimisation_failed",
                              f"intraday re-run from {start.isoformat(timespec='minutes')} failed ({why}); the "
                              f"schedule in force stays {in_force}", at)
        record = dict(record)
        record["reoptimisation"] = jsonable(entry)
        if alarm is not None:
            record["alarms"] = [*record.get("alarms", []), jsonable(asdict(alarm))]
            record["summary"] = {**record["summary"],
                                 "alarms_critical": record["summary"].get("alarms_critical", 0) + 1}
        self.runs.append(record["reoptimisation"])
        self.console.print(f"re-optimisation {entry['outcome']}: {'; '.join(decision.reasons)}"
                           + (f" -> {entry['run']}" if "run" in entry else ""), highlight=False, markup=False,
                           soft_wrap=True)
        return record

    def _run(self, start: dt.datetime) -> Any:
        from flexopt.commands.schedule import run_intraday

        return run_intraday(self.portfolio_path, start, store=self.store, db=self.db,
                            resolution_min=self.info.resolution_min, wait_s=self.wait_s, console=self.run_console)
