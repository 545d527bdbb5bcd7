"""Runs are versioned and atomic; output files keep UTC timestamps readable as they are."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from flexopt.runs.files import write_frame, write_json
from flexopt.runs.intraday import first_interval
from flexopt.runs.store import StorageError, atomic_dir, check_new_dir, latest_version_dir, new_run


def test_versions_count_up_and_never_collide(tmp_path):
    day = dt.date(2024, 6, 12)
    with new_run(tmp_path, "my-portfolio", day, "day-ahead") as target:
        (target.tmp / "run.json").write_text("{}")
        first = target.commit()
    assert first == tmp_path / "my-portfolio" / "2024-06-12" / "day-ahead" / "v001"
    with new_run(tmp_path, "my-portfolio", day, "day-ahead") as target:
        (target.tmp / "run.json").write_text("{}")
        second = target.commit()
    assert second.name == "v002"
    assert latest_version_dir(tmp_path, "my-portfolio", day, ("day-ahead",)) == second
    assert json.loads((second / "version.json").read_text())["sequence"] == 2
    assert sorted(p.name for p in first.parent.iterdir()) == ["v001", "v002"]  # no temporary folder left


def test_existing_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "schedule.csv").write_text("precious")
    with pytest.raises(StorageError, match="never overwrites"):
        check_new_dir(tmp_path / "out")
    with pytest.raises(StorageError), atomic_dir(tmp_path / "out"):
        pass
    assert (tmp_path / "out" / "schedule.csv").read_text() == "precious"


def test_failed_run_leaves_nothing_behind(tmp_path):
    dest = tmp_path / "run"
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        (tmp / "schedule.csv").write_text("half")
        raise RuntimeError("solver crashed")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_frames_round_trip_with_utc_timestamps(tmp_path):
    start = pd.date_range("2024-10-27T00:00+02:00", periods=100, freq="15min").tz_convert("UTC")
    frame = pd.DataFrame({"interval_start": start, "interval_end": start + pd.Timedelta(minutes=15),
                          "asset_id": "a", "power_kw": np.linspace(-1, 1, 100)})
    parquet, csv = write_frame(frame, tmp_path, "schedule")
    back = pd.read_parquet(parquet)
    assert str(back["interval_start"].dt.tz) == "UTC"
    assert back["interval_start"].equals(frame["interval_start"])
    text = pd.read_csv(csv)
    assert text["interval_start"].iloc[0] == "2024-10-26T22:00:00+00:00"
    parsed = pd.to_datetime(text["interval_start"], utc=True)
    assert (parsed == frame["interval_start"]).all()
    np.testing.assert_allclose(text["power_kw"], frame["power_kw"], rtol=1e-5)


def test_json_has_no_nan_or_numpy(tmp_path):
    path = write_json({"a": np.float64(1.5), "b": float("nan"), "t": pd.Timestamp("2024-01-01", tz="UTC"),
                       "n": [np.int64(3)]}, tmp_path / "k.json")
    assert json.loads(path.read_text()) == {"a": 1.5, "b": None, "t": "2024-01-01T00:00:00+00:00", "n": [3]}


def test_intraday_start_is_the_next_interval_boundary():
    now = dt.datetime(2024, 6, 12, 12, 7, tzinfo=dt.UTC)  # 14:07 in Madrid
    start = first_interval(None, "Europe/Madrid", 15, now=now)
    assert (start.hour, start.minute) == (14, 15)
    assert first_interval("2024-06-12T14:30", "Europe/Madrid", 15).utcoffset() == dt.timedelta(hours=2)
    with pytest.raises(ValueError, match="boundary"):
        first_interval("2024-06-12T14:31", "Europe/Madrid", 15)


def test_duckdb_reads_both_files_without_conversion(tmp_path):
    import duckdb  # a dev dependency: `make test` installs it
    start = pd.date_range("2024-03-31T00:00+01:00", periods=92, freq="15min").tz_convert("UTC")
    frame = pd.DataFrame({"interval_start": start, "interval_end": start + pd.Timedelta(minutes=15),
                          "power_kw": np.arange(92, dtype=float)})
    parquet, csv = write_frame(frame, tmp_path, "schedule")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for path in (parquet, csv):
        n, first, total = con.execute(
            f"SELECT count(*), min(interval_start), sum(power_kw) FROM '{path}'").fetchone()
        assert n == 92 and total == pytest.approx(frame["power_kw"].sum())
        assert pd.Timestamp(first).tz_convert("UTC") == start[0]
