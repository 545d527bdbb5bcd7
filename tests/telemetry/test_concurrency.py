"""Writers in separate processes, on SQLite and on PostgreSQL: two at once lose nothing and store nothing twice;
one killed (SIGKILL) in the middle of a round leaves the database consistent, blocks nobody, and the import
stores that round afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from sqlalchemy import func, select, text

from flexopt.telemetry import import_folder, latest_per_asset
from flexopt.telemetry.models import AlarmRow, ReadingRow, RoundRow

WRITER = """
import json, sys, datetime as dt
from pathlib import Path
from sqlalchemy.engine import make_url
from flexopt.telemetry import open_db, import_folder
db = open_db(make_url(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
added = {}
for spec in sys.argv[2:]:
    day, folder = spec.split("=", 1)
    result = import_folder(db, "tele-test", dt.date.fromisoformat(day), Path(folder), stored_by="dispatch")
    added[day] = added.get(day, 0) + len(result.added)
print(json.dumps(added), flush=True)
"""

KILLED = """
import sys, time, datetime as dt
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.engine import make_url
from flexopt.telemetry import open_db, import_folder
db = open_db(make_url(sys.argv[1]))

@event.listens_for(db.engine, "after_execute")
def hold(conn, statement, *args):
    # the round and its readings are inserted, its alarms not yet, nothing committed: wait to be killed
    if getattr(getattr(statement, "table", None), "name", "") == "readings":
        print("mid-round", flush=True)
        time.sleep(600)

import_folder(db, "tele-test", dt.date.fromisoformat(sys.argv[2]), Path(sys.argv[3]))
print("finished", flush=True)
"""


def counts(db) -> tuple[int, int, int]:
    with db.reading() as c:
        return tuple(c.scalar(select(func.count()).select_from(t)) for t in (RoundRow, ReadingRow, AlarmRow))


def start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_writers_at_once_lose_nothing_and_store_nothing_twice(db, db_url, kit, tmp_path):
    days = {name: kit.DAY.replace(day=d) for name, d in (("first", 1), ("second", 2), ("shared", 3))}
    sizes = {"first": 30, "second": 30, "shared": 20}
    for name, day in days.items():
        for i in range(sizes[name]):
            kit.write(tmp_path, kit.record(kit.T0 + i * kit.STEP / 3), day=day)
    spec = {name: f"{day.isoformat()}={kit.folder(tmp_path, day)}" for name, day in days.items()}
    # each stores the shared day, its own, then the shared day again: both race for every shared record
    writers = [start(WRITER, db_url, spec["shared"], spec[own], spec["shared"]) for own in ("first", "second")]
    for w in writers:
        assert w.stdout.readline().strip() == "ready", w.stderr.read()
    for w in writers:
        w.stdin.write("go\n")
        w.stdin.flush()
    outs = [w.communicate(timeout=240) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err for _, err in outs]
    added = [json.loads(out) for out, _ in outs]
    shared = days["shared"].isoformat()
    assert added[0][days["first"].isoformat()] == 30 and added[1][days["second"].isoformat()] == 30
    assert added[0][shared] + added[1][shared] == 20  # every shared record stored by exactly one of them
    assert counts(db) == (80, 80 * 4, 80)
    with db.reading() as c:
        per_file = c.execute(select(RoundRow.day, RoundRow.record_file, func.count())
                             .group_by(RoundRow.day, RoundRow.record_file).having(func.count() > 1)).all()
    assert per_file == []


def test_a_writer_killed_mid_round_leaves_the_database_consistent(db, db_url, kit, tmp_path):
    kit.write(tmp_path, kit.record(kit.T0))
    kit.write(tmp_path, kit.record(kit.T0 + kit.STEP))
    folder = kit.folder(tmp_path)
    writer = start(KILLED, db_url, kit.DAY.isoformat(), str(folder))
    try:
        line = writer.stdout.readline().strip()
        assert line == "mid-round", writer.stderr.read()
        # meanwhile readers are not held up by the open write, and do not see it
        assert latest_per_asset(db, kit.PORTFOLIO) == {}
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(30)
    assert writer.returncode == -signal.SIGKILL
    assert counts(db) == (0, 0, 0)  # nothing of the killed round: no round without its readings or vice versa
    if db.engine.dialect.name == "sqlite":
        with db.reading() as c:
            assert c.scalar(text("PRAGMA integrity_check")) == "ok"
    result = import_folder(db, kit.PORTFOLIO, kit.DAY, folder)  # the kill left no lock behind: the import runs
    assert len(result.added) == 2 and result.problems == []
    assert counts(db) == (2, 8, 2)
    assert latest_per_asset(db, kit.PORTFOLIO)["bess"].at == kit.T0 + kit.STEP
