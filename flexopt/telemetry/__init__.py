"""The telemetry store: every dispatch round's measurements and summary in a database, for operators and for
intraday's measured starting states.

SQLite in the store by default, PostgreSQL when asked (``urls``); SQLAlchemy models (``models``) migrated by Alembic
on open (``migrate``, ``db``); the JSON round records stay the trail and the database is filled from them
(``records`` turns a record into rows, ``writer`` stores them once per record file, ``sync`` keeps a running
dispatch's database in step); ``reader`` answers "what was measured".
"""

from flexopt.telemetry.db import TelemetryDB, open_db
from flexopt.telemetry.reader import IntervalPower, Reading, latest_per_asset, latest_per_device, power_series
from flexopt.telemetry.records import RecordError, round_rows
from flexopt.telemetry.sync import RoundSync
from flexopt.telemetry.urls import ENV_VAR, SQLITE_FILE, TelemetryError, redact, resolve_url, scrub
from flexopt.telemetry.writer import ImportResult, import_folder, store_round, stored_files

__all__ = [
    "ENV_VAR",
    "SQLITE_FILE",
    "ImportResult",
    "IntervalPower",
    "Reading",
    "RecordError",
    "RoundSync",
    "TelemetryDB",
    "TelemetryError",
    "import_folder",
    "latest_per_asset",
    "latest_per_device",
    "open_db",
    "power_series",
    "redact",
    "resolve_url",
    "round_rows",
    "scrub",
    "store_round",
    "stored_files",
]
