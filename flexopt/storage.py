"""Where runs are written: nothing is overwritten, every schedule is a new version.

A run is written into a hidden temporary folder beside its destination and renamed into place when
complete, so a crash never leaves half a schedule that looks whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StorageError(RuntimeError):
    """A destination that would overwrite data; the message says what to do instead."""


def check_new_dir(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise StorageError(
            f"{path} already exists and is not empty; flexopt never overwrites a run. "
            "Choose another --out, or leave --out away to write a new version under --store."
        )


def next_version_dir(store: Path, portfolio: str, day: dt.date, kind: str) -> Path:
    """``store/<portfolio>/<date>/<kind>/vNNN``: the next free version number."""
    base = store / _slug(portfolio) / day.isoformat() / kind
    versions = [int(m.group(1)) for p in base.glob("v*") if (m := re.fullmatch(r"v(\d+)", p.name))]
    return base / f"v{max(versions, default=0) + 1:03d}"


def version_dirs(store: Path, portfolio: str, day: dt.date, kinds: tuple[str, ...]) -> list[Path]:
    """Every complete run of that day among ``kinds``, most recently written first (by modification time)."""
    runs = [p for kind in kinds for p in (store / _slug(portfolio) / day.isoformat() / kind).glob("v*")
            if (p / "run.json").is_file()]
    return sorted(runs, key=lambda p: (p / "run.json").stat().st_mtime, reverse=True)


def latest_version_dir(store: Path, portfolio: str, day: dt.date, kinds: tuple[str, ...]) -> Path | None:
    """The most recently written run of that day among ``kinds``."""
    return next(iter(version_dirs(store, portfolio, day, kinds)), None)


@contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes ``dest`` in one rename, on failure it is removed."""
    check_new_dir(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            check_new_dir(dest)
            dest.rmdir()
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sha256_of(paths: list[Path]) -> str:
    """One hash over the contents of several files, in order (the portfolio and its includes)."""
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.read_bytes())
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "portfolio"
