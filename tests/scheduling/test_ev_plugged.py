"""Cars measured at an intraday start (``vehicles_plugged``): a car plugged in early is a visit from the start, an
absent car's session is dropped from the start (later sessions stay), a counted charger's cars fill its sessions,
and the states a later run restarts from say which cars are still there."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from flexopt.data.inputs import Horizon, Inputs
from flexopt.scheduling.problem import schedule

DAY = dt.date(2024, 6, 1)
NOON = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
LOSSLESS = {"charge_efficiency": 1.0, "discharge_efficiency": 1.0}


def _prices(spans: dict[tuple[float, float], float], base: float = 0.30) -> np.ndarray:
    p = np.full(96, base)
    for (a, b), v in spans.items():
        p[int(a * 4):int(b * 4)] = v
    return p


def _run(tmp_path, builder, charger: dict, state: dict | None, prices: np.ndarray | None = None):
    """The charger scheduled from noon to midnight (UTC) from ``state``; returns the result and the charger's rows."""
    loaded, _day = builder.build(tmp_path, [{"id": "site-1", "assets": [charger]}],
                                 series={"price": _prices({}) if prices is None else prices},
                                 tariff={"import_price_eur_per_kwh": {"source": "price"}})
    horizon = Horizon.between(NOON, dt.datetime(2024, 6, 2, tzinfo=dt.UTC), "UTC", 15)
    res = schedule(loaded, Inputs(loaded, horizon), initial_state={charger["id"]: state} if state else None)
    return res, res.schedule.set_index("interval_start")


def _hours(frame: pd.DataFrame, a: float, b: float) -> pd.Series:
    """Rows whose interval starts in [a, b) hours UTC of the day."""
    h = frame.index.hour + frame.index.minute / 60
    return frame[(h >= a) & (h < b)]


def _state(res, key: str, at_h: float) -> float:
    states = res.states[res.states["key"] == key].set_index("interval_end")["value"]
    return float(states[pd.Timestamp(NOON) + pd.Timedelta(hours=at_h - 12)])


def test_a_car_plugged_in_before_its_arrival_charges_from_the_start(tmp_path, portfolio_builder):
    ev = {"id": "ev", "type": "ev_charger", "max_charge_kw": 11, **LOSSLESS,
          "sessions": [{"arrival_local": "18:00", "departure_local": "23:00", "energy_kwh": 10}]}
    cheap = _prices({(13, 14): 0.05})
    res, rows = _run(tmp_path, portfolio_builder, ev, {"vehicles_plugged": 1, "energy_delivered_kwh": 2.0}, cheap)
    # the 8 kWh missing go in at 13:00, long before the configured 18:00 arrival
    assert _hours(rows, 13, 14)["power_kw"].sum() * 0.25 == pytest.approx(8.0, abs=1e-6)
    assert _hours(rows, 14, 24)["power_kw"].abs().max() < 1e-6
    assert rows["state"].iloc[0] == pytest.approx(2.0)  # from the measured energy
    assert _hours(rows, 22.75, 23)["state"].item() == pytest.approx(10.0, abs=1e-6)  # its need by departure
    assert res.violations == []
    assert _state(res, "vehicles_plugged", 15) == 1 and _state(res, "vehicles_plugged", 23) == 0


def test_an_absent_car_is_not_charged_and_the_next_session_stays(tmp_path, portfolio_builder):
    ev = {"id": "ev", "type": "ev_charger", "count": 2, "max_charge_kw": 11, "current_type": "dc", **LOSSLESS,
          "sessions": [{"arrival_local": "08:00", "departure_local": "20:00", "energy_kwh": 20, "units": 1},
                       {"arrival_local": "21:00", "departure_local": "23:00", "energy_kwh": 5, "units": 1}]}
    res, rows = _run(tmp_path, portfolio_builder, ev, {"vehicles_plugged": 0})
    assert _hours(rows, 12, 21)["power_kw"].abs().max() < 1e-6
    assert _hours(rows, 12, 21)["state"].isna().all()  # no car, no energy
    assert _hours(rows, 21, 23)["power_kw"].sum() * 0.25 == pytest.approx(5.0, abs=1e-6)
    assert res.violations == []  # the dropped session owes nothing
    assert _state(res, "vehicles_plugged", 19) == 0 and np.isnan(_state(res, "energy_delivered_kwh", 19))
    # without the measurement the configured session is under way and gets its 20 kWh
    _res, configured = _run(tmp_path / "configured", portfolio_builder, ev, None)
    assert _hours(configured, 12, 20)["power_kw"].sum() * 0.25 == pytest.approx(20.0, abs=1e-6)


@pytest.mark.parametrize(("plugged", "first_kw_h", "early_kwh"), [(1, 5.0, 0.0), (2, 10.0, 0.0), (3, 10.0, 4.0)])
def test_a_counted_chargers_cars_fill_the_sessions_under_way_then_the_next(tmp_path, portfolio_builder, plugged,
                                                                            first_kw_h, early_kwh):
    """Three chargers: two see 08:00-18:00 (5 kWh each), one 19:00-22:00 (4 kWh). Measured cars first fill the
    session under way; a third car is the 19:00 session's, plugged in early."""
    ev = {"id": "evs", "type": "ev_charger", "count": 3, "max_charge_kw": 11, "current_type": "dc", **LOSSLESS,
          "sessions": [{"arrival_local": "08:00", "departure_local": "18:00", "energy_kwh": 5, "units": 2},
                       {"arrival_local": "19:00", "departure_local": "22:00", "energy_kwh": 4, "units": 1}]}
    cheap = _prices({(12, 13): 0.04, (20, 21): 0.05})
    res, rows = _run(tmp_path, portfolio_builder, ev, {"vehicles_plugged": plugged, "energy_delivered_kwh": 0.0},
                     cheap)
    assert _hours(rows, 12, 13)["power_kw"].sum() * 0.25 == pytest.approx(first_kw_h + early_kwh, abs=1e-6)
    assert _hours(rows, 13, 19)["power_kw"].abs().max() < 1e-6
    assert _hours(rows, 19, 22)["power_kw"].sum() * 0.25 == pytest.approx(4.0 - early_kwh, abs=1e-6)
    assert res.violations == []
    # cars there at 15:00: those under way, plus the early one; at 20:00 the 19:00 car (or the early one)
    assert _state(res, "vehicles_plugged", 15) == min(plugged, 2) + (plugged == 3)
    assert _state(res, "vehicles_plugged", 20) == 1


def test_a_plugged_car_whose_session_leaves_within_the_interval_gets_no_other_session(tmp_path, portfolio_builder):
    """At 12:00 the 08:00-12:10 car is still there (it leaves within the first interval): it is that session's car,
    not an early car of the 18:00 session."""
    ev = {"id": "ev", "type": "ev_charger", "count": 2, "max_charge_kw": 11, "current_type": "dc", **LOSSLESS,
          "sessions": [{"arrival_local": "08:00", "departure_local": "12:10", "energy_kwh": 5, "units": 1},
                       {"arrival_local": "18:00", "departure_local": "23:00", "energy_kwh": 6, "units": 1}]}
    _res, rows = _run(tmp_path, portfolio_builder, ev, {"vehicles_plugged": 1, "energy_delivered_kwh": 5.0})
    assert _hours(rows, 12, 18)["power_kw"].abs().max() < 1e-6
    assert _hours(rows, 18, 23)["power_kw"].sum() * 0.25 == pytest.approx(6.0, abs=1e-6)


def test_more_cars_than_sessions_leave_with_the_session_departing_next(tmp_path, portfolio_builder):
    ev = {"id": "evs", "type": "ev_charger", "count": 2, "max_charge_kw": 11, "current_type": "dc", **LOSSLESS,
          "sessions": [{"arrival_local": "08:00", "departure_local": "16:00", "energy_kwh": 3, "units": 1}]}
    res, rows = _run(tmp_path, portfolio_builder, ev, {"vehicles_plugged": 2, "energy_delivered_kwh": 0.0})
    assert _hours(rows, 12, 16)["power_kw"].sum() * 0.25 == pytest.approx(6.0, abs=1e-6)  # 2 cars x 3 kWh
    assert _state(res, "vehicles_plugged", 14) == 2 and _state(res, "vehicles_plugged", 16) == 0


def test_states_at_an_interval_end_are_the_cars_still_there(tmp_path, portfolio_builder):
    """A car leaving at an interval's end is not counted there (a run starting then must not see it), nor is its
    energy; the schedule's state column still shows what it got by departure."""
    ev = {"id": "evs", "type": "ev_charger", "count": 2, "max_charge_kw": 11, "current_type": "dc", **LOSSLESS,
          "sessions": [{"arrival_local": "08:00", "departure_local": "14:00", "energy_kwh": 3, "units": 1},
                       {"arrival_local": "13:00", "departure_local": "16:00", "energy_kwh": 2, "units": 1}]}
    res, rows = _run(tmp_path, portfolio_builder, ev, {"vehicles_plugged": 1, "energy_delivered_kwh": 1.0})
    assert _state(res, "vehicles_plugged", 13) == 1  # the 13:00 car arrives then: not there yet
    assert _state(res, "vehicles_plugged", 13.5) == 2
    assert _state(res, "vehicles_plugged", 14) == 1  # the 08:00 car left at 14:00
    both = _hours(rows, 13.75, 14)["state"].item()  # the two cars' energy at 14:00, the leaving one's 3 kWh in it
    assert both - _state(res, "energy_delivered_kwh", 14) == pytest.approx(3.0, abs=1e-6)
    assert np.isnan(_state(res, "energy_delivered_kwh", 16)) and _state(res, "vehicles_plugged", 16) == 0
    assert res.violations == []
