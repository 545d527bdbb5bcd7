"""Battery arbitrage with a hand-computable optimum."""

from __future__ import annotations

import numpy as np
import pytest

from flexopt.scheduling.problem import SCHEDULE_COLUMNS, SITE_COLUMNS, schedule
from flexopt.solver.options import SolveOptions

ETA = 0.9
CAP_KWH = 10.0
LOW, HIGH = 0.05, 0.30


def _portfolio(tmp_path, builder, **battery):
    prices = np.r_[np.full(48, LOW), np.full(48, HIGH)]
    bess = {"id": "bess-1", "type": "battery", "power_kw": 5.0, "energy_kwh": CAP_KWH, "soc_min_pct": 0.0,
            "soc_max_pct": 100.0, "initial_soc_pct": 50.0, "charge_efficiency": ETA, "discharge_efficiency": ETA,
            **battery}
    site = {"id": "site-1", "assets": [bess, {"id": "load-1", "type": "load", "power_kw": 1.0}]}
    return builder.build(tmp_path, [site], series={"price": prices},
                         tariff={"import_price_eur_per_kwh": {"source": "price"},
                                 "export_price_eur_per_kwh": {"source": "price"}})


@pytest.mark.parametrize("binary", ["auto", "always"])
def test_arbitrage_fills_cheap_and_empties_to_terminal_in_peak(tmp_path, portfolio_builder, binary):
    loaded, inputs = _portfolio(tmp_path, portfolio_builder)
    res = schedule(loaded, inputs, SolveOptions(mode_binary=binary))
    # charge 5 kWh into the cell at the low price (5/0.9 from the grid), give the same 5 kWh back at the high
    # price (5*0.9 to the grid); the terminal SoC (= start, 5 kWh) stops it going lower
    load_cost = 12 * LOW + 12 * HIGH
    expected = load_cost + 5 / ETA * LOW - 5 * ETA * HIGH
    assert res.kpis["cost_eur"] == pytest.approx(expected, abs=1e-6)
    assert res.kpis["baseline_cost_eur"] == pytest.approx(load_cost, abs=1e-9)
    assert res.kpis["saving_eur"] == pytest.approx(load_cost - expected, abs=1e-6)
    bess = res.schedule[res.schedule.asset_id == "bess-1"]
    assert bess.state.max() == pytest.approx(CAP_KWH, abs=1e-6)
    assert bess.state.iloc[-1] == pytest.approx(5.0, abs=1e-6)
    assert bess.power_kw.iloc[:48].min() >= -1e-9  # no discharging at the low price
    assert (bess.power_kw.iloc[:48] * 0.25).sum() == pytest.approx(5 / ETA, abs=1e-6)
    assert (bess.power_kw.iloc[48:] * 0.25).sum() == pytest.approx(-5 * ETA, abs=1e-6)
    assert res.kpis["solver"]["simultaneous_modes_kwh"]["battery"] == pytest.approx(0.0, abs=1e-6)
    assert res.kpis["solver"]["binaries"] == (96 if binary == "always" else 0)
    assert res.violations == []


def test_result_frames_have_the_agreed_columns(tmp_path, portfolio_builder):
    loaded, inputs = _portfolio(tmp_path, portfolio_builder)
    res = schedule(loaded, inputs)
    assert list(res.schedule.columns) == SCHEDULE_COLUMNS
    assert list(res.sites.columns) == SITE_COLUMNS
    assert len(res.schedule) == 2 * 96
    assert str(res.schedule.interval_start.dt.tz) == "UTC"
    site = res.sites[res.sites.level == "site"]
    # the site's net power is the sum of its assets in every interval
    total = res.schedule.groupby("interval_start").power_kw.sum().to_numpy()
    np.testing.assert_allclose(site.net_kw.to_numpy(), total, atol=1e-6)
    np.testing.assert_allclose(site.baseline_kw.to_numpy(), np.ones(96), atol=1e-9)


def test_terminal_soc_target_above_reach_is_a_reported_violation(tmp_path, portfolio_builder):
    # 5 kW for 24 h could reach 95 %, but the cell holds at most 10 kWh: target 100 % from 0 % start is reachable;
    # make it unreachable by capping power: 0.1 kW * 0.9 * 24 h = 2.16 kWh gained, target 10 kWh from 0
    loaded, inputs = _portfolio(tmp_path, portfolio_builder, power_kw=0.1, initial_soc_pct=0.0,
                                terminal_soc_pct=100.0)
    res = schedule(loaded, inputs)
    short = [v for v in res.violations if v.kind == "terminal_soc"]
    assert len(short) == 1
    assert short[0].asset_id == "bess-1" and short[0].unit == "kWh"
    assert short[0].amount == pytest.approx(10.0 - 0.1 * ETA * 24, abs=1e-6)
