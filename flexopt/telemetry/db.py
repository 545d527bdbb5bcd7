"""Open the telemetry database: the engine with the settings each backend needs, migrated to this flexopt's schema.

SQLite (the default, one file in the store): WAL, so readers never wait; a busy timeout, so two writers wait for
each other instead of failing; ``BEGIN IMMEDIATE`` for writes, so a transaction never fails half-way because
another writer came first; foreign keys on. PostgreSQL (psycopg 3): a bounded connect timeout, so an unreachable
server is an error within seconds, not a hang; connections checked before use, so a restarted server is
reconnected to. Every error leaves here as :class:`TelemetryError` with the URL's password removed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from flexopt.telemetry.migrate import SchemaTooNew, upgrade
from flexopt.telemetry.urls import TelemetryError, redact, scrub

BUSY_TIMEOUT_S = 60.0  # SQLite: how long a writer waits for another before giving up
CONNECT_TIMEOUT_S = 10  # PostgreSQL: how long to wait for the server to answer at all
_READ_ONLY = "flexopt_read_only"


@dataclass
class TelemetryDB:
    """An open, migrated telemetry database. ``name`` is its URL without the password, for messages."""

    engine: Engine
    url: URL
    revision: str

    @property
    def name(self) -> str:
        return redact(self.url)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction (committed at the end of the block, rolled back on an error)."""
        with self.guard("write"), self.engine.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction that never waits for a SQLite writer."""
        with self.guard("read"), self.engine.connect() as connection:
            connection.execution_options(**{_READ_ONLY: True})
            with connection.begin():
                yield connection

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Database and driver errors as :class:`TelemetryError`, naming the database without its password."""
        try:
            yield
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
            raise TelemetryError(f"cannot {what} telemetry database {self.name}: {describe(exc, self.url)}") from None

    def close(self) -> None:
        self.engine.dispose()


def describe(exc: BaseException, url: URL | str) -> str:
    """The error's first line, without SQLAlchemy's links and parameters and without the password."""
    message = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
    message = message.split("\n[SQL:")[0].split("\n(Background on this error")[0]
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return scrub("; ".join(lines[:3]) or type(exc).__name__, url)


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    database = Path(url.database or "")
    if not database.parent.is_dir():
        raise TelemetryError(f"telemetry database {redact(url)}: the folder {database.parent} does not exist")
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # flexopt, not the driver, says when transactions begin
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgresql_engine(url: URL) -> Engine:
    connect_args: dict[str, Any] = {"application_name": "flexopt"}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True, pool_size=2, max_overflow=4)


def open_db(url: URL, *, revision: str = "head", busy_timeout_s: float = BUSY_TIMEOUT_S) -> TelemetryDB:
    """Connect and migrate (creating the schema on first use; ``revision`` only for tests of older schemas).
    Raises :class:`TelemetryError` for a database that cannot be reached, opened or migrated, or that a newer
    flexopt wrote; the message never holds the password. ``busy_timeout_s``: how long a SQLite writer waits."""
    engine: Engine | None = None
    try:
        sqlite_db = url.get_backend_name() == "sqlite"
        engine = _sqlite_engine(url, busy_timeout_s) if sqlite_db else _postgresql_engine(url)
        at = upgrade(engine, revision)
    except SchemaTooNew as exc:
        if engine is not None:
            engine.dispose()
        raise TelemetryError(f"telemetry database {redact(url)}: {scrub(str(exc), url)}") from None
    except (SQLAlchemyError, sqlite3.Error, OSError, ImportError) as exc:
        if engine is not None:
            engine.dispose()
        raise TelemetryError(f"cannot open telemetry database {redact(url)}: {describe(exc, url)}") from None
    return TelemetryDB(engine, url, at)
