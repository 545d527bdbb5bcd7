"""The combined pilot portfolio on its demo day solves to optimality within the default gap."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from flexopt.config.loader import load_portfolio
from flexopt.data.inputs import Horizon, Inputs
from flexopt.scheduling.problem import schedule
from flexopt.solver.options import SolveOptions

ROOT = Path(__file__).resolve().parents[1]
DEMO_DAY = dt.date(2024, 6, 25)  # examples/README.md


@pytest.fixture(scope="module")
def pilots():
    loaded = load_portfolio(ROOT / "examples" / "all_pilots.yaml")
    info = loaded.portfolio.portfolio
    inputs = Inputs(loaded, Horizon.for_day(DEMO_DAY, info.timezone, info.resolution_min))
    return loaded, schedule(loaded, inputs, SolveOptions(mip_gap=0.005))


@pytest.mark.slow
def test_pilots_solve_within_the_gap(pilots):
    _, result = pilots
    solver = result.kpis["solver"]
    assert solver["termination"] == "optimal"
    assert 0 <= solver["mip_gap"] <= 0.005 + 1e-9
    assert solver["objective"] >= solver["bound"] - 1e-6 * max(1.0, abs(solver["objective"]))


@pytest.mark.slow
def test_every_pilot_asset_is_scheduled_on_every_interval(pilots):
    loaded, result = pilots
    assets = {a.id for _, a in loaded.portfolio.assets()}
    frame = result.schedule
    assert set(frame["asset_id"]) == assets
    assert (frame.groupby("asset_id").size() == 96).all()
    assert np.isfinite(frame["power_kw"]).all()
    # batteries respect their energy bounds in every interval
    for _, asset in loaded.portfolio.assets():
        if asset.type == "battery":
            soc = frame.loc[frame.asset_id == asset.id, "state"] / (asset.energy_kwh * asset.count) * 100
            assert soc.between(asset.soc_min_pct - 1e-6, asset.soc_max_pct + 1e-6).all()


@pytest.mark.slow
def test_pilots_cost_less_than_their_baseline_and_report_every_violation(pilots):
    _, result = pilots
    kpis = result.kpis
    assert kpis["cost_eur"] < kpis["baseline_cost_eur"]
    assert kpis["violations"]["count"] == len(result.violations)
    for v in result.violations:
        assert v.amount > 0 and v.unit and v.start < v.end
