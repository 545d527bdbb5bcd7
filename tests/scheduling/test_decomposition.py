"""Decomposed solve: independent congestion points solved as separate models give the single model's answer."""

from __future__ import annotations

import numpy as np
import pytest

from flexopt.scheduling.problem import schedule
from flexopt.solver.options import SolveOptions


def _prices():
    hours = np.arange(96) / 4
    return 0.15 + 0.08 * np.cos((hours - 20) / 24 * 2 * np.pi)


def _sites():
    heater = {"type": "water_heater", "volume_l": 150.0, "element_kw": 2.0, "min_temp_c": 45.0, "max_temp_c": 75.0,
              "initial_temp_c": 50.0, "thermostat_c": 60.0, "standby_loss_w_per_k": 0.0,
              "draws": [{"at_local": "07:30", "litres": 40.0}, {"at_local": "20:00", "litres": 80.0}]}
    ev = {"type": "ev_charger", "max_charge_kw": 11.0,
          "sessions": [{"arrival_local": "17:00", "departure_local": "23:00", "energy_kwh": 18.0}]}
    return [
        {"id": "a1", "congestion_point": "cp-a", "assets": [
            {"id": "load-a1", "type": "load", "power_kw": 3.0}, {"id": "wh-a1", **heater},
            {"id": "ev-a1", **ev}]},
        {"id": "a2", "congestion_point": "cp-a", "assets": [
            {"id": "wh-a2", **heater, "count": 3}, {"id": "ev-a2", **ev, "count": 2}]},
        {"id": "b1", "congestion_point": "cp-b", "connection": {"import_limit_kw": 2.0}, "assets": [
            {"id": "load-b1", "type": "load", "power_kw": 2.5},  # above the connection: one violation all day
            {"id": "wh-b1", **heater, "element_kw": 3.0}]},
        {"id": "c1", "assets": [{"id": "bat-c1", "type": "battery", "energy_kwh": 10.0, "power_kw": 5.0}]},
    ]


def test_decomposed_solve_matches_the_single_model(tmp_path, portfolio_builder):
    loaded, inputs = portfolio_builder.build(
        tmp_path, _sites(), series={"price": _prices()}, tariff={"import_price_eur_per_kwh": {"source": "price"}},
        extra={"congestion_points": [{"id": "cp-a", "import_limit_kw": 14.0}, {"id": "cp-b"}]})
    gap = 1e-3
    one = schedule(loaded, inputs, SolveOptions(mip_gap=gap, decompose=False))
    split = schedule(loaded, inputs, SolveOptions(mip_gap=gap))
    s1, s2 = one.kpis["solver"], split.kpis["solver"]
    assert "components" not in s1
    comp = s2["components"]
    # cp-a, cp-b hold integers; the battery site (continuous, no congestion point) is the LP block
    assert comp["count"] == 3 and comp["with_integers"] == 2
    assert sum(comp["states"].values()) == comp["with_integers"]
    assert s2["termination"] == "optimal"
    # the merged gap is the true one, and each run's bound is below the other's objective
    assert s2["mip_gap"] == pytest.approx((s2["objective"] - s2["bound"]) / abs(s2["objective"]), abs=1e-12)
    assert 0 <= s2["mip_gap"] <= gap + 1e-12
    tol = 1e-6 * abs(s1["objective"])
    assert s2["bound"] <= s1["objective"] + tol and s1["bound"] <= s2["objective"] + tol
    assert s2["objective"] == pytest.approx(s1["objective"], rel=2 * gap)
    # same sizes, costs, violations
    for key in ("variables", "constraints", "binaries", "integers"):
        assert s2[key] == s1[key]
    assert split.kpis["cost_eur"] == pytest.approx(one.kpis["cost_eur"], rel=2 * gap, abs=1e-6)
    assert split.kpis["baseline_cost_eur"] == pytest.approx(one.kpis["baseline_cost_eur"], abs=1e-9)
    assert [(v.kind, v.site_id) for v in split.violations] == [(v.kind, v.site_id) for v in one.violations]
    assert [(v.kind, v.site_id) for v in split.violations] == [("site_import_limit", "b1")]
    assert split.violations[0].amount >= 0.5 - 1e-6  # the load alone is 0.5 kW over
    # every interval of the merged schedule is physical at both congestion points
    cp = split.sites[split.sites.id == "cp-a"].net_kw.to_numpy()
    assert cp.max() <= 14.0 + 1e-6
    # kpis cost is what the merged site flows pay
    sites = split.sites[split.sites.level == "site"]
    pay = (np.clip(sites.net_kw, 0, None) * sites.import_price_eur_per_kwh
           - np.clip(-sites.net_kw, 0, None) * sites.export_price_eur_per_kwh).sum() * 0.25
    assert split.kpis["cost_eur"] == pytest.approx(pay, abs=1e-6)


def test_gap_budget_holds_for_the_merged_objective(tmp_path, portfolio_builder):
    loaded, inputs = portfolio_builder.build(
        tmp_path, _sites(), series={"price": _prices()}, tariff={"import_price_eur_per_kwh": {"source": "price"}},
        extra={"congestion_points": [{"id": "cp-a", "import_limit_kw": 14.0}, {"id": "cp-b"}]})
    for gap in (0.05, 0.005):
        s = schedule(loaded, inputs, SolveOptions(mip_gap=gap)).kpis["solver"]
        assert s["termination"] == "optimal"
        assert 0 <= s["mip_gap"] <= gap + 1e-12
        assert s["objective"] >= s["bound"] - 1e-9


def test_a_bound_a_rounding_error_above_the_objective_is_a_zero_gap():
    from flexopt.solver.highs import relative_gap

    assert relative_gap(1.0, 1.0 + 2.2e-16) == 0.0  # was stored as -2.2e-16 and printed "gap -0.000%"
    assert relative_gap(-5.0, -5.0 + 1e-12) == 0.0
    assert relative_gap(100.0, 99.0) == pytest.approx(0.01)
    assert relative_gap(float("inf"), 1.0) == float("inf")
