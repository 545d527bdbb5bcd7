"""Where runs are written: nothing is overwritten, every schedule is a new version.

A run is written into a hidden temporary folder (:mod:`flexopt.runs.tempdirs`) and renamed into place when
complete, so a crash never leaves half a schedule that looks whole. Its version is chosen at that rename,
under a lock on the day folder, so runs started together all land, each as its own version, and each
records its completion order in ``version.json``: "newest" means "last completed" without trusting clocks.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from flexopt.runs.locks import exclusive
from flexopt.runs.tempdirs import Leftover, TempDir, clean_stale, fsync_path

SLUG_MAX = 64  # characters of a portfolio's folder name, hash suffix included
VERSION_FILE = "version.json"
LOCK_FILE = ".lock"
SCHEDULE_LOCK_FILE = ".schedule.lock"  # one per portfolio and store: schedule runs one at a time
LOOKBACK_DAYS = 8  # runs of up to this many days before a day may still cover it (horizons up to a week)
_VERSION = re.compile(r"v(\d+)")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# temporary names of flexopt before owned temp folders: runs .v001.<random>/, dispatch records .round-<random>.json
_LEGACY_TEMP = re.compile(r"\.v\d+\.\w+|\.round-\w+\.json")


class StorageError(RuntimeError):
    """A destination that would overwrite data or cannot be written; the message says what to do instead."""


def portfolio_slug(name: str) -> str:
    """The portfolio's folder name in the store: the name itself when it is a plain file name of at most
    :data:`SLUG_MAX` characters (letters, digits, ``_.-``, not starting with ``.`` or ``-``); otherwise an
    ASCII rendering, shortened, plus 8 hex digits of the name's SHA-256, so that different names never share
    a folder. Never ``.``/``..``, never a separator."""
    if _PLAIN_NAME.fullmatch(name) and len(name) <= SLUG_MAX:
        return name
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_name).lstrip("-._")[:SLUG_MAX - 9].rstrip("-._")
    return f"{readable or 'portfolio'}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def day_dir(store: Path, portfolio: str, day: dt.date) -> Path:
    """``<store>/<portfolio slug>/<date>``: the runs and dispatch records of one local day."""
    path = store / portfolio_slug(portfolio) / day.isoformat()
    root = os.path.abspath(store)
    if os.path.commonpath([root, os.path.abspath(path)]) != root:  # the slug makes this impossible; say so
        raise StorageError(f"portfolio {portfolio!r} would be written outside the store {store}")
    return path


def check_new_dir(path: Path) -> None:
    """``--out``: a folder that does not exist yet or is empty."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        what = "is not a folder" if not path.is_dir() else "already exists and is not empty"
        raise StorageError(
            f"{path} {what}; flexopt never overwrites a run. "
            "Choose another --out, or leave --out away to write a new version under --store."
        )


def check_writable(path: Path, option: str) -> None:
    """Fail early, with the option's name, when ``path`` is not (or cannot become) a folder flexopt can
    create files in: below a regular file, a file itself, read-only. Tried for real (a probe folder is
    made and removed in the nearest existing folder), so root, ACLs and read-only mounts count."""
    probe_in = Path(os.path.abspath(path))
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        where = "is" if probe_in == Path(os.path.abspath(path)) else f"is below {probe_in}, which is"
        raise StorageError(f"{option} {path} {where} a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".flexopt-probe-", dir=probe_in))
    except OSError as exc:
        raise StorageError(f"{option} {path}: cannot write in {probe_in} ({exc.strerror or exc})") from None


def next_version_number(kind_dir: Path) -> int:
    """One more than the highest ``vNNN`` folder (complete or not) of a kind."""
    try:
        names = os.listdir(kind_dir)
    except FileNotFoundError:
        return 1
    return max((int(m.group(1)) for n in names if (m := _VERSION.fullmatch(n))), default=0) + 1


def completed_runs(store: Path, portfolio: str, day: dt.date, kinds: tuple[str, ...]) -> list[Path]:
    """The complete runs of a day among ``kinds``, newest first: by completion sequence (``version.json``);
    runs of flexopt versions before it have none and count as older, ordered by their run.json time."""
    base = day_dir(store, portfolio, day)
    runs = [p for kind in kinds for p in (base / kind).glob("v*")
            if _VERSION.fullmatch(p.name) and (p / "run.json").is_file()]

    def key(p: Path) -> tuple[int, float, int]:
        seq = _sequence(p)
        return seq, (p / "run.json").stat().st_mtime if seq == 0 else 0.0, int(p.name[1:])

    return sorted(runs, key=key, reverse=True)


def runs_in_force_order(store: Path, portfolio: str, day: dt.date,
                        kinds: tuple[str, ...] = ("intraday", "day-ahead")) -> list[Path]:
    """Where to look for the run in force on a local ``day``: the day's own complete runs, newest first, then
    those of each earlier day (a rolling horizon crosses midnight), newest day first. A run of the day always
    wins over a run of an earlier day that also covers the time; callers keep the first that covers it."""
    return [run for back in range(LOOKBACK_DAYS + 1)
            for run in completed_runs(store, portfolio, day - dt.timedelta(days=back), kinds)]


def run_span(run: Path) -> tuple[dt.datetime, dt.datetime] | None:
    """(start, end) in UTC of a run's horizon from its run.json; None when it cannot be read."""
    try:
        horizon = json.loads((run / "run.json").read_text(encoding="utf-8"))["horizon"]
        start = dt.datetime.fromisoformat(horizon["start_utc"])
        end = dt.datetime.fromisoformat(horizon["end_utc"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (start, end) if start.tzinfo and end.tzinfo else None


def latest_version_dir(store: Path, portfolio: str, day: dt.date, kinds: tuple[str, ...]) -> Path | None:
    """The last completed run of that day among ``kinds``."""
    runs = completed_runs(store, portfolio, day, kinds)
    return runs[0] if runs else None


def _sequence(run: Path) -> int:
    try:
        return int(json.loads((run / VERSION_FILE).read_text(encoding="utf-8"))["sequence"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class RunTarget:
    """A run being written: files go into :attr:`tmp`; :meth:`commit` makes it a run under its final name."""

    def __init__(self, parent: Path, label: str, clean: Callable[[], list[Leftover]]) -> None:
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.cleaned = clean()
            self._temp = TempDir(parent, label)
        except OSError as exc:
            raise StorageError(f"cannot write in {parent}: {exc.strerror or exc}") from None
        self.tmp = self._temp.path
        self.directory: Path | None = None

    def commit(self) -> Path:
        raise NotImplementedError

    def close(self) -> None:
        self._temp.close()


class _VersionTarget(RunTarget):
    def __init__(self, store: Path, portfolio: str, day: dt.date, kind: str) -> None:
        check_writable(store, "--store")
        self.day = day_dir(store, portfolio, day)
        self.kind = kind
        super().__init__(self.day / kind, "run", lambda: clean_leftovers(store, portfolio))

    def commit(self) -> Path:
        """Under the day's lock: the next version of the kind and the next completion sequence of the day,
        recorded in ``version.json``, then one rename."""
        try:
            self._temp.seal()
            with exclusive(self.day / LOCK_FILE):
                return self._rename_to_next_version()
        except OSError as exc:
            raise StorageError(f"cannot write the run under {self.day / self.kind}: {exc.strerror or exc}") from None

    def _rename_to_next_version(self) -> Path:
        kind_dir = self.day / self.kind
        dest = kind_dir / f"v{next_version_number(kind_dir):03d}"
        runs = [p for p in self.day.glob("*/v*") if _VERSION.fullmatch(p.name)]
        record = {"version": dest.name, "kind": self.kind,
                  "sequence": max((_sequence(p) for p in runs), default=0) + 1,
                  "completed_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        with open(self.tmp / VERSION_FILE, "w", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(self.tmp, dest)  # nobody else names a version while we hold the lock
        self._temp.moved(dest)
        fsync_path(kind_dir)
        self.directory = dest
        return dest


class _DirTarget(RunTarget):
    def __init__(self, dest: Path) -> None:
        check_new_dir(dest)
        check_writable(dest, "--out")
        self.dest = dest
        super().__init__(dest.parent, "out", lambda: clean_stale(dest.parent))

    def commit(self) -> Path:
        """One rename onto ``dest``, which POSIX allows only when it is missing or an empty folder."""
        try:
            self._temp.seal()
            os.rename(self.tmp, self.dest)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                check_new_dir(self.dest)  # says what is there now
            raise StorageError(f"cannot write {self.dest}: {exc.strerror or exc}") from None
        self._temp.moved(self.dest)
        fsync_path(self.dest.parent)
        self.directory = self.dest
        return self.dest


@contextmanager
def new_run(store: Path, portfolio: str, day: dt.date, kind: str, out: Path | None = None) -> Iterator[RunTarget]:
    """A new run: ``out`` when given (it must not exist or be empty), else the next version under
    ``<store>/<portfolio>/<date>/<kind>/``. The temporary folder is claimed (and stale ones of dead writers
    removed) on entry, so an unusable destination fails before any work. Not committed: removed on exit."""
    target = _DirTarget(out) if out is not None else _VersionTarget(store, portfolio, day, kind)
    try:
        yield target
    finally:
        target.close()


@contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes ``dest`` in one rename, on failure it is removed."""
    target = _DirTarget(dest)
    try:
        yield target.tmp
        target.commit()
    finally:
        target.close()


def schedule_lock_path(store: Path, portfolio: str) -> Path:
    """``<store>/<portfolio slug>/.schedule.lock``, its folder created: the lock schedule runs take."""
    folder = store / portfolio_slug(portfolio)
    path = folder / SCHEDULE_LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))
    except OSError as exc:
        raise StorageError(f"--store {store}: cannot create {path} ({exc.strerror or exc})") from None
    return path


def uftp_dir(store: Path, portfolio: str) -> Path:
    """``<store>/<portfolio slug>/uftp``: the UFTP message log, the ledger of ordered limits, settlements."""
    return store / portfolio_slug(portfolio) / "uftp"


def sha256_of(paths: list[Path]) -> str:
    """One hash over the contents of several files, in order (the portfolio and its includes)."""
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.read_bytes())
    return digest.hexdigest()


def clean_leftovers(store: Path, portfolio: str) -> list[Leftover]:
    """Remove what killed writers left anywhere in the portfolio's folder of the store (every day's run kinds
    and dispatch folder, so a day that gets no further run is cleaned too): see :mod:`flexopt.runs.tempdirs`."""
    base = store / portfolio_slug(portfolio)
    folders = sorted(p for p in base.glob("*/*") if not p.name.startswith(".") and p.is_dir())
    return [leftover for folder in folders for leftover in clean_stale(folder, _legacy_temp)]


def _legacy_temp(name: str) -> bool:
    return bool(_LEGACY_TEMP.fullmatch(name))
