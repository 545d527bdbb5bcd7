"""Weather and holiday regressors: used when known for the day, left out (and said so) when not."""

import numpy as np
import pandas as pd

from flexopt.forecasts import backtest_series, forecast_series

TZ = "Europe/Paris"


def hours(start: str, days: int) -> pd.DatetimeIndex:
    first = pd.Timestamp(start, tz=TZ)
    return pd.date_range(first, first + pd.Timedelta(days=days), freq="60min", inclusive="left").tz_convert("UTC")


def heating_series(days: int = 70, seed: int = 0):
    """An electrically heated home: 0.4 kW per degree below 15 degC on top of a daily profile; the weather moves
    in spells of a few days (a random walk of daily means), so yesterday and last week say little about it."""
    rng = np.random.default_rng(seed)
    index = hours("2024-01-01", days)
    local = index.tz_convert(TZ)
    daily_mean = np.repeat(np.cumsum(rng.normal(0, 2.5, days)) * 0.6 + 6, 24)[: len(index)]
    temp = daily_mean + 4 * np.sin(2 * np.pi * (local.hour.to_numpy() - 9) / 24)
    profile = 0.6 + 0.5 * np.isin(local.hour.to_numpy(), [7, 8, 19, 20, 21])
    load = profile + 0.4 * np.clip(15 - temp, 0, None) + rng.normal(0, 0.15, len(index))
    return pd.Series(load, index=index), pd.DataFrame({"temperature_c": temp}, index=index)


def test_temperature_regressor_tracks_a_cold_spell():
    load, weather = heating_series()
    origins = pd.date_range("2024-02-26", "2024-03-10", freq="D", tz=TZ)
    without = backtest_series(load, origins, "load", local_tz=TZ, models=["profile_median_reg", "naive_mean_4w",
                                                                         "naive_yesterday", "naive_last_week"])
    with_t = backtest_series(load, origins, "load", local_tz=TZ, exog_history=weather,
                             models=["profile_median_reg"]).set_index("model")
    naive = without[without["family"] == "naive"]["mae"].min()
    plain = without.set_index("model").loc["profile_median_reg", "mae"]
    assert with_t.loc["profile_median_reg", "mae"] < 0.5 * plain
    assert with_t.loc["profile_median_reg", "mae"] < 0.4 * naive


def test_forecast_uses_the_temperature_forecast_and_falls_back_without_it():
    load, weather = heating_series()
    day = hours("2024-03-10", 1)
    history = load[load.index < day[0]]
    used = forecast_series(history, day, local_tz=TZ, exog_history=weather[weather.index < day[0]],
                           exog_future=weather.reindex(day))
    truth = load.reindex(day).to_numpy()
    assert not any("temperature_c" in w for w in used.warnings)
    short = weather.reindex(day).copy()
    short.iloc[12:] = np.nan  # the weather forecast stops at noon
    fallback = forecast_series(history, day, local_tz=TZ, exog_history=weather[weather.index < day[0]],
                               exog_future=short)
    assert any("temperature_c: no forecast for 12 of the 24 intervals" in w for w in fallback.warnings)
    assert fallback.frame["value"].notna().all()
    mae_used = np.abs(used.frame["value"].to_numpy() - truth).mean()
    assert mae_used < np.abs(fallback.frame["value"].to_numpy() - truth).mean()


def test_public_holidays_from_the_country_lower_the_forecast():
    rng = np.random.default_rng(3)
    index = hours("2024-03-01", 80)
    local = index.tz_convert(TZ)
    holiday = local.normalize().tz_localize(None).isin(pd.to_datetime(["2024-04-01", "2024-05-01", "2024-05-08"]))
    load = np.where(holiday, 0.5, 2.0) + 0.3 * np.sin(2 * np.pi * local.hour.to_numpy() / 24)
    history = pd.Series(load + rng.normal(0, 0.05, len(index)), index=index)
    day = hours("2024-05-09", 1)  # Ascension Day in France
    past = history[history.index < day[0]]
    with_fr = forecast_series(past, day, local_tz=TZ, country="FR", models=["profile_median_reg"], select=False)
    plain = forecast_series(past, day, local_tz=TZ, models=["profile_median_reg"], select=False)
    assert with_fr.frame["value"].mean() < 1.0 < plain.frame["value"].mean()
    unknown = forecast_series(past, day, local_tz=TZ, country="XX", models=["profile_median_reg"], select=False)
    assert any("no public-holiday calendar for country 'XX'" in w for w in unknown.warnings)


def pv_with_weather(days: int = 60, seed: int = 5):
    """A 5 kWp array facing south-west (peak after noon) under a sky whose clearness changes every day; an
    irradiance and a cloud-cover forecast with errors."""
    rng = np.random.default_rng(seed)
    index = hours("2024-05-01", days)
    hour = index.tz_convert(TZ).hour.to_numpy()
    clear = 900 * np.clip(np.sin(np.pi * (hour - 6) / 16), 0, None)
    clearness = np.repeat(rng.uniform(0.2, 1.0, days), 24)
    ghi = clear * clearness
    array = np.clip(np.sin(np.pi * (hour - 7) / 16), 0, None) / np.maximum(np.sin(np.pi * (hour - 6) / 16), 0.2)
    pv = np.clip(5 * ghi / 1000 * array + rng.normal(0, 0.05, len(index)), 0, None) * (clear > 0)
    ghi_forecast = np.clip(ghi * (1 + rng.normal(0, 0.1, len(index))), 0, None)
    cover = 100 * ((1 - clearness) / 0.75).clip(0, 1) ** (1 / 3.4)
    cover_forecast = np.clip(cover + rng.normal(0, 8, len(index)), 0, 100)
    frame = pd.DataFrame({"irradiance_w_per_m2": ghi_forecast, "cloud_cover_pct": cover_forecast}, index=index)
    return pd.Series(pv, index=index), frame


def test_pv_from_irradiance_and_from_cloud_cover_beat_every_naive_baseline():
    pv, weather = pv_with_weather()
    origins = pd.date_range("2024-06-10", "2024-06-29", freq="D", tz=TZ)
    naive = backtest_series(pv, origins, "pv", local_tz=TZ)
    best_naive = naive[naive["family"] == "naive"]["mae"].min()
    irr = backtest_series(pv, origins, "pv", local_tz=TZ, exog_history=weather[["irradiance_w_per_m2"]],
                          models=["pv_irradiance"]).set_index("model")
    cloud = backtest_series(pv, origins, "pv", local_tz=TZ, exog_history=weather[["cloud_cover_pct"]],
                            models=["pv_cloud_clearsky"]).set_index("model")
    assert irr.loc["pv_irradiance", "mae"] < 0.6 * best_naive
    assert cloud.loc["pv_cloud_clearsky", "mae"] < 0.6 * best_naive


def test_weather_models_are_candidates_only_with_their_regressor():
    pv, weather = pv_with_weather()
    day = hours("2024-06-25", 1)
    plain = forecast_series(pv[pv.index < day[0]], day, "pv", local_tz=TZ)
    assert not {"pv_irradiance", "pv_cloud_clearsky"} & set(plain.backtest["model"])
    given = forecast_series(pv[pv.index < day[0]], day, "pv", local_tz=TZ,
                            exog_history=weather[weather.index < day[0]], exog_future=weather.reindex(day))
    assert {"pv_irradiance", "pv_cloud_clearsky"} <= set(given.backtest["model"])
    assert "pv_irradiance" in given.model


def test_requested_quantiles_are_columns_above_the_point():
    load, _ = heating_series()
    day = hours("2024-03-10", 1)
    result = forecast_series(load[load.index < day[0]], day, local_tz=TZ, quantiles=(0.95, 0.05))
    frame = result.frame
    assert {"value", "lower", "upper", "q0.95", "q0.05"} <= set(frame.columns)
    assert (frame["q0.95"] >= frame["value"]).all() and (frame["q0.05"] <= frame["value"]).all()
    assert (frame["q0.95"] >= frame["upper"] - 1e-9).all()
