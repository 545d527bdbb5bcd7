"""Bring a telemetry database to the schema of this flexopt: Alembic, run on open, under a lock.

Opening runs every migration the database lacks, so a store made by an older flexopt upgrades in place and a new
one is created on first use. Concurrent first opens (two dispatches, a dispatch and an import) must not both create
tables: SQLite openers take an ``flock`` beside the file (kept here rather than borrowed from ``flexopt.runs``, so
that runs may use this package without an import cycle), PostgreSQL openers an advisory lock held for the
migration's transaction. The version table has its own name, so a shared PostgreSQL database can hold other
applications' Alembic histories too.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

VERSION_TABLE = "flexopt_telemetry_version"
SCRIPT_LOCATION = "flexopt.telemetry:migrations"
ADVISORY_LOCK_KEY = 0x666C65786F7074  # "flexopt": one key for every flexopt migration of a PostgreSQL database


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer flexopt than this one."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel drops it if we die: no stale lock after kill -9
        yield
    finally:
        os.close(fd)


def _lock_file(engine: Engine) -> Path | None:
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    return Path(f"{engine.url.database}.lock")


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Run the missing migrations up to ``revision`` (default the newest) and return the revision the database is
    at. Safe to call from many processes at once; a no-op when the database is already there."""
    config = alembic_config()
    lock_file = _lock_file(engine)
    lock = _file_lock(lock_file) if lock_file is not None else _no_lock()
    with lock:
        if engine.dialect.name == "sqlite":
            _wal(engine)
        with engine.begin() as connection:
            return _upgrade(connection, config, revision)


def _wal(engine: Engine) -> None:
    """WAL mode (persistent in the file): readers never wait for the writer. Set outside any transaction."""
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[union-attr]
    finally:
        raw.close()


def _upgrade(connection: Connection, config: Config, revision: str) -> str:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    current = current_revision(connection)
    script = ScriptDirectory.from_config(config)
    if current is not None and current not in {s.revision for s in script.walk_revisions()}:
        raise SchemaTooNew(f"the database is at schema revision {current}, which this flexopt does not know "
                           f"(it knows up to {script.get_current_head()}): it was written by a newer flexopt; "
                           "upgrade flexopt or use another database")
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, revision)
    except CommandError as exc:
        raise SchemaTooNew(str(exc)) from None
    return current_revision(connection) or ""


@contextmanager
def _no_lock() -> Iterator[None]:
    yield
