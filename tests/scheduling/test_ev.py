"""EV charging: cheapest intervals before departure, minimum current as an on/off decision, V2G in the peak."""

from __future__ import annotations

import numpy as np
import pytest

from flexopt.scheduling.problem import schedule
from flexopt.solver import decomposed
from flexopt.solver.options import SolveOptions

Q = 0.25  # hours per interval
ETA = 0.95  # default charge and discharge efficiency of a charger
LOSSLESS = {"charge_efficiency": 1.0, "discharge_efficiency": 1.0}  # for hand-computable energy sums


def _prices(base: float, spans: dict[tuple[float, float], float]) -> np.ndarray:
    """Quarter-hour prices on a UTC day: ``base`` except ``spans`` {(from_h, to_h): price}."""
    p = np.full(96, base)
    for (a, b), v in spans.items():
        p[int(a * 4):int(b * 4)] = v
    return p


def _run(tmp_path, builder, charger: dict, prices: np.ndarray, options: SolveOptions | None = None):
    site = {"id": "site-1", "assets": [charger]}
    loaded, inputs = builder.build(tmp_path, [site], series={"price": prices},
                                   tariff={"import_price_eur_per_kwh": {"source": "price"},
                                           "export_price_eur_per_kwh": {"source": "price"}})
    return schedule(loaded, inputs, options or SolveOptions())


def test_energy_by_departure_in_the_cheapest_hours(tmp_path, portfolio_builder):
    prices = _prices(0.20, {(12, 13): 0.10, (14, 15): 0.15})
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 11.0, **LOSSLESS,
          "sessions": [{"arrival_local": "08:00", "departure_local": "18:00", "energy_kwh": 22.0}]}
    res = _run(tmp_path, portfolio_builder, ev, prices)
    p = res.schedule.power_kw.to_numpy()
    # 11 kWh in the 0.10 hour, 11 kWh in the 0.15 hour, nothing else
    np.testing.assert_allclose(p[48:52], 11.0, atol=1e-6)
    np.testing.assert_allclose(p[56:60], 11.0, atol=1e-6)
    assert np.abs(np.delete(p, np.r_[48:52, 56:60])).max() < 1e-6
    assert res.kpis["cost_eur"] == pytest.approx(11 * 0.10 + 11 * 0.15, abs=1e-6)
    # unmanaged: 11 kW from 08:00 for two hours at 0.20
    assert res.kpis["baseline_cost_eur"] == pytest.approx(22 * 0.20, abs=1e-9)
    np.testing.assert_allclose(res.schedule.baseline_kw.to_numpy()[32:40], 11.0)
    assert res.schedule.state.iloc[71] == pytest.approx(22.0, abs=1e-6)  # delivered by 18:00
    assert np.isnan(res.schedule.state.iloc[72])  # unplugged
    assert res.violations == []


def test_minimum_current_forces_a_whole_interval_at_minimum_power(tmp_path, portfolio_builder):
    # 3-phase 6 A minimum: 6 * 230 * 3 = 4.14 kW, i.e. at least 1.035 kWh per quarter-hour when on
    prices = _prices(0.20, {(10, 10.25): 0.10})
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 11.0,
          "sessions": [{"arrival_local": "08:00", "departure_local": "18:00", "energy_kwh": 0.5}]}
    res = _run(tmp_path, portfolio_builder, ev, prices)
    p = res.schedule.power_kw.to_numpy()
    assert p[40] == pytest.approx(4.14, abs=1e-6)  # not the 2 kW an LP would pick
    assert np.abs(np.delete(p, 40)).max() < 1e-6
    assert res.kpis["cost_eur"] == pytest.approx(4.14 * Q * 0.10, abs=1e-6)
    assert res.kpis["solver"]["binaries"] > 0


def test_v2g_discharges_in_the_price_peak_and_still_delivers(tmp_path, portfolio_builder):
    prices = _prices(0.10, {(17, 18): 0.40})
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 7.4, "max_discharge_kw": 7.2, "min_current_a": 0,
          "sessions": [{"arrival_local": "08:00", "departure_local": "20:00", "energy_kwh": 10.0,
                        "vehicle_battery_kwh": 60.0, "arrival_soc_pct": 50.0, "min_soc_pct": 20.0}]}
    res = _run(tmp_path, portfolio_builder, ev, prices)
    p, e = res.schedule.power_kw.to_numpy(), res.schedule.state.to_numpy()
    np.testing.assert_allclose(p[68:72], -7.2, atol=1e-6)  # full V2G output through the peak hour
    # the 7.2 kWh given back took 7.2 / ETA from the car, recharged with 7.2 / ETA**2 at 0.10 on top of the
    # 10 / ETA the 10 kWh need; the losses make the cycle cost, the peak price still pays for it
    assert res.kpis["cost_eur"] == pytest.approx((10 / ETA + 7.2 / ETA**2) * 0.10 - 7.2 * 0.40, abs=1e-6)
    assert res.kpis["baseline_cost_eur"] == pytest.approx(10 / ETA * 0.10, abs=1e-6)
    assert e[79] == pytest.approx(10.0, abs=1e-6)
    assert e[68:72][-1] == pytest.approx(e[67] - 7.2 / ETA, abs=1e-6)
    # the car (30 of 60 kWh on arrival) never goes below 20 % nor above full
    assert np.nanmin(e) >= 12.0 - 30.0 - 1e-6 and np.nanmax(e) <= 60.0 - 30.0 + 1e-6
    assert res.violations == []


def test_v2g_car_stays_within_its_battery_in_every_interval(tmp_path, portfolio_builder):
    # negative prices at noon pay for any energy drawn; the car arrives at 90 % of 40 kWh and may take only 4 kWh
    # more, however cheap, and give back down to 20 % when the evening price peaks
    prices = _prices(0.10, {(12, 15): -0.05, (18, 19): 0.40})
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 7.4, "max_discharge_kw": 7.2,
          "sessions": [{"arrival_local": "08:00", "departure_local": "20:00", "energy_kwh": 2.0,
                        "vehicle_battery_kwh": 40.0, "arrival_soc_pct": 90.0, "min_soc_pct": 20.0}]}
    res = _run(tmp_path, portfolio_builder, ev, prices)
    e, p = res.schedule.state.to_numpy(), res.schedule.power_kw.to_numpy()
    plugged = ~np.isnan(e)
    assert e[plugged].max() <= 4.0 + 1e-6  # full battery
    assert e[plugged].min() >= 8.0 - 36.0 - 1e-6  # 20 % SoC
    assert e[plugged].max() == pytest.approx(4.0, abs=1e-6)  # it does fill up at the negative price
    # one mode per interval: the energy follows the net power with its losses
    de = np.diff(np.r_[0.0, e[plugged]])
    expected = Q * np.where(p[plugged] > 0, ETA * p[plugged], p[plugged] / ETA)
    np.testing.assert_allclose(de, expected, atol=1e-6)
    assert res.kpis["solver"]["simultaneous_modes_kwh"]["ev_charger"] == pytest.approx(0.0, abs=1e-6)


def test_pointless_v2g_cycling_costs_its_losses(tmp_path, portfolio_builder):
    # a spread smaller than the round-trip loss (0.95**2): nothing to gain from discharging, so no cycling
    prices = _prices(0.20, {(12, 13): 0.19, (17, 18): 0.19 / 0.95**2 - 0.005})
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 7.4, "max_discharge_kw": 7.2, "min_current_a": 0,
          "sessions": [{"arrival_local": "08:00", "departure_local": "20:00", "energy_kwh": 5.0,
                        "vehicle_battery_kwh": 60.0, "arrival_soc_pct": 50.0}]}
    res = _run(tmp_path, portfolio_builder, ev, prices)
    p = res.schedule.power_kw.to_numpy()
    assert p.min() >= -1e-6
    assert (p * Q).sum() == pytest.approx(5.0 / ETA, abs=1e-6)


def test_energy_that_cannot_be_delivered_is_reported(tmp_path, portfolio_builder):
    prices = _prices(0.20, {})
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 7.4,
          "sessions": [{"arrival_local": "08:00", "departure_local": "09:00", "energy_kwh": 10.0}]}
    res = _run(tmp_path, portfolio_builder, ev, prices)
    (v,) = res.violations
    assert v.kind == "ev_energy" and v.asset_id == "ev-1" and v.unit == "kWh"
    assert v.amount == pytest.approx(10.0 - 7.4 * ETA, abs=1e-6)  # one hour at 7.4 kW, 95 % into the car
    assert v.start.hour == 8 and v.end.hour == 9


def test_no_schedule_in_time_raises_solve_error_with_status_and_hint(tmp_path, portfolio_builder):
    from flexopt.solver.highs import SolveError

    prices = _prices(0.20, {(10, 10.25): 0.10})
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 11.0, "count": 3,
          "sessions": [{"arrival_local": "08:00", "departure_local": "18:00", "energy_kwh": 7.0}]}
    with pytest.raises(SolveError, match=r"model status kTimeLimit.*raise SolveOptions.time_limit_s"):
        _run(tmp_path, portfolio_builder, ev, prices, SolveOptions(time_limit_s=1e-9, mip_start=False))


def test_relax_and_round_answer_reports_its_bound(tmp_path, portfolio_builder):
    # a loose gap accepts the rounded LP schedule; its bound is the LP relaxation (minimum current ignored)
    prices = _prices(0.20, {(10, 10.25): 0.10})
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 11.0,
          "sessions": [{"arrival_local": "08:00", "departure_local": "18:00", "energy_kwh": 0.5}]}
    res = _run(tmp_path, portfolio_builder, ev, prices, SolveOptions(mip_gap=0.9))
    s = res.kpis["solver"]
    assert s["method"] == "lp_round"
    assert s["bound"] == pytest.approx(0.5 / ETA * 0.10, abs=1e-9)  # the relaxation draws exactly 0.5 / ETA kWh
    assert s["objective"] == pytest.approx(4.14 * Q * 0.10, abs=1e-9)  # one whole quarter-hour at 4.14 kW
    assert s["mip_gap"] == pytest.approx((s["objective"] - s["bound"]) / s["objective"], abs=1e-9)


def test_rounding_moves_a_small_remainder_instead_of_dropping_it(tmp_path, portfolio_builder):
    # 8.5 kWh drawn in one hour of rising prices: the relaxation charges 11, 11, 11 and 1 kW. Below half the
    # 4.14 kW minimum the last quarter-hour used to round off, and with the others at full power the car left
    # short (5 EUR/kWh). Now the charger stays on there and the re-solve takes the minimum from the dearest other
    # interval: 11, 11, 7.86, 4.14 kW, within 1 % of the relaxation, so the rounded schedule is the answer.
    prices = _prices(0.20, {(10, 10.25): 0.10, (10.25, 10.5): 0.11, (10.5, 10.75): 0.12, (10.75, 11): 0.13})
    ev = {"id": "ev-1", "type": "ev_charger", "max_charge_kw": 11.0,
          "sessions": [{"arrival_local": "10:00", "departure_local": "11:00", "energy_kwh": 8.5 * ETA}]}
    res = _run(tmp_path, portfolio_builder, ev, prices, SolveOptions(mip_gap=0.01))
    s = res.kpis["solver"]
    assert s["method"] == "lp_round"
    assert s["bound"] == pytest.approx(Q * (11 * (0.10 + 0.11 + 0.12) + 1 * 0.13), abs=1e-9)
    np.testing.assert_allclose(res.schedule.power_kw.to_numpy()[40:44], [11.0, 11.0, 34 - 22 - 4.14, 4.14], atol=1e-6)
    assert res.violations == []


def _ev_fleet(seed: int) -> list[dict]:
    """Ten sites of three EV chargers (minimum current 6 A), home or work sessions as in bench_schedule's fleet."""
    rng = np.random.default_rng(seed)
    sites = []
    for s in range(10):
        evs = []
        for k in range(3):
            arr = int(rng.integers(17 * 4, 20 * 4)) if rng.random() < 0.5 else int(rng.integers(7 * 4, 10 * 4))
            dep = min(arr + int(rng.integers(12, 24)), 95)
            evs.append({"id": f"ev-{s}-{k}", "type": "ev_charger",
                        "max_charge_kw": float(rng.choice([3.7, 7.4, 11.0])),
                        "sessions": [{"arrival_local": f"{arr // 4:02d}:{arr % 4 * 15:02d}",
                                      "departure_local": f"{dep // 4:02d}:{dep % 4 * 15:02d}",
                                      "energy_kwh": round(float(rng.uniform(4, 20)), 1)}]})
        sites.append({"id": f"s{s}", "congestion_point": "cp", "connection": {"import_limit_kw": 25.0},
                      "assets": evs})
    return sites


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_rounded_fleet_under_a_congestion_limit_is_close_to_the_relaxation(tmp_path, portfolio_builder, monkeypatch,
                                                                          seed):
    # the rounded schedule alone (the later stages switched off): within 1 % of the relaxation's bound; rounding
    # each interval alone left cars short at departure, 7-12 % above it on these fleets
    for stage in ("price", "neighbourhood"):
        monkeypatch.setattr(decomposed, stage, lambda d: None)
    monkeypatch.setattr(decomposed, "branch", lambda d, plan: None)
    hours = np.arange(96) / 4
    prices = (0.09 + 0.06 * np.exp(-((hours - 8.5) / 1.5) ** 2) + 0.09 * np.exp(-((hours - 20.5) / 1.8) ** 2)
              - 0.05 * np.exp(-((hours - 14) / 2.0) ** 2))
    loaded, inputs = portfolio_builder.build(tmp_path, _ev_fleet(seed), series={"price": prices},
                                             tariff={"import_price_eur_per_kwh": {"source": "price"}},
                                             extra={"congestion_points": [{"id": "cp", "import_limit_kw": 60.0}]})
    s = schedule(loaded, inputs, SolveOptions(mip_gap=0.005)).kpis["solver"]
    assert s["binaries"] > 0  # the chargers on (one charger each: 0/1)
    assert s["objective"] - s["bound"] <= 0.01 * s["objective"]
