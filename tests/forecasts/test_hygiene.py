"""clean_history: every kind of bad meter data is fixed or removed, and reported; nothing crashes."""

import numpy as np
import pandas as pd
import pytest

from flexopt.forecasts import clean_history


def quarter_hours(days: float, start: str = "2024-05-01", tz: str = "UTC") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=int(days * 96), freq="15min", tz=tz).tz_convert("UTC")


def daily_sine(index: pd.DatetimeIndex, mean: float = 2.0, amplitude: float = 1.0) -> pd.Series:
    frac = (index.hour * 60 + index.minute).to_numpy() / 1440
    return pd.Series(mean + amplitude * np.sin(2 * np.pi * frac), index=index)


def test_duplicates_are_averaged_and_counted():
    s = daily_sine(quarter_hours(2))
    dup = pd.concat([s, pd.Series([s.iloc[10] + 0.5], index=s.index[[10]])]).sort_index()
    cleaned, report = clean_history(dup, "15min")
    assert report.n_duplicates == 1
    assert cleaned.index.is_unique
    assert cleaned.iloc[10] == pytest.approx(s.iloc[10] + 0.25)


def test_short_gaps_interpolated_long_gaps_kept_missing():
    truth = daily_sine(quarter_hours(3))
    s = truth.copy()
    s.iloc[20:24] = np.nan  # 1 h
    s.iloc[100:140] = np.nan  # 10 h
    cleaned, report = clean_history(s.drop(s.index[50:52]), "15min")
    assert report.n_interpolated == 6
    assert report.n_missing == 40
    assert report.longest_gap == pd.Timedelta(hours=10)
    assert np.isfinite(cleaned.iloc[20:24]).all() and np.isfinite(cleaned.iloc[50:52]).all()
    assert cleaned.iloc[21] == pytest.approx(truth.iloc[21], abs=0.05)
    assert any("still missing" in m for m in report.messages())


def test_gross_outlier_removed_but_normal_peaks_kept():
    s = daily_sine(quarter_hours(7))
    s.iloc[301] = s.max() * 1.5  # a high but plausible peak
    s.iloc[300] = 1000.0
    cleaned, report = clean_history(s, "15min")
    assert report.n_outliers == 1
    assert np.isnan(cleaned.iloc[300]) or cleaned.iloc[300] < 10
    assert cleaned.iloc[301] == pytest.approx(s.iloc[301])


def test_flat_lined_meter_is_removed():
    s = daily_sine(quarter_hours(5))
    s.iloc[96:96 + 14 * 4] = 1.234  # stuck for 14 h
    cleaned, report = clean_history(s, "15min")
    assert report.n_flat == 56
    assert cleaned.iloc[96:152].isna().all()
    assert any("flat-lined" in m for m in report.messages())


def test_pv_negatives_clipped_and_night_gaps_zeroed():
    idx = quarter_hours(3, tz="Europe/Paris", start="2024-06-01")
    local = idx.tz_convert("Europe/Paris")
    hour = (local.hour + local.minute / 60).to_numpy()
    pv = pd.Series(np.clip(np.sin(np.pi * (hour - 6) / 15), 0, None) * 4.0, index=idx)
    pv[(hour < 5) | (hour > 22)] = np.nan  # meter reports nothing at night
    pv.iloc[40] = -0.2
    cleaned, report = clean_history(pv, "15min", "Europe/Paris", kind="pv")
    assert report.n_negative_clipped >= 1
    assert report.n_night_filled > 0
    assert (cleaned.dropna() >= 0).all()
    local = cleaned.index.tz_convert("Europe/Paris")
    assert cleaned[(local.hour < 5) & (local.day > 1)].eq(0).all()


def test_resampling_up_and_down():
    s = daily_sine(pd.date_range("2024-01-01", periods=96, freq="30min", tz="UTC"))
    up, report = clean_history(s, "15min")
    assert len(up) == 192 and report.source_freq == pd.Timedelta("30min")
    assert up.iloc[0] == up.iloc[1] == s.iloc[0]
    down, _ = clean_history(up, "1h")
    assert len(down) == 48
    assert down.iloc[3] == pytest.approx(s.iloc[6:8].mean())


def test_dst_transitions_reported():
    s = daily_sine(quarter_hours(4, start="2024-03-29", tz="Europe/Madrid"))
    _, report = clean_history(s, "15min", "Europe/Madrid")
    assert [t.strftime("%Y-%m-%d") for t in report.dst_transitions] == ["2024-03-31"]


def test_unusable_input_does_not_crash():
    empty, report = clean_history(pd.Series([np.nan] * 10, index=quarter_hours(10 / 96)), "15min")
    assert empty.empty and report.n_valid == 0 and report.messages()
    text = pd.Series(["a", "1.5", "inf"], index=quarter_hours(3 / 96))
    cleaned, report = clean_history(text, "15min")
    assert report.n_non_numeric == 2 and cleaned.notna().sum() == 1


def test_naive_index_is_a_programmer_error():
    with pytest.raises(ValueError, match="tz-aware"):
        clean_history(pd.Series([1.0], index=pd.DatetimeIndex(["2024-01-01"])), "15min")
