"""The telemetry tests run twice, against SQLite and against a real PostgreSQL server that this file starts once
per session (``pg_server.py``) and stops at the end, failures included. Where no server binary exists the
PostgreSQL half is skipped with the reason (pytest -ra lists it); nowhere else."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.engine import make_url

from flexopt.telemetry import open_db

HERE = Path(__file__).resolve().parent


def _load(name: str) -> ModuleType:
    """Sibling helper modules (test modules cannot import each other under --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location(f"telemetry_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pg_server = _load("pg_server")
records_kit = _load("kit")


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server."""
    if (why := pg_server.missing()) is not None:
        pytest.skip(why)
    server = pg_server.PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A URL of a new, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'telemetry.sqlite3'}"
    server = request.getfixturevalue("postgres")
    return server.url(server.create_database())


@pytest.fixture
def db(db_url):
    database = open_db(make_url(db_url))
    yield database
    database.close()


@pytest.fixture
def kit():
    return records_kit


@pytest.fixture
def pg():
    """The helpers of pg_server.py (its PASSWORD among them)."""
    return pg_server
