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


def test_a_file_is_read_once_per_version_and_again_when_it_changes(tmp_path):
    """Every data source naming a file shares one read of it; a file rewritten (same size, new mtime) is read
    again, so a long-lived process never schedules on stale data."""
    import os

    path = tmp_path / "site.csv"
    stamps = pd.date_range("2024-06-12T00:00Z", periods=4, freq="1h").strftime("%Y-%m-%dT%H:%M:%SZ")
    pd.DataFrame({"timestamp": stamps, "a": [1.0, 2.0, 3.0, 4.0], "b": [5.0, 6.0, 7.0, 8.0]}).to_csv(path, index=False)
    a, b = (DataSource(path=path, column=c, unit="kW") for c in "ab")
    assert list(read_source(a)[0]) == [1, 2, 3, 4] and list(read_source(b)[0]) == [5, 6, 7, 8]
    mtime = path.stat().st_mtime_ns
    path.write_text(path.read_text().replace("6.0", "9.0").replace(",4.0", ",x.0"))  # same size
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    assert list(read_source(b)[0]) == [5, 9, 7, 8]
    with pytest.raises(SeriesError, match="not a finite number"):
        read_source(a)


def test_sources_reading_the_same_column_are_forecast_once(tmp_path):
    """Pilot files each name the shared household history; described differently, they are still one series."""
    from flexopt.config.loader import LoadedPortfolio
    from flexopt.config.portfolio import Portfolio
    from flexopt.data.inputs import Horizon, Inputs

    stamps = pd.date_range("2024-06-01T00:00Z", periods=24 * 11, freq="1h")
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"), "w": 1000.0}).to_csv(tmp_path / "h.csv",
                                                                                             index=False)
    history = {"path": str(tmp_path / "h.csv"), "column": "w", "unit": "W", "kind": "history"}
    pf = Portfolio.model_validate({
        "portfolio": {"name": "p", "timezone": "UTC"}, "tariff": {"import_price_eur_per_kwh": 0.1},
        "data_sources": {"north": {**history, "description": "north pilot"}, "south": {**history, "synthetic": True},
                         "roof": history},
        "sites": [{"id": "s", "assets": [
            {"id": "l1", "type": "load", "power_kw": {"source": "north"}},
            {"id": "l2", "type": "load", "power_kw": {"source": "south"}},
            {"id": "pv", "type": "pv", "peak_kw": 1, "series_peak_kw": 1, "generation_kw": {"source": "roof"}}]}]})
    calls = []

    def forecaster(name, history, index, *, local_tz, kind, **_regressors_and_quantiles):
        calls.append((name, kind))
        return pd.Series(1.0, index=index), f"fake {kind}"

    inputs = Inputs(LoadedPortfolio(pf, tmp_path / "p.yaml", [], tmp_path),
                    Horizon.for_day(dt.date(2024, 6, 11), "UTC"), forecaster=forecaster)
    for name in ("north", "south", "roof"):
        inputs.source(name)
    assert calls == [("north", "load"), ("roof", "pv")]  # PV is forecast as PV: another series
    assert inputs.models == {"north": "fake load", "south": "fake load", "roof": "fake pv"}
    assert set(inputs.reports) == {"north", "south", "roof"}
