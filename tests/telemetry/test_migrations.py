"""Migrations on SQLite and on PostgreSQL: a new database gets the models' schema, a database of the previous
revision is upgraded in place with its rows, re-opening is a no-op, a newer database is refused, and processes
opening a new database at the same moment create it once."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.engine import make_url

from flexopt.telemetry import TelemetryError, import_folder, latest_per_asset, open_db, round_rows
from flexopt.telemetry.migrate import VERSION_TABLE, head_revision
from flexopt.telemetry.models import AlarmRow, Base, ReadingRow, RoundRow


def versions(db) -> list[str]:
    with db.reading() as c:
        return list(c.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}")))


def test_a_new_database_gets_the_models_schema(db):
    assert db.revision == head_revision() == "0002"
    assert versions(db) == ["0002"]
    with db.engine.connect() as c:
        context = MigrationContext.configure(c, opts={"version_table": VERSION_TABLE, "compare_type": True})
        assert compare_metadata(context, Base.metadata) == []  # the migrations create exactly the models
        assert {"rounds", "readings", "alarms"} <= set(inspect(c).get_table_names())


def test_a_database_of_the_previous_revision_is_upgraded_in_place(db_url, kit, tmp_path):
    url = make_url(db_url)
    old = open_db(url, revision="0001")
    assert old.revision == "0001"
    with old.engine.connect() as c:
        assert "alarms" not in inspect(c).get_table_names()
    rows = round_rows(kit.record(kit.T0), portfolio=kit.PORTFOLIO, day=kit.DAY, record_file=kit.write(
        tmp_path, kit.record(kit.T0)).name, stored_by="dispatch", stored_utc=kit.T0)
    with old.writing() as c:  # what flexopt at revision 0001 stored: a round and its readings, no alarm table
        round_id = c.execute(insert(RoundRow).values(**rows.round).returning(RoundRow.id)).scalar_one()
        c.execute(insert(ReadingRow), [r | {"round_id": round_id} for r in rows.readings])
    old.close()

    new = open_db(url)
    try:
        assert new.revision == "0002" and versions(new) == ["0002"]
        assert latest_per_asset(new, kit.PORTFOLIO)["bess"].soc_pct == 55.0  # the old rows are read as before
        kit.write(tmp_path, kit.record(kit.T0 + kit.STEP, alarms=3))
        result = import_folder(new, kit.PORTFOLIO, kit.DAY, kit.folder(tmp_path))
        assert len(result.added) == 1 and result.present == 1  # the old round is not stored twice
        with new.reading() as c:
            assert c.scalar(select(func.count()).select_from(AlarmRow)) == 3  # only the new round's
            assert c.scalar(select(func.count()).select_from(RoundRow)) == 2
    finally:
        new.close()

    again = open_db(url)  # already at the head: nothing to do, nothing changed
    try:
        assert again.revision == "0002" and versions(again) == ["0002"]
        with again.reading() as c:
            assert c.scalar(select(func.count()).select_from(ReadingRow)) == 8
    finally:
        again.close()


def test_a_database_of_a_newer_flexopt_is_refused(db_url):
    url = make_url(db_url)
    db = open_db(url)
    with db.writing() as c:
        c.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    db.close()
    with pytest.raises(TelemetryError, match=r"revision 0099, which this flexopt does not know .*upgrade flexopt"):
        open_db(url)


OPEN = """
import sys
from sqlalchemy.engine import make_url
from flexopt.telemetry import open_db
print("ready", flush=True)
sys.stdin.readline()
db = open_db(make_url(sys.argv[1]))
print("revision", db.revision, flush=True)
"""


def test_processes_opening_a_new_database_at_once_create_it_once(db_url):
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, db_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for proc in procs:  # every process has imported everything and waits: then all open together
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [proc.communicate(timeout=120) for proc in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["revision 0002"] * 4
    db = open_db(make_url(db_url))
    try:
        assert versions(db) == ["0002"]
    finally:
        db.close()
