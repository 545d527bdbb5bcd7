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
import os
from collections.abc import Iterator
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
