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
