"""Connection and congestion limits: binding and met, impossible and reported, DSO windows over the default."""

from __future__ import annotations

import numpy as np
import pytest

from flexopt.data.dso_limits import DsoLimitsError, read_dso_limits
from flexopt.scheduling.problem import schedule


def _prices():
    p = np.full(96, 0.20)
    p[32:36] = 0.10  # 08:00-09:00
    return p


def test_congestion_limit_binds_and_is_met(tmp_path, portfolio_builder):
    sites = [
        {"id": "site-1", "congestion_point": "cp-1", "assets": [{"id": "load-1", "type": "load", "power_kw": 10.0}]},
        {"id": "site-2", "congestion_point": "cp-1", "assets": [
            {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 11.0, "charge_efficiency": 1.0,
             "sessions": [{"arrival_local": "08:00", "departure_local": "12:00", "energy_kwh": 22.0}]}]},
    ]
    loaded, inputs = portfolio_builder.build(
        tmp_path, sites, series={"price": _prices()}, tariff={"import_price_eur_per_kwh": {"source": "price"}},
        extra={"congestion_points": [{"id": "cp-1", "import_limit_kw": 16.0}]})
    res = schedule(loaded, inputs)
    cp = res.sites[res.sites.id == "cp-1"]
    assert cp.net_kw.max() <= 16.0 + 1e-6
    ev = res.schedule[res.schedule.asset_id == "ev-1"].power_kw.to_numpy()
    # 16 - 10 kW leaves 6 kW for the EV in the cheap hour; the other 16 kWh at 0.20
    np.testing.assert_allclose(ev[32:36], 6.0, atol=1e-6)
    assert ev[36:48].sum() * 0.25 == pytest.approx(16.0, abs=1e-6)
    load_cost = 10 * (23 * 0.20 + 1 * 0.10)
    assert res.kpis["cost_eur"] == pytest.approx(load_cost + 6 * 0.10 + 16 * 0.20, abs=1e-6)
    assert res.kpis["peak_import_kw"]["cp-1"]["optimised"] == pytest.approx(16.0, abs=1e-6)
    assert res.kpis["peak_import_kw"]["cp-1"]["baseline"] == pytest.approx(21.0, abs=1e-6)
    assert res.violations == []


def test_impossible_limits_are_reported_with_their_size(tmp_path, portfolio_builder):
    sites = [
        {"id": "site-1", "congestion_point": "cp-1", "connection": {"import_limit_kw": 9.0},
         "assets": [{"id": "load-1", "type": "load", "power_kw": 10.0}]},
        {"id": "site-2", "congestion_point": "cp-1", "assets": [{"id": "load-2", "type": "load", "power_kw": 2.0}]},
    ]
    loaded, inputs = portfolio_builder.build(tmp_path, sites, extra={
        "congestion_points": [{"id": "cp-1", "import_limit_kw": 8.0}]})
    res = schedule(loaded, inputs)
    by_kind = {v.kind: v for v in res.violations}
    assert set(by_kind) == {"site_import_limit", "congestion_import_limit"}
    site_v, cp_v = by_kind["site_import_limit"], by_kind["congestion_import_limit"]
    assert (site_v.site_id, site_v.amount, site_v.unit) == ("site-1", pytest.approx(1.0, abs=1e-6), "kW")
    assert (cp_v.congestion_point, cp_v.amount) == ("cp-1", pytest.approx(4.0, abs=1e-6))
    assert cp_v.start == inputs.horizon.index[0] and cp_v.end == inputs.horizon.ends[-1]
    assert "96.000 kWh" in cp_v.detail  # 4 kW for 24 h
    assert res.kpis["violations"]["count"] == 2
    # the schedule itself is still the physics: the loads are served
    assert res.sites[res.sites.id == "cp-1"].net_kw.to_numpy() == pytest.approx(np.full(96, 12.0))


def test_dso_windows_override_the_default_and_the_tightest_wins(tmp_path, portfolio_builder):
    (tmp_path / "dso.csv").write_text(
        "congestion_point,start,end,max_import_kw,max_export_kw\n"
        "cp-1,2024-06-01T20:00:00+02:00,2024-06-01T22:00:00+02:00,8,\n"   # 18:00-20:00 UTC
        "cp-1,2024-06-01T18:30:00+00:00,2024-06-01T19:00:00+00:00,9,\n"   # looser overlap: 8 stays
        "cp-1,2024-06-01T19:00:00+00:00,2024-06-01T19:30:00+00:00,7,\n"   # tighter overlap: 7
        "cp-1,2024-06-01T02:00:00+00:00,2024-06-01T03:00:00+00:00,50,\n"  # looser than the default: overrides it
    )
    battery = {"id": "bess-1", "type": "battery", "power_kw": 5.0, "energy_kwh": 10.0, "soc_min_pct": 0.0,
               "soc_max_pct": 100.0, "charge_efficiency": 1.0, "discharge_efficiency": 1.0}
    sites = [{"id": "site-1", "congestion_point": "cp-1",
              "assets": [{"id": "load-1", "type": "load", "power_kw": 10.0}, battery]}]
    loaded, inputs = portfolio_builder.build(tmp_path, sites, extra={
        "congestion_points": [{"id": "cp-1", "import_limit_kw": 12.0}], "dso_limits_file": "dso.csv"})
    res = schedule(loaded, inputs)
    cp = res.sites[res.sites.id == "cp-1"]
    expected = np.full(96, 12.0)
    expected[72:80] = 8.0
    expected[76:78] = 7.0
    expected[8:12] = 50.0
    np.testing.assert_allclose(cp.import_limit_kw.to_numpy(), expected)
    assert np.isnan(cp.export_limit_kw).all()
    assert (cp.net_kw.to_numpy() <= expected + 1e-6).all()
    bess = res.schedule[res.schedule.asset_id == "bess-1"].power_kw.to_numpy()
    # the battery covers load above the limit: 2 kW for 1.5 h and 3 kW for 0.5 h = 4.5 kWh
    assert -bess[72:80].sum() * 0.25 == pytest.approx(4.5, abs=1e-6)
    assert res.violations == []


@pytest.mark.parametrize(("row", "message"), [
    ("cp-1,2024-06-01T20:00:00,2024-06-01T22:00:00+02:00,8,", "row 2: start '2024-06-01T20:00:00' has no UTC offset"),
    ("cp-1,2024-06-01T20:00:00+02:00,2024-06-01T19:00:00+02:00,8,", "row 2: end"),
    ("cp-1,2024-06-01T20:00:00+02:00,2024-06-01T22:00:00+02:00,eight,", "row 2: max_import_kw 'eight' is not a"),
    ("cp-9,2024-06-01T20:00:00+02:00,2024-06-01T22:00:00+02:00,8,", "congestion_point 'cp-9' is not defined"),
])
def test_dso_file_errors_name_file_row_and_field(tmp_path, row, message):
    path = tmp_path / "dso.csv"
    path.write_text("congestion_point,start,end,max_import_kw,max_export_kw\n" + row + "\n")
    with pytest.raises(DsoLimitsError) as err:
        read_dso_limits(path, {"cp-1"})
    assert str(path) in str(err.value) and message in str(err.value)
