"""Store rounds: each record file once, in one transaction with its readings and alarms, whoever comes first.

The key is the record file (portfolio, local day, file name): storing a round that is already there changes nothing,
so the live write, the next round's catch-up and ``flexopt telemetry import`` can all run, even at once. A writer
killed mid-transaction leaves nothing of its round (the database rolls it back); its record file is still there to
be imported.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from flexopt.telemetry.db import TelemetryDB
from flexopt.telemetry.models import AlarmRow, ReadingRow, RoundRow
from flexopt.telemetry.records import RecordError, RoundRows, round_rows


@dataclass
class ImportResult:
    """What an import did: record files stored now, files the database already had, files it could not read."""

    added: list[str] = field(default_factory=list)
    present: int = 0
    problems: list[str] = field(default_factory=list)


def _insert_round(connection: Connection, row: dict[str, Any]) -> int | None:
    """Insert the round unless its record file is already stored; its new id, or None."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (dialect.insert(RoundRow).values(**row)
                 .on_conflict_do_nothing(index_elements=["portfolio", "day", "record_file"])
                 .returning(RoundRow.id))
    return connection.execute(statement).scalar_one_or_none()


def store_round(db: TelemetryDB, rows: RoundRows) -> bool:
    """Store a round with its readings and alarms in one transaction; False when its record file was already
    stored (nothing changes then)."""
    with db.writing() as connection:
        round_id = _insert_round(connection, rows.round)
        if round_id is None:
            return False
        if rows.readings:
            connection.execute(insert(ReadingRow), [r | {"round_id": round_id} for r in rows.readings])
        if rows.alarms:
            connection.execute(insert(AlarmRow), [a | {"round_id": round_id} for a in rows.alarms])
    return True


def stored_files(db: TelemetryDB, portfolio: str, day: dt.date) -> set[str]:
    """The record files of a portfolio's local day that the database holds."""
    with db.reading() as connection:
        query = select(RoundRow.record_file).where(RoundRow.portfolio == portfolio, RoundRow.day == day)
        return set(connection.scalars(query))


def record_files(folder: Path) -> list[Path]:
    """The round records of a dispatch folder, in name (time) order; hidden files are temporary, not records."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


def import_folder(db: TelemetryDB, portfolio: str, day: dt.date, folder: Path, *, stored_by: str = "import",
                  now: dt.datetime | None = None) -> ImportResult:
    """Store every record of a day's dispatch folder that the database lacks, each in its own transaction.
    Idempotent; a file that is not a readable record is reported in ``problems`` and skipped, never fatal."""
    result = ImportResult()
    files = record_files(folder)
    known = stored_files(db, portfolio, day) if files else set()
    stamp = now or dt.datetime.now(dt.UTC)
    for path in files:
        if path.name in known:
            result.present += 1
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise RecordError("not a JSON object")
            rows = round_rows(record, portfolio=portfolio, day=day, record_file=path.name, stored_by=stored_by,
                              stored_utc=stamp)
        except (OSError, ValueError) as exc:  # RecordError and json's errors are ValueErrors
            result.problems.append(f"{path}: skipped, not a readable round record ({exc})")
            continue
        if store_round(db, rows):
            result.added.append(path.name)
        else:  # another writer stored it between our look and our insert
            result.present += 1
    return result
