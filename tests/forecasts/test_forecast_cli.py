"""``flexopt forecast`` and ``flexopt backtest`` on a small generated portfolio."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flexopt.cli import app

TZ = "Europe/Madrid"


@pytest.fixture
def portfolio(tmp_path):
    stamps = pd.date_range("2024-05-01", "2024-06-15", freq="30min", tz=TZ, inclusive="left")
    local = (stamps.hour + stamps.minute / 60).to_numpy()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "timestamp": stamps.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_w": 1500 + 800 * np.sin(2 * np.pi * local / 24) + rng.normal(0, 100, len(stamps)),
        "pv_w": np.clip(np.sin(np.pi * (local - 7) / 14), 0, None) * 3000 * rng.uniform(0.5, 1, len(stamps)),
    })
    frame.to_csv(tmp_path / "site.csv", index=False)
    (tmp_path / "p.yaml").write_text(f"""
portfolio: {{name: test, timezone: {TZ}, resolution_min: 15}}
tariff: {{import_price_eur_per_kwh: 0.2}}
data_sources:
  house_load: {{path: site.csv, column: load_w, time_column: timestamp, unit: W, kind: history}}
  house_pv: {{path: site.csv, column: pv_w, time_column: timestamp, unit: W, kind: history}}
sites:
  - id: s1
    assets:
      - {{id: l1, type: load, power_kw: {{source: house_load}}}}
      - {{id: pv1, type: pv, peak_kw: 3, generation_kw: {{source: house_pv}}, series_peak_kw: 3}}
""")
    return tmp_path / "p.yaml"


def test_forecast_writes_every_series(portfolio, tmp_path):
    out = tmp_path / "fc"
    result = CliRunner().invoke(app, ["forecast", str(portfolio), "--date", "2024-06-15", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "forecasts.parquet")
    assert list(table.columns) == ["interval_start", "series", "model", "value", "lower", "upper", "unit"]
    assert table.groupby("series").size().to_dict() == {"house_load": 96, "house_pv": 96}
    assert str(table["interval_start"].dt.tz) == "UTC"
    assert (table[table["series"] == "house_pv"]["value"] >= 0).all()
    assert (table["unit"] == "kW").all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["series"]["house_pv"]["kind"] == "pv"
    assert summary["series"]["house_load"]["model"] == table[table["series"] == "house_load"]["model"].iloc[0]
    csv = pd.read_csv(out / "forecasts.csv")
    assert csv["interval_start"].iloc[0] == "2024-06-14T22:00:00+00:00"
    again = CliRunner().invoke(app, ["forecast", str(portfolio), "--date", "2024-06-15", "--out", str(out)])
    assert again.exit_code == 2  # never overwritten


def test_backtest_table_and_csv(portfolio, tmp_path):
    out = tmp_path / "bt.csv"
    args = ["backtest", str(portfolio), "--from", "2024-06-10", "--to", "2024-06-12", "--out", str(out),
            "--series", "house_load"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert {"naive_yesterday", "naive_last_week", "naive_mean_4w", "chosen (automatic)"} <= set(table["model"])
    assert {"mae", "rmse", "wape", "bias"} <= set(table.columns)
    assert (table["n"] == 3 * 48).all()
    assert "day-ahead backtest, 3 origins" in result.output


@pytest.mark.parametrize("args", [["--date", "2024-13-01"], ["--date", "2024-06-15", "--series", "nope"]])
def test_bad_arguments_exit_2(portfolio, tmp_path, args):
    result = CliRunner().invoke(app, ["forecast", str(portfolio), "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2


def weather_portfolio(tmp_path, temp_until: str = "2024-06-16", temp_unit: str = "degC") -> str:
    """A heated home whose load follows the outdoor temperature, the temperature as a site weather source."""
    stamps = pd.date_range("2024-04-01", "2024-06-17", freq="60min", tz=TZ, inclusive="left")
    rng = np.random.default_rng(1)
    days = len(stamps) // 24
    temp = np.repeat(np.cumsum(rng.normal(0, 2.0, days)) * 0.5 + 8, 24) + 3 * np.sin(
        2 * np.pi * (stamps.hour.to_numpy() - 9) / 24)
    load = 0.5 + 0.3 * np.clip(15 - temp, 0, None) + rng.normal(0, 0.1, len(stamps))
    utc = stamps.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    measured = stamps < pd.Timestamp("2024-06-15", tz=TZ)
    pd.DataFrame({"timestamp": utc, "load_kw": load})[measured].to_csv(tmp_path / "home.csv", index=False)
    weather = pd.DataFrame({"timestamp": utc, "temp": temp})
    weather = weather[stamps < pd.Timestamp(temp_until, tz=TZ)]
    weather.to_csv(tmp_path / "weather.csv", index=False)
    (tmp_path / "w.yaml").write_text(f"""
portfolio: {{name: weather, timezone: {TZ}, resolution_min: 60}}
tariff: {{import_price_eur_per_kwh: 0.2}}
data_sources:
  home: {{path: home.csv, column: load_kw, unit: kW, kind: history}}
  outdoor: {{path: weather.csv, column: temp, unit: {temp_unit}}}
sites:
  - id: s1
    location: {{country: ES}}
    weather: {{temperature_c: {{source: outdoor}}}}
    assets:
      - {{id: l1, type: load, power_kw: {{source: home}}}}
""")
    return str(tmp_path / "w.yaml")


def test_backtest_uses_the_site_weather_and_reports_the_gain_over_naive(tmp_path):
    stamps_end = "2024-06-14"
    path = weather_portfolio(tmp_path)
    out = tmp_path / "bt.csv"
    result = CliRunner().invoke(app, ["backtest", path, "--from", "2024-06-01", "--to", stamps_end, "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out).set_index("model")
    assert "%" in result.output
    assert table.loc["chosen (automatic)", "vs_best_naive_pct"] > 30  # the weather explains most of the load
    assert table.loc["profile_median_reg", "mae"] < 0.6 * table.loc["naive_mean_4w", "mae"]


def test_forecast_without_the_day_s_weather_falls_back_and_says_so(tmp_path):
    path = weather_portfolio(tmp_path, temp_until="2024-06-15")  # the weather file stops before the day
    out = tmp_path / "fc"
    result = CliRunner().invoke(app, ["forecast", path, "--date", "2024-06-15", "--out", str(out)])
    assert result.exit_code == 0, result.output
    warnings = json.loads((out / "summary.json").read_text())["series"]["home"]["warnings"]
    assert any("temperature_c: no forecast for 24 of the 24 intervals" in w for w in warnings), warnings


def test_weather_source_in_the_wrong_unit_is_refused(tmp_path):
    path = weather_portfolio(tmp_path, temp_unit="kW")
    result = CliRunner().invoke(app, ["validate", path])
    assert result.exit_code == 2
    assert "weather.temperature_c names 'outdoor' in kW; it must be in degC" in result.output


def test_a_run_forecasts_with_the_site_weather_and_records_the_fallback(tmp_path):
    import datetime as dt

    from flexopt.config.loader import load_portfolio
    from flexopt.config.portfolio import SeriesRef
    from flexopt.data.inputs import Horizon, Inputs

    for until, fallback in (("2024-06-16", False), ("2024-06-15", True)):
        folder = tmp_path / until
        folder.mkdir()
        loaded = load_portfolio(weather_portfolio(folder, temp_until=until))
        inputs = Inputs(loaded, Horizon.for_day(dt.date(2024, 6, 15), TZ, 60))
        values = inputs.values(SeriesRef(source="home"))
        assert len(values) == 24 and np.isfinite(values).all()
        assert ("models run without temperature_c" in inputs.models["home"]) == fallback


def test_backtest_outside_the_history_is_an_error_not_a_table_of_nan(portfolio, tmp_path):
    args = ["backtest", str(portfolio), "--from", "2024-09-01", "--to", "2024-09-03", "--out", str(tmp_path / "b.csv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "cannot be backtested on 2024-09-01 .. 2024-09-03" in result.output
    assert not (tmp_path / "b.csv").exists()
    partly = ["backtest", str(portfolio), "--from", "2024-06-13", "--to", "2024-06-16",
              "--out", str(tmp_path / "c.csv"), "--series", "house_load", "--no-chosen"]
    result = CliRunner().invoke(app, partly)
    assert result.exit_code == 0, result.output
    assert "skipped 2024-06-15: no measured values" in result.output
    assert (pd.read_csv(tmp_path / "c.csv")["n"] == 2 * 48).all()
