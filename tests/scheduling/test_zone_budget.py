"""The zones' shared gap budget on a cluster: after a first round at a loose gap, only the zones whose gaps keep the
merged gap from fitting are solved again, largest saving first."""

from __future__ import annotations

from types import SimpleNamespace

from flexopt.scheduling.zones import _to_tighten


def zone(objective: float, bound: float) -> SimpleNamespace:
    gap = (objective - bound) / abs(objective)
    return SimpleNamespace(kpis={"solver": {"objective": objective, "bound": bound, "mip_gap": gap}})


def test_only_the_zones_that_keep_the_sum_from_fitting_go_again():
    # gaps 0.1, 2.0, 0.05 EUR; the budget at 0.5 % of 300 EUR is 1.5 (90 %: 1.35): re-solving the second zone (to
    # at most 0.5 EUR) leaves 0.65
    results = [zone(100.0, 99.9), zone(100.0, 98.0), zone(100.0, 99.95)]
    assert _to_tighten(results, 0.005, 0.005) == [1]


def test_several_zones_largest_saving_first():
    results = [zone(100.0, 98.5), zone(100.0, 99.0), zone(100.0, 97.0), zone(100.0, 99.99)]
    # gaps 1.5, 1.0, 3.0, 0.01 = 5.51 against 1.8: zone 2 (saves 2.5) then zone 0 (1.0) leave 2.01, then zone 1
    assert _to_tighten(results, 0.005, 0.005) == [0, 1, 2]


def test_a_sum_that_cannot_fit_by_the_greedy_rule_takes_every_zone_above_the_tighter_gap():
    # objectives of opposite signs: |sum| is small, so no choice of zones leaves the gaps within 90 % of the budget
    results = [zone(100.0, 99.0), zone(-99.0, -99.5), zone(50.0, 49.999)]
    tighter = 0.005 * abs(100 - 99 + 50) / (100 + 99 + 50)
    assert _to_tighten(results, 0.005, tighter) == [0, 1]
