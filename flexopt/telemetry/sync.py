"""Keep the database in step with a running dispatch: after each round, store what its day folder holds and the
database lacks (normally just the new record). A folder whose store failed (database down, disk full) is tried
again after every round until it succeeds, so an outage costs no round: the records are the trail, the database
catches up from them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flexopt.telemetry.db import TelemetryDB
from flexopt.telemetry.urls import TelemetryError
from flexopt.telemetry.writer import import_folder


class RoundSync:
    """The database side of a dispatch: :meth:`after_round` returns warnings to print, never raises for the
    database."""

    def __init__(self, db: TelemetryDB, portfolio: str) -> None:
        self.db = db
        self.portfolio = portfolio
        self.pending: dict[Path, dt.date] = {}
        self._reported: set[str] = set()

    def after_round(self, day: dt.date, folder: Path) -> list[str]:
        """Store the day folder's new records, and retry the folders that failed before."""
        self.pending[folder] = day
        warnings = []
        for path, folder_day in list(self.pending.items()):
            try:
                result = import_folder(self.db, self.portfolio, folder_day, path, stored_by="dispatch")
            except TelemetryError as exc:
                warnings.append(f"telemetry not stored: {exc}; the round is in its record, and the database catches "
                                "up at the next round (or `flexopt telemetry import`)")
                continue
            del self.pending[path]
            fresh = [p for p in result.problems if p not in self._reported]
            self._reported.update(fresh)
            warnings += fresh
        return warnings
