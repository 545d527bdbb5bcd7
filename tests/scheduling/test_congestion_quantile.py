"""Congestion limits held against a quantile of the forecast uncontrolled load (risk.congestion_quantile)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flexopt.config.portfolio import Portfolio
from flexopt.data.inputs import Horizon
from flexopt.scheduling.problem import schedule


def fixed_forecaster(point: float, spread: float):
    """A forecaster whose point forecast is ``point`` kW and whose q-quantile is point +- spread."""
    def forecaster(name, history, index, *, local_tz="UTC", kind="load", regressors=None, country=None,
                   quantiles=()):
        frame = pd.DataFrame({"value": point, "lower": point - spread, "upper": point + spread}, index=index)
        for q in quantiles:
            frame[f"q{q:g}"] = point + (spread if q > 0.5 else -spread)
        return frame, "fixed"
    return forecaster


def build(tmp_path, portfolio_builder, quantile: float | None, limit_kw: float = 17.0, ev: bool = True):
    horizon = Horizon.for_day(pd.Timestamp("2024-06-01").date(), "UTC")
    past = pd.date_range(horizon.index[0] - pd.Timedelta(days=3), horizon.index[0], freq="15min", inclusive="left")
    history = portfolio_builder.write_series(tmp_path, "house", past, np.full(len(past), 10.0), unit="kW")
    price = np.full(96, 0.20)
    price[32:36] = 0.10
    sites = [
        {"id": "home", "congestion_point": "cp-1", "assets": [
            {"id": "house", "type": "load", "power_kw": {"source": "house"}},
            {"id": "ev", "type": "ev_charger", "max_charge_kw": 11.0, "charge_efficiency": 1.0,
             "sessions": [{"arrival_local": "08:00", "departure_local": "12:00", "energy_kwh": 16.0}]}]},
    ]
    if not ev:
        sites[0]["assets"].pop()
    extra = {"congestion_points": [{"id": "cp-1", "import_limit_kw": limit_kw}],
             "risk": {"congestion_quantile": quantile} if quantile else {}}
    loaded, inputs = portfolio_builder.build(tmp_path, sites, series={"price": price},
                                             tariff={"import_price_eur_per_kwh": {"source": "price"}}, extra=extra)
    raw = loaded.portfolio.model_dump()
    raw["data_sources"]["house"] = {**history, "kind": "history"}
    loaded.portfolio = Portfolio.model_validate(raw)
    inputs.loaded = loaded
    inputs.forecaster = fixed_forecaster(10.0, 2.0)
    return loaded, inputs


def test_limit_held_against_the_quantile_while_energy_is_priced_at_the_point(tmp_path, portfolio_builder):
    loaded, inputs = build(tmp_path / "q", portfolio_builder, 0.9)
    res = schedule(loaded, inputs)
    cp = res.sites[res.sites.id == "cp-1"]
    assert cp.net_kw.max() <= 17.0 - 2.0 + 1e-6  # the 90 % load (12 kW) plus the EV stays within 17 kW
    ev = res.schedule[res.schedule.asset_id == "ev"].power_kw.to_numpy()
    np.testing.assert_allclose(ev[32:36], 5.0, atol=1e-6)  # 17 - 12 kW in the cheap hour
    house = res.schedule[res.schedule.asset_id == "house"].power_kw.to_numpy()
    np.testing.assert_allclose(house, 10.0)  # the schedule and the cost use the point forecast
    assert res.kpis["cost_eur"] == pytest.approx(10 * (23 * 0.2 + 0.1) + 5 * 0.1 + 11 * 0.2, abs=1e-6)
    assert res.violations == []

    plain_loaded, plain_inputs = build(tmp_path / "p", portfolio_builder, None)
    plain = schedule(plain_loaded, plain_inputs)
    assert plain.sites[plain.sites.id == "cp-1"].net_kw.max() == pytest.approx(17.0, abs=1e-6)
    assert res.kpis["cost_eur"] > plain.kpis["cost_eur"] + 1e-3  # the margin has a price


def test_a_margin_that_cannot_be_held_is_a_note_not_a_breach(tmp_path, portfolio_builder):
    loaded, inputs = build(tmp_path, portfolio_builder, 0.9, limit_kw=11.0, ev=False)  # 10 kW point, 12 at q0.9
    res = schedule(loaded, inputs)
    assert res.violations == []  # the point forecast (10 kW) keeps within 11 kW
    assert any("cp-1" in n and "0.9 load quantile" in n for n in res.notes)


def test_quantile_out_of_range_is_refused(tmp_path, portfolio_builder):
    with pytest.raises(ValueError, match="congestion_quantile"):
        build(tmp_path, portfolio_builder, 1.5)


def two_homes(tmp_path, portfolio_builder, errors: str):
    horizon = Horizon.for_day(pd.Timestamp("2024-06-01").date(), "UTC")
    past = pd.date_range(horizon.index[0] - pd.Timedelta(days=3), horizon.index[0], freq="15min", inclusive="left")
    sites, sources = [], {}
    for k in (1, 2):
        sources[f"h{k}"] = {**portfolio_builder.write_series(tmp_path, f"h{k}", past, np.full(len(past), 5.0),
                                                             unit="kW"), "kind": "history"}
        sites.append({"id": f"s{k}", "congestion_point": "cp", "assets": [
            {"id": f"h{k}", "type": "load", "power_kw": {"source": f"h{k}"}}]})
    loaded, inputs = portfolio_builder.build(tmp_path, sites, extra={
        "congestion_points": [{"id": "cp", "import_limit_kw": 20.0}],
        "risk": {"congestion_quantile": 0.9, "congestion_errors": errors}})
    raw = loaded.portfolio.model_dump()
    raw["data_sources"].update(sources)
    loaded.portfolio = Portfolio.model_validate(raw)
    inputs.loaded = loaded
    inputs.forecaster = fixed_forecaster(5.0, 2.0)
    return loaded, inputs


@pytest.mark.parametrize(("errors", "margin"), [("independent", 2.0 * np.sqrt(2.0)), ("comonotone", 4.0)])
def test_margins_of_several_loads_add_as_their_errors_do(tmp_path, portfolio_builder, errors, margin):
    from flexopt.scheduling.grid import point_data, site_data

    loaded, inputs = two_homes(tmp_path, portfolio_builder, errors)
    points = point_data(loaded.portfolio, tmp_path, inputs.horizon, site_data(loaded.portfolio, inputs), inputs)
    np.testing.assert_allclose(points[0].import_margin_kw, margin)
    np.testing.assert_allclose(points[0].export_margin_kw, margin)


def test_schedule_with_a_congestion_quantile_passes_the_independent_check(tmp_path):
    from typer.testing import CliRunner

    from flexopt.cli import app

    stamps = pd.date_range("2024-05-01", "2024-06-01", freq="15min", tz="UTC", inclusive="left")
    rng = np.random.default_rng(2)
    hour = stamps.hour.to_numpy()
    load = 8 + 4 * np.isin(hour, [18, 19, 20]) + rng.gamma(2.0, 0.8, len(stamps))
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"), "kw": load}).to_csv(tmp_path / "h.csv",
                                                                                         index=False)
    (tmp_path / "p.yaml").write_text("""
portfolio: {name: risk, timezone: UTC, resolution_min: 15}
tariff: {import_price_eur_per_kwh: 0.2}
data_sources:
  homes: {path: h.csv, column: kw, unit: kW, kind: history}
congestion_points: [{id: cp, import_limit_kw: 24}]
risk: {congestion_quantile: 0.9}
sites:
  - id: s
    congestion_point: cp
    assets:
      - {id: homes, type: load, power_kw: {source: homes}}
      - {id: ev, type: ev_charger, max_charge_kw: 11, current_type: dc,
         sessions: [{arrival_local: "17:00", departure_local: "23:00", energy_kwh: 30}]}
""")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["schedule", "day-ahead", str(tmp_path / "p.yaml"), "--date", "2024-06-01",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    sites = pd.read_parquet(out / "sites.parquet")
    cp = sites[sites["id"] == "cp"]
    assert (cp["import_limit_kw"] == 24).all()  # the DSO's limit, not the tightened one
    assert cp["net_kw"].max() < 24 - 0.5  # the margin is held below the limit in the evening
    check = CliRunner().invoke(app, ["check", str(tmp_path / "p.yaml"), str(out)])
    assert check.exit_code == 0, check.output
