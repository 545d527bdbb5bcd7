"""Hidden folders that a writer is filling, and the safe removal of those whose writer died.

Runs and dispatch records are written into a hidden ``.flexopt-tmp-*`` folder and appear under their real
name only when complete. A writer that is killed (``kill -9``, power loss) leaves that folder behind. To
remove leftovers without ever touching a folder that is still being written, each writer holds a flock
on its folder from before anything is written in it until it is renamed into place or removed, and
records who it is (``.owner.json``: pid, host, start time). A leftover is removed when nobody holds its
lock and either its owner record names a process on this host that no longer exists, or nothing in it
has changed for :data:`STALE_AFTER_S` (a writer on another host, or one killed before it wrote its owner
record). A folder whose lock is held is never removed, however old. Complete runs and records are never
touched: they do not have these names.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flexopt.runs.locks import try_lock

TEMP_PREFIX = ".flexopt-tmp-"
OWNER_FILE = ".owner.json"
STALE_AFTER_S = 24 * 3600.0  # generous: a run or a dispatch round never writes for that long


@dataclass(frozen=True)
class Leftover:
    """A temporary folder or file of a dead writer: removed, or why it could not be."""

    path: Path
    reason: str
    removed: bool = True

    def __str__(self) -> str:
        verb = "removed" if self.removed else "could not remove"
        return f"{verb} leftover {self.path} ({self.reason})"


class TempDir:
    """A hidden folder in ``parent``, locked and owned by this process until :meth:`moved` or :meth:`close`."""

    def __init__(self, parent: Path, label: str) -> None:
        self.path = _new_folder(parent, f"{TEMP_PREFIX}{label}-")
        self._moved = False
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        try:
            if not try_lock(self._fd):  # nobody else knows the name yet: this cannot happen
                raise RuntimeError(f"{self.path} is locked by another writer")
            owner = {"pid": os.getpid(), "host": socket.gethostname(),
                     "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                     "command": " ".join(sys.argv)[:500]}
            (self.path / OWNER_FILE).write_text(json.dumps(owner) + "\n", encoding="utf-8")
        except BaseException:
            self.close()
            raise

    def seal(self) -> None:
        """Drop the owner record and flush every file and the folder itself to disk, so that what is
        renamed into place is complete even after a power loss."""
        (self.path / OWNER_FILE).unlink(missing_ok=True)
        for entry in os.scandir(self.path):
            if entry.is_file(follow_symlinks=False):
                fsync_path(Path(entry.path))
        fsync_path(self.path)

    def moved(self, dest: Path) -> None:
        """The folder was renamed to ``dest``: it is no longer ours to remove."""
        self._moved = True
        self.path = dest

    def close(self) -> None:
        """Remove the folder unless it was moved into place, then release its lock."""
        if not self._moved:
            shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)

    def __enter__(self) -> TempDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _new_folder(parent: Path, prefix: str) -> Path:
    """A new folder with a random name; unlike ``mkdtemp`` (0700) it gets the umask's permissions, which the
    run keeps once renamed into place, so other users of the store can read it as before."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_stale(folder: Path, legacy: Callable[[str], bool] | None = None,
                max_age_s: float = STALE_AFTER_S) -> list[Leftover]:
    """Remove the temporary folders of dead writers in ``folder`` (and entries for which ``legacy(name)`` is
    true: temporary names of earlier flexopt versions, which had no lock; only the age rule applies to them).
    Returns what was removed and why; a missing folder has nothing to clean."""
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        if name.startswith(TEMP_PREFIX) or (legacy is not None and legacy(name)):
            leftover = _remove_if_stale(folder / name, max_age_s)
            if leftover is not None:
                found.append(leftover)
    return found


def _remove_if_stale(path: Path, max_age_s: float) -> Leftover | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # gone meanwhile (renamed into place or removed), or a symlink: not ours
        return None
    try:
        if not try_lock(fd):
            return None  # its writer is alive
        held, now = os.fstat(fd), _lstat(path)
        if now is None or (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            return None  # renamed into place between listing and locking
        reason = _owner_gone(path) or _too_old(path, max_age_s)
        if reason is None:
            return None
        try:
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            return Leftover(path, f"{reason}; {exc}", removed=False)
        return Leftover(path, reason)
    finally:
        os.close(fd)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _owner_gone(path: Path) -> str | None:
    """Why the owner is provably gone: it ran on this host and its pid no longer exists (or is a zombie)."""
    try:
        owner = json.loads((path / OWNER_FILE).read_text(encoding="utf-8"))
        pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname() or _running(pid):
        return None
    return f"its writer, pid {pid} on {host} started {owner.get('started_utc', '?')}, is gone"


def _running(pid: int) -> bool:
    """Whether a process with this pid exists; a reused pid reads as running, which only delays removal."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited (and dropped its locks) but keeps its pid until its parent reaps it
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:][:1] != "Z"
    except (OSError, ValueError):
        return True


def _too_old(path: Path, max_age_s: float) -> str | None:
    """Unlocked and untouched for longer than ``max_age_s`` (by the newest modification time inside)."""
    try:
        newest = os.lstat(path).st_mtime
        if os.path.isdir(path):
            for entry in os.scandir(path):
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    except OSError:
        return None
    age = time.time() - newest
    if age <= max_age_s:
        return None
    return f"nobody holds its lock and nothing in it changed for {age / 3600:.0f} h"
