"""Storing rounds and reading measured state back, on SQLite and on PostgreSQL: each record file once, the newest
good reading per asset and per device within an age, an asset's power per interval, times tz-aware UTC."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flexopt.telemetry import (
    import_folder,
    latest_per_asset,
    latest_per_device,
    power_series,
    round_rows,
    store_round,
)
from flexopt.telemetry.models import AlarmRow, ReadingRow, RoundRow

MIN = dt.timedelta(minutes=1)


def counts(db) -> tuple[int, int, int]:
    with db.reading() as c:
        return tuple(c.scalar(select(func.count()).select_from(t)) for t in (RoundRow, ReadingRow, AlarmRow))


def test_a_round_is_stored_once_with_its_readings_and_alarms(db, kit, tmp_path):
    path = kit.write(tmp_path, kit.record(kit.T0 + 2 * MIN, alarms=2))
    first = import_folder(db, kit.PORTFOLIO, kit.DAY, kit.folder(tmp_path))
    assert first.added == [path.name] and first.present == 0 and first.problems == []
    # bess (one device: its own row), ev (the group's row and one per charger); the round's two alarms
    assert counts(db) == (1, 4, 2)
    again = import_folder(db, kit.PORTFOLIO, kit.DAY, kit.folder(tmp_path))
    assert again.added == [] and again.present == 1
    assert counts(db) == (1, 4, 2)
    with Session(db.engine) as session:
        stored = session.scalars(select(RoundRow)).one()
        bess = session.scalars(select(ReadingRow).where(ReadingRow.asset_id == "bess")).one()
        devices = session.execute(select(ReadingRow.device, ReadingRow.sent_setpoint, ReadingRow.command_status)
                                  .where(ReadingRow.asset_id == "ev", ReadingRow.device.is_not(None))
                                  .order_by(ReadingRow.device)).all()
    assert stored.record_file == path.name and stored.day == kit.DAY and stored.alarms_warning == 2
    assert stored.at_utc == kit.T0 + 2 * MIN and stored.at_utc.tzinfo == dt.UTC
    assert stored.interval_start_utc == kit.T0 and stored.schedule_version == "v001"
    assert (bess.device, bess.soc_pct, bess.active_power_kw, bess.scheduled_power_kw, bess.deviation_kw) == (
        None, 55.0, -20.0, -20.0, 0.0)
    assert (bess.reported_setpoint, bess.sent_setpoint, bess.setpoint_unit, bess.voltage_v) == (-20.0, -20.0, "kW",
                                                                                                 400.0)
    assert devices == [("EV-1", 7.0, "confirmed"), ("EV-2", 7.0, "confirmed")]


def test_storing_the_same_round_twice_changes_nothing(db, kit):
    rows = round_rows(kit.record(kit.T0), portfolio=kit.PORTFOLIO, day=kit.DAY, record_file="a-1.json",
                      stored_by="dispatch", stored_utc=kit.T0)
    assert store_round(db, rows) is True
    assert store_round(db, rows) is False
    assert counts(db) == (1, 4, 1)


def test_the_newest_good_reading_per_asset_within_an_age(db, kit, tmp_path):
    kit.write(tmp_path, kit.record(kit.T0, bess={"soc_pct": 50.0}))
    kit.write(tmp_path, kit.record(kit.T0 + 15 * MIN, bess={"soc_pct": 52.0}))
    # at 12:30 the battery does not answer: that reading is not good and never the newest good one
    kit.write(tmp_path, kit.record(kit.T0 + 30 * MIN, bess={"connected": False, "quality": "unreachable",
                                                            "soc_pct": None, "active_power_kw": None}))
    # at 12:45 it answers without a SoC (questionable data is not good either)
    kit.write(tmp_path, kit.record(kit.T0 + 45 * MIN, bess={"soc_pct": None}))
    kit.write(tmp_path, kit.record(kit.T0 + 60 * MIN, bess={"soc_pct": 99.0, "quality": "questionable"}))
    import_folder(db, kit.PORTFOLIO, kit.DAY, kit.folder(tmp_path))

    at = kit.T0 + 50 * MIN
    newest = latest_per_asset(db, kit.PORTFOLIO, at=at)
    assert set(newest) == {"bess", "ev"}
    assert newest["bess"].at == kit.T0 + 45 * MIN and newest["bess"].soc_pct is None
    assert newest["bess"].at.tzinfo == dt.UTC and newest["bess"].round_at.tzinfo == dt.UTC
    with_soc = latest_per_asset(db, kit.PORTFOLIO, at=at, require=("soc_pct",))
    assert with_soc["bess"].at == kit.T0 + 15 * MIN and with_soc["bess"].soc_pct == 52.0
    assert with_soc["bess"].interval_start == kit.T0 + 15 * MIN and with_soc["bess"].day == kit.DAY
    assert with_soc["bess"].record_file.endswith("-1.json")
    # no older than 30 minutes: the 12:15 SoC is 35 minutes old at 12:50
    assert "bess" not in latest_per_asset(db, kit.PORTFOLIO, at=at, max_age=30 * MIN, require=("soc_pct",))
    assert latest_per_asset(db, kit.PORTFOLIO, at=at, max_age=40 * MIN, require=("soc_pct",))["bess"].soc_pct == 52.0
    # at or before: at 12:10 the newest is 12:00's; before any round there is nothing
    assert latest_per_asset(db, kit.PORTFOLIO, at=kit.T0 + 10 * MIN)["bess"].soc_pct == 50.0
    assert latest_per_asset(db, kit.PORTFOLIO, at=kit.T0 - MIN) == {}
    assert latest_per_asset(db, "another-portfolio", at=at) == {}
    assert set(latest_per_asset(db, kit.PORTFOLIO, at=at, assets=["ev"])) == {"ev"}
    with pytest.raises(ValueError, match="naive time"):
        latest_per_asset(db, kit.PORTFOLIO, at=dt.datetime(2024, 6, 25, 12, 50))
    with pytest.raises(ValueError, match="not a measured field"):
        latest_per_asset(db, kit.PORTFOLIO, at=at, require=("password",))


def test_the_newest_reading_of_each_device_of_a_group(db, kit, tmp_path):
    t1 = kit.T0 + 15 * MIN
    kit.write(tmp_path, kit.record(kit.T0))
    kit.write(tmp_path, kit.record(t1, ev_devices=[
        kit.telemetry("ev/EV-1", t1, active_power_kw=7.0, ev_plugged=True, ev_energy_kwh=5.25),
        kit.telemetry("ev/EV-2", t1, connected=False, quality="unreachable"),
    ]))
    import_folder(db, kit.PORTFOLIO, kit.DAY, kit.folder(tmp_path))
    devices = latest_per_device(db, kit.PORTFOLIO, at=t1 + MIN)
    assert set(devices) == {("ev", "EV-1"), ("ev", "EV-2")}  # the battery has one device: its asset row
    assert devices[("ev", "EV-1")].at == t1 and devices[("ev", "EV-1")].ev_energy_kwh == 5.25
    assert devices[("ev", "EV-2")].at == kit.T0 and devices[("ev", "EV-2")].ev_plugged is False
    assert latest_per_device(db, kit.PORTFOLIO, at=t1 + MIN, max_age=5 * MIN).keys() == {("ev", "EV-1")}


def test_measured_power_per_interval(db, kit, tmp_path):
    for minute, power in ((1, -20.0), (8, -10.0), (16, -5.0), (47, 3.0)):
        kit.write(tmp_path, kit.record(kit.T0 + minute * MIN, bess={"active_power_kw": power}))
    kit.write(tmp_path, kit.record(kit.T0 + 20 * MIN, bess={"active_power_kw": 99.0, "quality": "invalid"}))
    import_folder(db, kit.PORTFOLIO, kit.DAY, kit.folder(tmp_path))
    series = power_series(db, kit.PORTFOLIO, "bess", kit.T0, kit.T0 + 60 * MIN)
    assert [(p.interval_start - kit.T0, p.measured_kw, p.readings) for p in series] == [
        (0 * MIN, -15.0, 2), (15 * MIN, -5.0, 1), (45 * MIN, 3.0, 1)]  # 12:30 has no good reading: absent
    assert all(p.scheduled_kw == -20.0 and p.interval_end - p.interval_start == 15 * MIN for p in series)
    assert series[0].interval_start.tzinfo == dt.UTC
    hourly = power_series(db, kit.PORTFOLIO, "bess", kit.T0, kit.T0 + 60 * MIN, resolution_min=60)
    assert [(p.measured_kw, p.readings) for p in hourly] == [((-20.0 - 10.0 - 5.0 + 3.0) / 4, 4)]
    assert power_series(db, kit.PORTFOLIO, "bess", kit.T0 + 2 * MIN, kit.T0 + 8 * MIN) == []  # [start, end)


def test_a_damaged_record_is_reported_and_the_others_stored(db, kit, tmp_path):
    kit.write(tmp_path, kit.record(kit.T0))
    folder = kit.folder(tmp_path)
    (folder / "20240625T121500Z-1.json").write_text('{"summary": ')  # cut by a disk
    (folder / "20240625T123000Z-1.json").write_text(json.dumps({"summary": {}, "at": "noon"}))
    (folder / ".flexopt-tmp-round-x.json").write_text("{}")  # hidden: a temporary file, not a record
    result = import_folder(db, kit.PORTFOLIO, kit.DAY, folder)
    assert len(result.added) == 1 and len(result.problems) == 2
    assert all("not a readable round record" in p for p in result.problems)
    assert counts(db)[0] == 1


def test_a_naive_time_is_refused_not_guessed(db, kit):
    rows = round_rows(kit.record(kit.T0), portfolio=kit.PORTFOLIO, day=kit.DAY, record_file="a-1.json",
                      stored_by="dispatch", stored_utc=dt.datetime(2024, 6, 25, 12, 0))
    with pytest.raises(Exception, match="naive time"):
        store_round(db, rows)
    assert counts(db) == (0, 0, 0)


def test_a_round_without_a_schedule_still_stores_what_was_measured(db, kit, tmp_path):
    """A later round of a day with no schedule yet sends nothing but reads every device (docs/operations.md)."""
    rec = kit.record(kit.T0 + 3 * MIN)
    rec |= {"schedule": None, "interval_start": None, "interval_end": None}
    for entry in rec["assets"].values():
        entry |= {"command": None, "scheduled_power_kw": None, "deviation_kw": None,
                  "skipped": "not in the schedule at this time"}
        entry.pop("device_results", None)
    kit.write(tmp_path, rec)
    assert len(import_folder(db, kit.PORTFOLIO, kit.DAY, kit.folder(tmp_path)).added) == 1
    bess = latest_per_asset(db, kit.PORTFOLIO)["bess"]
    assert (bess.soc_pct, bess.interval_start, bess.scheduled_power_kw, bess.sent_setpoint) == (55.0, None, None, None)
    assert latest_per_device(db, kit.PORTFOLIO)[("ev", "EV-1")].command_status is None
    (interval,) = power_series(db, kit.PORTFOLIO, "bess", kit.T0, kit.T0 + 15 * MIN)
    assert (interval.measured_kw, interval.scheduled_kw) == (-20.0, None)
