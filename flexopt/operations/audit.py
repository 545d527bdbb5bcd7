"""The dispatch audit trail: one never-rewritten JSON record per round and one appended line of ``rounds.csv``
per round, under ``<store>/<portfolio>/<day>/dispatch/``; operators and cron monitoring read alarms there."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
from pathlib import Path
from typing import Any

from flexopt.config.redaction import redact_obj
from flexopt.runs.store import day_dir, portfolio_slug
from flexopt.runs.tempdirs import TempDir, fsync_path

DISPATCH_DIR = "dispatch"
SUMMARY_FILE = "rounds.csv"
SUMMARY_COLUMNS = ("file", "at_utc", "interval_start_utc", "schedule_run", "assets", "confirmed", "failed",
                   "clamped", "skipped", "alarms_critical", "alarms_warning")


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def write_round(folder: Path, record: dict[str, Any], at: dt.datetime) -> Path:
    """Write the record as ``<folder>/<UTC stamp of at>-<n>.json`` with the first free n. The file appears
    complete or not at all: it is written and fsynced in a locked hidden folder, then hard-linked to its name
    (a rename that refuses to replace an existing file). A writer killed midway leaves only that hidden
    folder, which :func:`flexopt.runs.store.clean_leftovers` removes once its writer is provably gone. Every secret
    in it is redacted first (:mod:`flexopt.config.redaction`)."""
    record = redact_obj(record)
    folder.mkdir(parents=True, exist_ok=True)
    with TempDir(folder, "round") as tmp:
        file = tmp.path / "record.json"
        with open(file, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        n = 1
        while True:
            dest = folder / f"{_stamp(at)}-{n}.json"
            try:
                os.link(file, dest)
                break
            except FileExistsError:
                n += 1
    fsync_path(folder)
    return dest


def read_rounds(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every round record of a dispatch folder in file-name order, and one line for each file that is not a
    readable record (damaged by hand or by a disk): skipped and reported, never a crash. Hidden files are
    temporary and not records."""
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or "summary" not in record:
                raise ValueError("not a round record")
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: skipped, not a readable round record ({exc})")
            continue
        record["file"] = path.name
        records.append(record)
    return records, problems


def append_summary(folder: Path, record: dict[str, Any], file: Path) -> Path:
    """Append one line to ``rounds.csv``; existing lines are never touched. The header is written to a
    temporary file and linked into place, so a killed writer never leaves a file without one."""
    path = folder / SUMMARY_FILE
    if not path.exists():
        with TempDir(folder, "summary") as tmp:
            header = tmp.path / SUMMARY_FILE
            with open(header, "w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerow(SUMMARY_COLUMNS)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another round created it first
                os.link(header, path)
    s = record["summary"]
    row = [file.name, record["at"], record["interval_start"], (record["schedule"] or {}).get("path"), s["assets"],
           s["confirmed"], s["failed"], s["clamped"], s["skipped"], s["alarms_critical"], s["alarms_warning"]]
    buf = io.StringIO()
    csv.writer(buf).writerow(redact_obj(row))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, buf.getvalue().encode())  # one write with O_APPEND: lines of parallel rounds never interleave
    finally:
        os.close(fd)
    return path


def dispatch_folder(store: Path, portfolio_name: str, day: dt.date) -> Path:
    """Rounds of a local day live beside that day's schedule runs: ``<store>/<portfolio>/<day>/dispatch/``
    (the same safe portfolio folder name as the runs; whichever run each round used is named in the record)."""
    return day_dir(store, portfolio_name, day) / DISPATCH_DIR


STATE_DIR = ".state"


def state_folder(store: Path, portfolio_name: str) -> Path:
    """What dispatch keeps across processes (OCPP chargers' transactions and boot state), one folder per session
    service: ``<store>/<portfolio>/.state/<protocol>/``; hidden, so no day or run listing ever sees it."""
    return store / portfolio_slug(portfolio_name) / STATE_DIR
