"""Advisory locks for the run store, with ``flock(2)``.

The kernel drops a flock when its holder dies, even by ``kill -9``, so a lock can never be left behind by a
crash, and a lock that nobody holds proves that its writer is gone. flock locks belong to an open file
description: two opens in one process exclude each other like two processes do, so threads and tests
behave as separate processes would. This assumes a local POSIX file system (Linux, macOS); NFS is not a
goal (Linux emulates flock there with byte-range locks, which mostly works, but it is not tested).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_BUSY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES}


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on an open file or folder without waiting; False when someone holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the exclusive lock on ``path`` (created when missing, never deleted: waiters must share one
    inode) for the duration of the block, waiting for it when another writer has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class LockBusy(RuntimeError):
    """The lock stayed held for the whole wait; ``holder`` says by whom, as far as its record tells."""

    def __init__(self, path: Path, holder: str, waited_s: float) -> None:
        super().__init__(f"{path} is held by {holder} (waited {waited_s:.0f} s)")
        self.path, self.holder, self.waited_s = path, holder, waited_s


@contextmanager
def held(path: Path, wait_s: float, owner: dict, on_wait: Callable[[str], None] | None = None,
         poll_s: float = 0.1) -> Iterator[float]:
    """Hold the exclusive lock on ``path``, waiting at most ``wait_s`` seconds (0: not at all) for another
    holder; raise :class:`LockBusy` when it is still held then. The holder writes ``owner`` (pid, host, what it
    does) into the file so that a waiter can say who it waits for. Yields the seconds waited. flock has no
    timeout, so the wait polls; the kernel still drops the lock of a holder that dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        started = time.monotonic()
        if not try_lock(fd):
            if on_wait is not None and wait_s > 0:
                on_wait(f"waiting up to {wait_s:g} s for {_holder(fd)}")
            while not try_lock(fd):
                waited = time.monotonic() - started
                if waited >= wait_s:
                    raise LockBusy(path, _holder(fd), waited)
                time.sleep(min(poll_s, wait_s - waited))
        waited_s = time.monotonic() - started
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode("utf-8"), 0)
        yield waited_s
    finally:
        os.close(fd)  # closing releases the lock


def _holder(fd: int) -> str:
    """Who holds the lock, from the record its holder wrote (it may be mid-write: then just 'another process')."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return (f"pid {data['pid']} on {data['host']} ({data.get('what', 'a run')}, since "
                f"{data.get('since_utc', '?')})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
