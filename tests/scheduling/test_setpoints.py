"""What leaves for the devices: PV caps that never cut a sunnier day, thermostats that take temperatures."""

from __future__ import annotations

import numpy as np
import pytest

from flexopt.scheduling.problem import schedule

T = 96


def test_curtailable_pv_is_capped_only_where_export_would_cost(tmp_path, portfolio_builder):
    """Export price -0.05 EUR/kWh from 12:00 to 14:00: the array is cut to what the house uses there and
    nowhere else; every other interval carries the nameplate as cap."""
    export = np.full(T, 0.04)
    negative = slice(48, 56)
    export[negative] = -0.05
    sun = np.clip(np.sin((np.arange(T) - 24) / 48 * np.pi), 0, None) * 8.0  # 8 kW at noon
    loaded, inputs = portfolio_builder.build(tmp_path, [{
        "id": "home", "assets": [
            {"id": "pv", "type": "pv", "peak_kw": 10, "curtailable": True, "generation_kw": {"source": "sun"},
             "series_peak_kw": 10,
             "endpoint": {"protocol": "http", "base_url": "http://127.0.0.1:1", "device_id": "inv",
                          "setpoint": {"method": "POST", "path": "/cap", "body": {"kw": "{value}"}},
                          "telemetry": {"path": "/t"}}},
            {"id": "house", "type": "load", "power_kw": 1.0},
        ]}], series={"sun": sun, "export": export}, units={"sun": "kW"},
        tariff={"import_price_eur_per_kwh": 0.2, "export_price_eur_per_kwh": {"source": "export"}})
    result = schedule(loaded, inputs)
    pv = result.schedule.query("asset_id == 'pv'").reset_index(drop=True)
    # in the negative-price window the array only covers the house (1 kW) and the cap says so
    np.testing.assert_allclose(pv["power_kw"][negative], -1.0, atol=1e-6)
    np.testing.assert_allclose(pv["setpoint"][negative], 1.0, atol=1e-6)
    # elsewhere nothing is curtailed and the cap is the nameplate, not the forecast
    outside = np.ones(T, bool)
    outside[negative] = False
    np.testing.assert_allclose(pv["power_kw"][outside], -sun[outside], atol=1e-6)
    assert (pv["setpoint"][outside] == 10.0).all()
    assert set(pv["setpoint_unit"]) == {"kW"}


@pytest.mark.parametrize(("register_unit", "expected_unit"), [("degC", "degC"), ("kW", "kW")])
def test_thermostat_endpoints_receive_the_expected_temperature(tmp_path, portfolio_builder, register_unit,
                                                              expected_unit):
    zone = {
        "id": "zone", "type": "climate", "max_electric_kw": 3, "mode": "heating", "cop_heating": 3,
        "thermal_resistance_k_per_kw": 10, "thermal_capacitance_kwh_per_k": 5, "initial_temp_c": 20,
        "outdoor_temp_c": 5, "default_min_temp_c": 19, "default_max_temp_c": 23,
        "endpoint": {"protocol": "modbus", "host": "127.0.0.1", "registers": {
            "setpoint": {"address": 10, "scale": 0.1, "unit": register_unit}}},
    }
    loaded, inputs = portfolio_builder.build(tmp_path, [{"id": "office", "assets": [zone]}])
    rows = schedule(loaded, inputs).schedule.query("asset_id == 'zone'")
    assert set(rows["setpoint_unit"]) == {expected_unit}
    if expected_unit == "degC":
        np.testing.assert_allclose(rows["setpoint"], rows["state"])
        assert rows["setpoint"].between(19 - 1e-6, 23 + 1e-6).all()
    else:
        np.testing.assert_allclose(rows["setpoint"], rows["power_kw"])
