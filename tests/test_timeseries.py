"""Time-series loading: DST days, local wall-clock files, resampling, units, gaps and duplicates."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from flexopt.config.portfolio import DataSource
from flexopt.data.timeseries import SeriesError, day_index, load_on_index, read_source


@pytest.mark.parametrize(("day", "n"), [(dt.date(2024, 3, 31), 92), (dt.date(2024, 10, 27), 100),
                                        (dt.date(2024, 6, 12), 96)])
def test_madrid_day_has_92_96_or_100_quarter_hours(day, n):
    idx = day_index(day, "Europe/Madrid", 15)
    assert len(idx) == n
    assert str(idx.tz) == "UTC"
    local = idx.tz_convert("Europe/Madrid")
    assert local[0].hour == 0 and local[0].date() == day
    assert (local[-1] + pd.Timedelta(minutes=15)).date() == day + dt.timedelta(days=1)
    assert (idx[1:] - idx[:-1] == pd.Timedelta(minutes=15)).all()


def _hourly_local_csv(tmp_path, day: dt.date, tz: str) -> tuple[DataSource, list[str]]:
    """An hourly price file in local wall-clock time, as exchanges publish it (repeated/missing hour)."""
    utc = pd.date_range(pd.Timestamp(day, tz=tz), pd.Timestamp(day + dt.timedelta(days=1), tz=tz),
                        freq="1h", inclusive="left").tz_convert("UTC")
    local = utc.tz_convert(tz).strftime("%Y-%m-%d %H:%M:%S")
    values = np.arange(len(utc), dtype=float) * 10  # EUR/MWh, one value per real hour
    path = tmp_path / f"prices_{day}.csv"
    pd.DataFrame({"time_local": local, "price": values}).to_csv(path, index=False)
    return DataSource(path=path, column="price", time_column="time_local", unit="EUR/MWh", timezone=tz), list(local)


@pytest.mark.parametrize(("day", "hours", "n"), [(dt.date(2024, 3, 31), 23, 92), (dt.date(2024, 10, 27), 25, 100)])
def test_local_wallclock_file_with_dst_loads_every_real_hour(tmp_path, day, hours, n):
    src, local = _hourly_local_csv(tmp_path, day, "Europe/Madrid")
    assert len(local) == hours
    series, report = read_source(src, "prices")
    assert len(series) == hours and series.index.is_unique  # the repeated 02:00 became two UTC hours
    assert report.duplicates == 0
    idx = day_index(day, "Europe/Madrid")
    values, report = load_on_index(src, idx, "prices")
    assert len(values) == n and report.missing == 0
    # EUR/MWh -> EUR/kWh, each quarter-hour holds its hour's price
    expected = np.repeat(np.arange(hours) * 10 / 1000, 4)
    np.testing.assert_allclose(values.to_numpy(), expected)


def test_units_and_averaging_of_finer_data(tmp_path):
    idx5 = pd.date_range("2024-06-12T00:00Z", periods=24 * 12, freq="5min")
    watts = np.tile([1000.0, 2000.0, 3000.0], len(idx5) // 3)
    path = tmp_path / "load.parquet"
    pd.DataFrame({"timestamp": idx5, "p": watts}).to_parquet(path)
    src = DataSource(path=path, column="p", unit="W")
    idx = pd.date_range("2024-06-12T00:00Z", periods=96, freq="15min")
    values, report = load_on_index(src, idx)
    np.testing.assert_allclose(values.to_numpy(), 2.0)  # mean of 1, 2, 3 kW
    assert "averaged from 5 min to 15 min" in report.summary()


def test_megawatts_and_utc_offsets(tmp_path):
    path = tmp_path / "mw.csv"
    path.write_text("timestamp,p\n2024-06-12T02:00:00+02:00,1.5\n2024-06-12T02:15:00+02:00,2.5\n")
    series, _ = read_source(DataSource(path=path, column="p", unit="MW"))
    assert series.index[0] == pd.Timestamp("2024-06-12T00:00Z")
    assert series.tolist() == [1500.0, 2500.0]


def test_duplicates_are_averaged_and_reported(tmp_path):
    path = tmp_path / "d.csv"
    rows = ["timestamp,p"] + [f"2024-06-12T00:{m:02d}:00Z,{m}" for m in (0, 15, 15, 30, 45)]
    path.write_text("\n".join(rows) + "\n")
    series, report = read_source(DataSource(path=path, column="p", unit="kW"))
    assert report.duplicates == 1
    assert series.loc["2024-06-12T00:15Z"] == 15.0 and len(series) == 4


def _quarter_hour_file(tmp_path, values):
    idx = pd.date_range("2024-06-11T22:00Z", periods=len(values), freq="15min")
    path = tmp_path / "q.csv"
    pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"), "p": values}).to_csv(path, index=False)
    return DataSource(path=path, column="p", unit="kW")


def test_short_gap_is_interpolated_and_counted(tmp_path):
    values = np.arange(96, dtype=float)
    values[10:14] = np.nan
    src = _quarter_hour_file(tmp_path, values)
    out, report = load_on_index(src, day_index(dt.date(2024, 6, 12), "Europe/Madrid"))
    assert report.missing == 4 and report.filled == 4
    np.testing.assert_allclose(out.to_numpy(), np.arange(96, dtype=float))


def test_long_gap_is_an_error_naming_the_source(tmp_path):
    values = np.arange(96, dtype=float)
    values[10:60] = np.nan
    src = _quarter_hour_file(tmp_path, values)
    with pytest.raises(SeriesError, match=r"gap of 12\.5 h"):
        load_on_index(src, day_index(dt.date(2024, 6, 12), "Europe/Madrid"), "site-load")


def test_day_outside_the_file_says_what_it_covers(tmp_path):
    src = _quarter_hour_file(tmp_path, np.ones(96))
    with pytest.raises(SeriesError, match="it covers 2024-06-11"):
        load_on_index(src, day_index(dt.date(2025, 1, 1), "Europe/Madrid"), "site-load")


def test_unparseable_timestamps_are_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,p\nyesterday,1\n")
    with pytest.raises(SeriesError, match="timestamps cannot be parsed"):
        read_source(DataSource(path=path, column="p", unit="kW"), "x")
