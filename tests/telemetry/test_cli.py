"""The telemetry database from the command line, on SQLite and on PostgreSQL: a real ``flexopt dispatch --once``
against the simulators stores its round, ``flexopt telemetry latest`` reads it back, ``flexopt telemetry import``
backfills without duplicates; a database outage costs no round; a password in a URL never reaches any output."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from flexopt.adapters.sim.device_cloud import DEFAULT_TOKEN
from flexopt.adapters.sim.util import free_port
from flexopt.cli import app
from flexopt.config.loader import load_portfolio
from flexopt.telemetry import RoundSync, latest_per_asset, open_db
from flexopt.telemetry.models import RoundRow

_spec = importlib.util.spec_from_file_location(
    "dispatch_cli_helpers", Path(__file__).resolve().parents[1] / "operations" / "test_dispatch_cli.py")
ops_kit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ops_kit)  # the dispatch tests' portfolio, schedule and simulator thread


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def plant(tmp_path, monkeypatch):
    """The dispatch tests' battery (IEC 104), 3 water heaters (HTTP, one group) and climate zone (Modbus), each
    simulated on 127.0.0.1, and a day-ahead run in the store."""
    monkeypatch.setenv("OPS_TEST_TOKEN", DEFAULT_TOKEN)
    ports = {k: free_port() for k in ("iec104", "modbus", "http", "ocpp")}
    doc = ops_kit.portfolio_dict(ports)
    doc["portfolio"]["name"] = "tele-cli"
    doc["sites"][0]["assets"] = [a for a in doc["sites"][0]["assets"] if a["id"] != "ev"]  # no OCPP: no waiting
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(doc))
    portfolio = load_portfolio(path).portfolio
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = now.replace(minute=now.minute - now.minute % 15, second=0)
    at = now if first + ops_kit.STEP - now > dt.timedelta(minutes=1) else first + ops_kit.STEP
    frame = ops_kit.schedule_frame(first - ops_kit.STEP, 6)
    frame = frame[frame["asset_id"] != "ev"]
    store = tmp_path / "runs"
    ops_kit.write_run(store / "tele-cli" / at.date().isoformat() / "day-ahead" / "v001", frame, at.date())
    sims = ops_kit.SimThread(portfolio, f"ws://127.0.0.1:{ports['ocpp']}")
    yield {"path": path, "store": store, "at": at, "sims": sims}
    sims.close()


def no_secret(text: str, password: str) -> None:
    """Neither the password, in any spelling, nor a piece of it between its URL-special characters."""
    from urllib.parse import quote, quote_plus

    pieces = {p for p in re.split(r"[@:/%]", password) if len(p) >= 4}
    for spelling in {password, quote(password, safe=""), quote_plus(password), *pieces}:
        assert spelling not in text, spelling


def test_a_dispatched_round_is_stored_and_read_back(plant, db_url, pg):
    at = plant["at"]
    res = invoke("dispatch", str(plant["path"]), "--store", str(plant["store"]), "--once", "--at",
                 at.strftime("%Y-%m-%dT%H:%M:%S"), "--settle-s", "0.5", "--db", db_url)
    assert res.exit_code == 0, res.output
    assert f"telemetry database: {make_url(db_url).render_as_string(hide_password=True)}" in res.output
    assert "telemetry not stored" not in res.output
    (record_path,) = (plant["store"] / "tele-cli" / at.date().isoformat() / "dispatch").glob("*.json")
    record = json.loads(record_path.read_text())

    later = (at + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    res_latest = invoke("telemetry", "latest", str(plant["path"]), "--store", str(plant["store"]), "--at", later,
                        "--json", "--db", db_url)
    assert res_latest.exit_code == 0, res_latest.output
    latest = {r["asset_id"]: r for r in json.loads(res_latest.output)}
    assert set(latest) == {"bess", "heaters", "zone"}  # every asset with an endpoint; the load has none
    for asset_id, reading in latest.items():
        measured = record["assets"][asset_id]["telemetry"]
        assert reading["record_file"] == record_path.name and reading["device"] is None
        assert dt.datetime.fromisoformat(reading["at"]) == dt.datetime.fromisoformat(measured["at"])
        for field in ("active_power_kw", "soc_pct", "temp_c", "voltage_v"):
            assert reading[field] == pytest.approx(measured[field]) if measured[field] is not None else (
                reading[field] is None), (asset_id, field)
        assert reading["deviation_kw"] == pytest.approx(record["assets"][asset_id]["deviation_kw"]) if (
            record["assets"][asset_id]["deviation_kw"] is not None) else reading["deviation_kw"] is None
    assert latest["bess"]["active_power_kw"] == pytest.approx(-20.0)
    assert latest["bess"]["scheduled_power_kw"] == pytest.approx(-20.0)
    assert latest["heaters"]["active_power_kw"] == pytest.approx(6.0)  # 3 x 2 kW
    assert latest["zone"]["sent_setpoint"] == pytest.approx(21.5) and latest["zone"]["setpoint_unit"] == "degC"

    res_devices = invoke("telemetry", "latest", str(plant["path"]), "--store", str(plant["store"]), "--at", later,
                         "--devices", "--json", "--db", db_url)
    devices = {(r["asset_id"], r["device"]): r for r in json.loads(res_devices.output)}
    assert set(devices) == {("heaters", "wh-1"), ("heaters", "wh-2"), ("heaters", "wh-3")}
    assert all(r["active_power_kw"] == pytest.approx(2.0) and r["sent_setpoint"] == 2.0 for r in devices.values())

    table = invoke("telemetry", "latest", str(plant["path"]), "--store", str(plant["store"]), "--at", later,
                   "--db", db_url)
    assert table.exit_code == 0 and "bess" in table.output and "heaters" in table.output

    again = invoke("telemetry", "import", str(plant["path"]), "--store", str(plant["store"]), "--date",
                   at.date().isoformat(), "--db", db_url)
    assert again.exit_code == 0, again.output
    assert "stored 0 round(s)" in again.output and "(1 already there" in again.output
    for output in (res.output, res_latest.output, res_devices.output, table.output, again.output):
        no_secret(output, pg.PASSWORD)


def test_import_fills_the_default_database_in_the_store_and_follows_flexopt_db(kit, tmp_path, monkeypatch):
    pf = tmp_path / "pf.yaml"
    pf.write_text(yaml.safe_dump({"portfolio": {"name": kit.PORTFOLIO, "timezone": "Europe/Madrid"},
                                  "tariff": {"import_price_eur_per_kwh": 0.2},
                                  "sites": [{"id": "site1", "assets": [{"id": "house", "type": "load",
                                                                        "power_kw": 1}]}]}))
    store = tmp_path / "runs"
    for i in range(3):
        kit.write(store, kit.record(kit.T0 + i * kit.STEP))
    monkeypatch.delenv("FLEXOPT_DB", raising=False)
    args = ("telemetry", "import", str(pf), "--store", str(store), "--date", kit.DAY.isoformat())
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert "stored 3 round(s)" in res.output and (store / "telemetry.sqlite3").is_file()
    assert "stored 0 round(s)" in invoke(*args).output and "(3 already there" in invoke(*args).output
    # FLEXOPT_DB names another database; --db wins over it
    elsewhere = tmp_path / "other.sqlite3"
    res_env = invoke(*args, env={"FLEXOPT_DB": f"sqlite:///{elsewhere}"})
    assert res_env.exit_code == 0 and "stored 3 round(s)" in res_env.output and elsewhere.is_file()
    third = tmp_path / "third.sqlite3"
    assert invoke(*args, "--db", f"sqlite:///{third}", env={"FLEXOPT_DB": f"sqlite:///{elsewhere}"}).exit_code == 0
    assert third.is_file()
    # local time: 2024-06-25 14:20 in Madrid is 12:20 UTC; the newest reading then is 12:15's
    res_latest = invoke("telemetry", "latest", str(pf), "--store", str(store), "--at", "2024-06-25T14:20", "--json")
    assert [(r["asset_id"], r["at"]) for r in json.loads(res_latest.output)] == [
        ("bess", "2024-06-25T12:15:00+00:00"), ("ev", "2024-06-25T12:15:00+00:00")]
    # bad input: exit 2 with a message
    assert invoke("telemetry", "import", str(pf), "--store", str(store), "--date", "2024-06-26").exit_code == 2
    assert invoke("telemetry", "latest", str(pf), "--store", str(tmp_path / "empty")).exit_code == 2
    bad = invoke(*args, "--db", "mysql://root@localhost/flexopt")
    assert bad.exit_code == 2 and "mysql is not supported" in bad.output


def test_a_password_never_reaches_any_output(postgres, pg, kit, tmp_path):
    store = tmp_path / "runs"
    kit.write(store, kit.record(kit.T0))
    pf = tmp_path / "pf.yaml"
    pf.write_text(yaml.safe_dump({"portfolio": {"name": kit.PORTFOLIO, "timezone": "UTC"},
                                  "tariff": {"import_price_eur_per_kwh": 0.2},
                                  "sites": [{"id": "site1", "assets": [{"id": "house", "type": "load",
                                                                        "power_kw": 1}]}]}))
    run = ops_kit.write_run(tmp_path / "run", ops_kit.schedule_frame(kit.T0, 2), kit.DAY)
    database = postgres.create_database()
    wrong = "Wr0ng:pa@ss/w0rd%"
    closed_port = free_port()
    cases = {
        "wrong password": (postgres.url(database, password=wrong), "password authentication failed"),
        "nobody listening": (postgres.url(database, port=closed_port), "cannot open telemetry database"),
        "not a URL": (f"postgresql+psycopg://postgres:{pg.PASSWORD}@127.0.0.1:port/x", "not a URL"),
        "no such database": (postgres.url("no_such_db"), 'database "no_such_db" does not exist'),
    }
    for name, (url, expected) in cases.items():
        for args in (("telemetry", "import", str(pf), "--store", str(store), "--date", kit.DAY.isoformat()),
                     ("telemetry", "latest", str(pf), "--store", str(store)),
                     ("dispatch", str(pf), "--store", str(store), "--once", "--at", "2024-06-25T12:05",
                      "--run", str(run), "--settle-s", "0")):
            res = invoke(*args, "--db", url)
            assert res.exit_code == 2, (name, args[0], res.output)
            assert expected in res.output and "postgres:***@127.0.0.1:" in res.output, (name, res.output)
            no_secret(res.output, wrong)
            no_secret(res.output, pg.PASSWORD)
        res = invoke("telemetry", "import", str(pf), "--store", str(store), "--date", kit.DAY.isoformat(),
                     env={"FLEXOPT_DB": url})
        assert res.exit_code == 2 and expected in res.output, (name, res.output)
        no_secret(res.output, wrong)
        no_secret(res.output, pg.PASSWORD)
    assert len(list(kit.folder(store).glob("*.json"))) == 1  # dispatch stopped before its round: nothing recorded
    good = invoke("telemetry", "import", str(pf), "--store", str(store), "--date", kit.DAY.isoformat(),
                  env={"FLEXOPT_DB": postgres.url(database)})
    assert good.exit_code == 0 and "stored 1 round(s)" in good.output and "postgres:***@" in good.output
    no_secret(good.output, pg.PASSWORD)


@contextmanager
def outage(db_url: str, postgres_server):
    """The database stops taking writes for real: a SQLite file locked by another writer, a PostgreSQL database
    renamed away under its connections."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        blocker = sqlite3.connect(url.database, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    with postgres_server.admin() as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (url.database,))
        admin.execute(f'ALTER DATABASE "{url.database}" RENAME TO "{url.database}_away"')
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{url.database}_away" RENAME TO "{url.database}"')


def test_an_outage_costs_no_round_the_next_round_catches_up(db_url, kit, tmp_path, pg, request):
    server = request.getfixturevalue("postgres") if db_url.startswith("postgresql") else None
    db = open_db(make_url(db_url), busy_timeout_s=0.2)
    try:
        sync = RoundSync(db, kit.PORTFOLIO)
        next_day = kit.DAY + dt.timedelta(days=1)
        kit.write(tmp_path, kit.record(kit.T0))
        assert sync.after_round(kit.DAY, kit.folder(tmp_path)) == []
        with outage(db_url, server):
            kit.write(tmp_path, kit.record(kit.T0 + kit.STEP))
            (warning,) = sync.after_round(kit.DAY, kit.folder(tmp_path))
        assert warning.startswith("telemetry not stored: cannot ") and "catches up at the next round" in warning
        no_secret(warning, pg.PASSWORD)
        assert len(list(kit.folder(tmp_path).glob("*.json"))) == 2  # the record is there whatever the database
        # the next round is on the next day: the failed day is caught up too
        kit.write(tmp_path, kit.record(kit.T0 + dt.timedelta(days=1)), day=next_day)
        assert sync.after_round(next_day, kit.folder(tmp_path, next_day)) == []
        assert sync.pending == {}
        with db.reading() as c:
            stored = c.execute(select(RoundRow.day, func.count()).group_by(RoundRow.day).order_by(RoundRow.day)).all()
        assert stored == [(kit.DAY, 2), (next_day, 1)]
        assert latest_per_asset(db, kit.PORTFOLIO, at=kit.T0 + kit.STEP)["bess"].at == kit.T0 + kit.STEP
    finally:
        db.close()
