"""forecast_series on generated series with known structure, DST days, gaps and too-short history."""

import numpy as np
import pandas as pd
import pytest

from flexopt.forecasts import backtest_series, forecast_series

MADRID = "Europe/Madrid"


def local_day(date: str, tz: str = MADRID, freq: str = "15min") -> pd.DatetimeIndex:
    start = pd.Timestamp(date, tz=tz)
    end = start + pd.DateOffset(days=1)
    return pd.date_range(start, end, freq=freq, inclusive="left").tz_convert("UTC")


def history_before(date: str, days: int, tz: str = MADRID, freq: str = "15min") -> pd.DatetimeIndex:
    end = pd.Timestamp(date, tz=tz)
    return pd.date_range(end - pd.Timedelta(days=days), end, freq=freq, inclusive="left").tz_convert("UTC")


def local_profile(index: pd.DatetimeIndex, tz: str = MADRID) -> np.ndarray:
    """A daily shape in local wall-clock time: 2 kW mean, 1 kW amplitude."""
    local = index.tz_convert(tz)
    frac = (local.hour * 60 + local.minute).to_numpy() / 1440
    return 2.0 + np.sin(2 * np.pi * frac)


def test_pure_daily_sine_is_forecast_almost_exactly():
    hist = history_before("2024-05-10", 42)
    target = local_day("2024-05-10")
    result = forecast_series(pd.Series(local_profile(hist), index=hist), target, local_tz=MADRID)
    truth = local_profile(target)
    assert np.abs(result.frame["value"].to_numpy() - truth).max() < 1e-6
    assert list(result.frame.columns) == ["value", "lower", "upper"]
    assert not result.backtest.empty and set(result.backtest["family"]) >= {"naive", "statistical"}


def test_step_in_level_is_followed():
    hist = history_before("2024-05-20", 42)
    rng = np.random.default_rng(1)
    y = local_profile(hist) + rng.normal(0, 0.05, len(hist))
    y[hist >= pd.Timestamp("2024-05-13", tz=MADRID)] += 3.0  # level step a week before the origin
    target = local_day("2024-05-20")
    result = forecast_series(pd.Series(y, index=hist), target, local_tz=MADRID)
    err = result.frame["value"].to_numpy() - (local_profile(target) + 3.0)
    assert np.abs(err).mean() < 0.3, result.model  # the 4-week mean alone would be ~2.2 kW off
    assert np.abs(err.mean()) < 0.3


@pytest.mark.parametrize(("date", "points"), [("2024-03-31", 92), ("2024-10-27", 100)])
def test_dst_days_in_madrid(date, points):
    target = local_day(date)
    assert len(target) == points
    hist = history_before(date, 35)
    rng = np.random.default_rng(2)
    y = local_profile(hist) + rng.normal(0, 0.05, len(hist))
    y[5:40] = np.nan  # and a gap
    result = forecast_series(pd.Series(y, index=hist), target, local_tz=MADRID)
    assert result.frame.index.equals(target)
    assert result.frame.notna().all().all()
    # the shape follows local time through the DST change, within the noise
    assert np.abs(result.frame["value"].to_numpy() - local_profile(target)).mean() < 0.15
    assert any("DST" in w for w in result.warnings) or result.hygiene.dst_transitions == []


def test_day_after_dst_uses_local_same_time():
    hist = history_before("2024-04-01", 30)
    target = local_day("2024-04-01")
    y = pd.Series(local_profile(hist), index=hist)
    result = forecast_series(y, target, local_tz=MADRID, select=False, models=["naive_yesterday"])
    assert result.model == "naive_yesterday"
    assert np.abs(result.frame["value"].to_numpy() - local_profile(target)).max() < 1e-9
    assert any("DST" in w for w in result.warnings)


def test_gappy_duplicated_history_with_coarser_resolution():
    hist = history_before("2024-06-10", 40, freq="30min")
    rng = np.random.default_rng(3)
    y = pd.Series(local_profile(hist) + rng.normal(0, 0.1, len(hist)), index=hist)
    y.iloc[rng.choice(len(y), 200, replace=False)] = np.nan
    y = pd.concat([y, y.iloc[100:110]]).drop(y.index[500:700])
    target = local_day("2024-06-10")  # 15-min index from 30-min history
    result = forecast_series(y, target, local_tz=MADRID)
    assert len(result.frame) == 96 and result.frame.notna().all().all()
    assert np.abs(result.frame["value"].to_numpy() - local_profile(target)).mean() < 0.2
    text = " ".join(result.warnings)
    assert "duplicate" in text and "resampled" in text and "missing" in text


def test_short_history_falls_back_with_warning():
    hist = history_before("2024-05-10", 3)
    target = local_day("2024-05-10")
    result = forecast_series(pd.Series(local_profile(hist), index=hist), target, local_tz=MADRID)
    assert result.model.startswith("naive")
    assert any("too short" in w and "profile_median_reg" in w for w in result.warnings)
    assert np.abs(result.frame["value"].to_numpy() - local_profile(target)).max() < 1e-6


@pytest.mark.parametrize("values", [[], [np.nan] * 20, [1.5] * 3])
def test_hopeless_history_never_raises(values):
    hist = history_before("2024-05-10", 1)[-len(values):] if values else pd.DatetimeIndex([], tz="UTC")
    target = local_day("2024-05-10")
    result = forecast_series(pd.Series(values, index=hist, dtype=float), target, local_tz=MADRID)
    assert result.model.startswith("fallback")
    assert result.frame["value"].notna().all()
    assert any("fallback" in w for w in result.warnings)


def test_flat_lined_meter_is_reported_and_not_copied():
    hist = history_before("2024-05-10", 30)
    y = pd.Series(local_profile(hist), index=hist)
    y.iloc[-96:] = 7.0  # meter stuck for the last day
    result = forecast_series(y, local_day("2024-05-10"), local_tz=MADRID)
    assert any("flat-lined" in w for w in result.warnings)
    assert result.frame["value"].max() < 3.5


def test_naive_model_used_where_nothing_beats_it_and_the_run_says_so():
    hist = history_before("2024-05-10", 42)
    rng = np.random.default_rng(4)
    walk = 5 + np.cumsum(rng.normal(0, 0.3, len(hist)))  # no daily cycle: nothing to learn
    result = forecast_series(pd.Series(walk, index=hist), local_day("2024-05-10"), local_tz=MADRID)
    table = result.backtest.set_index("model")
    best_naive = table[table["family"] == "naive"]["mae"].min()
    if result.model.startswith("naive"):
        assert any("no statistical model beat it" in w for w in result.warnings)
        assert table.loc[result.model, "mae"] == best_naive
    else:
        assert table.loc[result.model, "mae"] < best_naive


def test_intervals_bracket_the_point_and_cover_noise():
    hist = history_before("2024-05-10", 42)
    rng = np.random.default_rng(5)
    y = pd.Series(local_profile(hist) + rng.normal(0, 0.3, len(hist)), index=hist)
    target = local_day("2024-05-10")
    frame = forecast_series(y, target, local_tz=MADRID).frame
    assert (frame["lower"] <= frame["value"]).all() and (frame["value"] <= frame["upper"]).all()
    actual = local_profile(target) + rng.normal(0, 0.3, len(target))
    inside = ((actual >= frame["lower"]) & (actual <= frame["upper"])).mean()
    assert 0.6 <= inside <= 0.97  # nominal 80 %


def pv_shape(index: pd.DatetimeIndex) -> np.ndarray:
    local = index.tz_convert(MADRID)
    hour = (local.hour + local.minute / 60).to_numpy()
    return np.clip(np.sin(np.pi * (hour - 7) / 14), 0, None) * 5


def test_pv_is_never_negative_and_zero_at_night():
    hist = history_before("2024-06-10", 30)
    hour = hist.tz_convert(MADRID).hour.to_numpy()
    rng = np.random.default_rng(6)
    pv = pv_shape(hist) * np.repeat(rng.uniform(0.3, 1.0, 30), 96)
    pv_hist = pd.Series(np.where((hour >= 6) & (hour < 22), pv, np.nan), index=hist)  # NaN at night
    target = local_day("2024-06-10")
    result = forecast_series(pv_hist, target, "pv", local_tz=MADRID)
    frame = result.frame
    t_hour = frame.index.tz_convert(MADRID).hour
    assert (frame >= 0).all().all()
    assert frame[(t_hour < 6) | (t_hour >= 22)].eq(0).all().all()
    assert frame["value"].max() > 1.0
    assert result.model in set(result.backtest["model"])


def test_external_pv_forecast_used_when_given_without_history():
    hist = history_before("2024-06-10", 10)
    target = local_day("2024-06-10")
    external = pd.DataFrame({"pv_forecast_kw": 1.2 * pv_shape(target) - 0.1}, index=target)
    pv_hist = pd.Series(pv_shape(hist), index=hist)
    result = forecast_series(pv_hist, target, "pv", exog_future=external, local_tz=MADRID)
    assert result.model == "pv_external"
    assert any("external" in w for w in result.warnings)
    assert (result.frame["value"] >= 0).all()
    noon = result.frame.index.tz_convert(MADRID).hour == 14
    assert result.frame["value"][noon].to_numpy() == pytest.approx(external["pv_forecast_kw"][noon].to_numpy())


def test_naive_index_raises_clear_error():
    hist = history_before("2024-05-10", 3)
    with pytest.raises(ValueError, match="tz-aware"):
        forecast_series(pd.Series(1.0, index=hist), pd.date_range("2024-05-10", periods=4, freq="15min"))


def test_backtest_series_matches_hand_computed_naive_errors():
    hist = history_before("2024-05-20", 40, tz="UTC")
    rng = np.random.default_rng(7)
    y = pd.Series(local_profile(hist, "UTC") + rng.normal(0, 0.2, len(hist)), index=hist)
    origins = pd.date_range("2024-05-16", "2024-05-19", freq="D", tz="UTC")
    table = backtest_series(y, origins, models=["naive_yesterday", "profile_median_reg"]).set_index("model")
    errors = [np.abs(y[o : o + pd.Timedelta(hours=23, minutes=45)].to_numpy()
                     - y[o - pd.Timedelta(days=1) : o - pd.Timedelta(minutes=15)].to_numpy()) for o in origins]
    assert table.loc["naive_yesterday", "mae"] == pytest.approx(np.concatenate(errors).mean())
    assert table.loc["naive_yesterday", "n"] == 4 * 96
    assert {"mae", "rmse", "wape", "bias"} <= set(table.columns)
    assert table.loc["profile_median_reg", "mae"] < table.loc["naive_yesterday", "mae"]


def test_pv_meter_silent_at_night_still_forecasts_from_yesterday():
    """A PV history without night rows ends in the evening; 'yesterday' must still be yesterday, not the day
    before (the night up to the forecast start is zeros, not missing)."""
    hist = history_before("2024-06-10", 30)
    rng = np.random.default_rng(8)
    days = np.repeat(rng.uniform(0.3, 1.0, 30), 96)
    pv = pd.Series(pv_shape(hist) * days, index=hist)
    pv = pv[pv > 0]  # no rows at night at all
    target = local_day("2024-06-10")
    result = forecast_series(pv, target, "pv", local_tz=MADRID, select=False, models=["naive_yesterday"])
    yesterday = pv_shape(target) * days[-1]
    assert np.abs(result.frame["value"].to_numpy() - yesterday).max() < 1e-9


def test_stale_history_is_stated():
    hist = history_before("2024-05-01", 40)
    result = forecast_series(pd.Series(local_profile(hist), index=hist), local_day("2024-05-10"), local_tz=MADRID)
    assert any("history ends 9.0 days before the forecast start (stale)" in w for w in result.warnings)
    assert result.frame["value"].gt(0.5).all()  # still the profile, never zeros
