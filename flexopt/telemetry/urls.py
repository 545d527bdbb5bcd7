"""Which database a command writes to, and how its URL is shown: never with its password.

``--db URL`` wins, then the ``FLEXOPT_DB`` environment variable, then one SQLite file in the store. A password in a
URL reaches no log, record or error message: everything printed about a database goes through :func:`redact` or
:func:`scrub`.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ENV_VAR = "FLEXOPT_DB"
SQLITE_FILE = "telemetry.sqlite3"
_DRIVERS = {"sqlite": "sqlite", "sqlite+pysqlite": "sqlite", "postgresql": "postgresql+psycopg",
            "postgres": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg"}
# user:password@ in a URL; the password runs to the last @ before a blank, so an unquoted @ in it hides nothing
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<password>\S*)@")


class TelemetryError(RuntimeError):
    """A database flexopt cannot use; the message names it without its password and says what to do."""


def redact(url: str | URL) -> str:
    """The URL with its password replaced by ``***``; also for text that is not a valid URL."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _USERINFO.sub(r"\g<head>:***@", url)


def _secrets(url: str | URL) -> set[str]:
    if isinstance(url, URL):
        password = url.password
        found = {password} if isinstance(password, str) else set()
        return found | {urllib.parse.quote(p, safe="") for p in found} | {urllib.parse.quote_plus(p) for p in found}
    found = {m.group("password") for m in _USERINFO.finditer(url)}
    found |= {urllib.parse.unquote(p) for p in found}
    return {p for p in found if p}


def scrub(text: str, *urls: str | URL) -> str:
    """``text`` with every password of ``urls`` (raw, quoted or unquoted) and every ``user:password@`` part
    replaced by ``***``: error messages of drivers and of SQLAlchemy may quote the URL they were given."""
    secrets = set().union(*(_secrets(u) for u in urls)) if urls else set()
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _USERINFO.sub(r"\g<head>:***@", text)


def resolve_url(db: str | None, store: Path) -> URL:
    """``--db``, else ``$FLEXOPT_DB``, else ``sqlite:///<store>/telemetry.sqlite3``; ``postgresql://`` and
    ``postgres://`` mean psycopg 3. Anything but SQLite and PostgreSQL is refused."""
    text = db if db else os.environ.get(ENV_VAR, "").strip()
    if not text:
        return URL.create("sqlite", database=str(Path(os.path.abspath(store)) / SQLITE_FILE))
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise TelemetryError(f"database URL {redact(text)!r} is not a URL; use sqlite:///PATH or "
                             "postgresql+psycopg://USER@HOST:PORT/DATABASE") from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise TelemetryError(f"database URL {redact(url)!r}: {url.drivername} is not supported; use sqlite:///PATH "
                             "or postgresql+psycopg://USER@HOST:PORT/DATABASE")
    if driver == "sqlite" and url.database in (None, "", ":memory:"):
        raise TelemetryError(f"database URL {redact(url)!r}: SQLite needs a file (sqlite:///PATH); an in-memory "
                             "database would be lost with the process")
    return url.set(drivername=driver)
