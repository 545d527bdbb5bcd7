"""The range a measured EV state must lie in: a V2G car that gave back more than it got since it arrived has a
negative net energy (a plausible measurement, not a reason to fall back to the schedule); a one-way car never."""

from __future__ import annotations

from pathlib import Path

from flexopt.config.loader import load_portfolio

GUADALIX = Path(__file__).resolve().parents[2] / "examples" / "guadalix.yaml"


def _asset(asset_id: str):
    loaded = load_portfolio(GUADALIX)
    return next(a for _site, a in loaded.portfolio.assets() if a.id == asset_id)


def _energy_problem(asset, value: float) -> str | None:
    spec = next(s for s in asset.states if s.key == "energy_delivered_kwh")
    return spec.problem(value, bounds=asset.state_bounds(spec))


def test_a_v2g_car_may_be_below_zero_down_to_its_batteries():
    v2g = _asset("guadalix-ev-bidirectional")  # 2 chargers, 40 kWh cars
    assert v2g.state_bounds(next(s for s in v2g.states if s.key == "energy_delivered_kwh"))[0] == -80.0
    assert _energy_problem(v2g, -14.4) is None
    assert "outside -80..2000 kWh" in _energy_problem(v2g, -81.0)


def test_a_one_way_car_never_below_zero():
    one_way = _asset("guadalix-ev-unidirectional")
    assert "outside 0..2000 kWh" in _energy_problem(one_way, -0.5)
    assert _energy_problem(one_way, 3.0) is None
