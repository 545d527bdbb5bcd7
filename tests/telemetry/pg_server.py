"""A throwaway PostgreSQL server for the tests: ``initdb`` on a temporary folder, ``pg_ctl`` on a free port of
127.0.0.1, password authentication over TCP (so the tests see real URLs with real passwords), run as the
``postgres`` user when the tests run as root (the server refuses root). Stopped, and its folder removed, by
:meth:`stop`."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import psycopg

# the password has characters that must be quoted in a URL, so both spellings are looked for in the outputs
TOKEN = secrets.token_hex(6)
PASSWORD = "pw-" + TOKEN + "@:/%"


def binary(name: str) -> str | None:
    """``initdb``/``pg_ctl`` on PATH, else from the newest Debian server package."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if os.access(Path(folder) / name, os.X_OK):
            return str(Path(folder) / name)
    return None


def missing() -> str | None:
    """Why no server can be started here, or None."""
    if binary("initdb") is None or binary("pg_ctl") is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    user = "postgres"

    def __init__(self) -> None:
        self._as_postgres = os.geteuid() == 0
        # as root the server runs as postgres, which must reach the folder: /tmp, not a private $TMPDIR
        self.folder = Path(tempfile.mkdtemp(prefix="flexopt-pg-", dir="/tmp" if self._as_postgres else None))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = 0
        self.started_s = 0.0
        self._databases = 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        t0 = time.monotonic()
        pwfile = self.folder / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            for path in (self.folder, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        done = self._run(binary("initdb"), "-D", str(self.data), "-U", self.user, "--pwfile", str(pwfile),
                         "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")
        for _ in range(3):  # a free port can be taken between our look and the server's bind
            self.port = _free_port()
            options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
            done = self._run(binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                             "-t", "60", "start")
            if done.returncode == 0:
                self.started_s = time.monotonic() - t0
                return
        raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}\n{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def url(self, database: str = "postgres", password: str = PASSWORD, port: int | None = None) -> str:
        quoted = urllib.parse.quote(password, safe="")
        return f"postgresql+psycopg://{self.user}:{quoted}@127.0.0.1:{port or self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=PASSWORD,
                               dbname="postgres", autocommit=True)

    def create_database(self) -> str:
        """A new empty database; its name."""
        self._databases += 1
        name = f"flexopt_test_{self._databases}"
        with self.admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name

    def stop(self) -> None:
        if self.data.is_dir():
            self._run(binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
