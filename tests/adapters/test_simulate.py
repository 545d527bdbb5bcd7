"""A portfolio's simulators end to end: factory, dispatch, telemetry, alarms, and the CLI command."""

from __future__ import annotations

import pytest
import typer
import yaml
from typer.testing import CliRunner

from flexopt.adapters.alarms import alarms_from_results, alarms_from_telemetry
from flexopt.adapters.base import Setpoint
from flexopt.adapters.factory import adapter_for, adapters_for_portfolio, limits_for, setpoint_kind
from flexopt.adapters.fanout import close_all, connect_all, read_all, send_all
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.adapters.sim.device_cloud import DEFAULT_TOKEN
from flexopt.adapters.sim.portfolio_sim import PortfolioSimulation
from flexopt.adapters.sim.util import free_port, wait_until
from flexopt.commands.simulate import register
from flexopt.config.portfolio import Portfolio


def portfolio_dict(ports: dict[str, int]) -> dict:
    return {
        "portfolio": {"name": "sim-test", "timezone": "UTC"},
        "tariff": {"import_price_eur_per_kwh": 0.2},
        "sites": [{
            "id": "site1",
            "assets": [
                {"id": "bess", "type": "battery", "power_kw": 50, "energy_kwh": 100,
                 "endpoint": {"protocol": "iec104", "host": "127.0.0.1", "port": ports["iec104"],
                              "command_timeout_ms": 1000,
                              "points": {"setpoint_ioa": 5001, "active_power_ioa": 1001, "soc_ioa": 1004,
                                         "availability_ioa": 2001}}},
                {"id": "pv", "type": "pv", "peak_kw": 40,
                 "endpoint": {"protocol": "modbus", "host": "127.0.0.1", "port": ports["modbus"], "device_id": 11,
                              "registers": {
                                  "setpoint": {"address": 200, "data_type": "float32", "unit": "kW"},
                                  "active_power": {"address": 100, "data_type": "float32", "table": "input",
                                                   "unit": "kW"},
                                  "availability": {"address": 10, "table": "discrete"}}}},
                {"id": "split", "type": "climate", "max_electric_kw": 2.5, "thermal_resistance_k_per_kw": 10,
                 "thermal_capacitance_kwh_per_k": 4, "initial_temp_c": 24, "outdoor_temp_c": 30,
                 "default_min_temp_c": 18, "default_max_temp_c": 27, "mode": "cooling",
                 "endpoint": {"protocol": "http", "base_url": f"http://127.0.0.1:{ports['http']}",
                              "device_id": "ac-1", "token_env": "SIMTEST_TOKEN", "setpoint_unit": "degC",
                              "setpoint": {"method": "POST", "path": "/d/{device_id}/sp",
                                           "body": {"t": "{value}"}, "fields": {"status": "status"}},
                              "telemetry": {"path": "/d/{device_id}",
                                            "fields": {"power_w": "p", "temp_c": "t", "online": "ok"}}}},
                {"id": "ev", "type": "ev_charger", "max_charge_kw": 11,
                 "endpoint": {"protocol": "ocpp", "charge_point_id": "SIM-EV-1", "version": "2.0.1",
                              "password_env": "SIMTEST_CP_PW"}},
            ],
        }],
    }


@pytest.fixture
def portfolio(monkeypatch):
    monkeypatch.setenv("SIMTEST_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("SIMTEST_CP_PW", "wallbox-pw")
    ports = {"iec104": free_port(), "modbus": free_port(), "http": free_port()}
    return Portfolio.model_validate(portfolio_dict(ports))


async def test_portfolio_dispatch_end_to_end(portfolio):
    async with CentralSystem(port=0, response_timeout_s=2.0) as central:
        sim = PortfolioSimulation(portfolio, ocpp_url=central.url)
        await sim.start()
        adapters = adapters_for_portfolio(portfolio, {"ocpp": central})
        try:
            assert await wait_until(lambda: central.is_connected("SIM-EV-1"), timeout_s=10)
            await wait_until(lambda: central.chargers["SIM-EV-1"].connector(1).transaction_id, timeout_s=5)
            assert all((await connect_all(adapters)).values())
            setpoints = [Setpoint("bess", -20.0), Setpoint("pv", 15.0), Setpoint("split", 22.0, "degC"),
                         Setpoint("ev", 7.0)]
            results = await send_all(adapters, setpoints, timeout_s=10)
            assert [r.asset_id for r in results] == ["bess", "pv", "split", "ev"]
            assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
            assert alarms_from_results(results) == []
            await sim.simulators["ocpp"].chargers[0].send_meter_values()
            telemetry = await read_all(adapters, timeout_s=10)
            assert telemetry["bess"].active_power_kw == pytest.approx(-20.0)  # discharging
            assert telemetry["pv"].active_power_kw == pytest.approx(-15.0)  # curtailed to 15 kW
            assert telemetry["ev"].active_power_kw == pytest.approx(7.0)
            assert telemetry["split"].temp_c is not None
            kinds = {a.id: setpoint_kind(a) for _, a in portfolio.assets()}
            assert alarms_from_telemetry(telemetry.values(), results, kinds=kinds) == []
            # taken as an exact target, the PV's -15 kW would be 30 kW away from +15
            assert [a.kind for a in alarms_from_telemetry(telemetry.values(), results)] == ["deviation"]
        finally:
            await close_all(adapters)
            await sim.stop()


async def test_one_dead_device_does_not_stop_the_others(portfolio):
    sim = PortfolioSimulation(portfolio)  # no central system: chargers just retry
    await sim.start()
    pv = next(a for _, a in portfolio.assets() if a.id == "pv")
    adapters = {
        "pv": adapter_for("pv", pv.endpoint, limits_for(pv)),
        "ghost": adapter_for("ghost", pv.endpoint.model_copy(update={"port": free_port()}), limits_for(pv)),
    }
    try:
        results = await send_all(adapters, [Setpoint("ghost", 5.0), Setpoint("pv", 99.0), Setpoint("nobody", 1.0)])
        by = {r.asset_id: r for r in results}
        assert by["pv"].ok and by["pv"].clamped and by["pv"].sent == 40.0
        assert by["ghost"].status == "unreachable"
        assert by["nobody"].status == "error" and "no adapter" in by["nobody"].reason
        kinds = {(a.asset_id, a.kind, a.severity) for a in alarms_from_results(results)}
        assert kinds == {("pv", "clamped", "warning"), ("ghost", "unreachable", "critical"),
                         ("nobody", "error", "critical")}
        telemetry = await read_all(adapters)
        assert not telemetry["ghost"].connected
        # the PV makes 24 kW (60 % of peak) but was told 10 kW: the old reading is a deviation
        sent = await send_all(adapters, [Setpoint("pv", 10.0)])
        pv_t = telemetry["pv"]
        alarms = alarms_from_telemetry([pv_t, telemetry["ghost"]], sent, tolerance_kw=1.0,
                                       kinds={"pv": "export_ceiling"})
        assert {(a.asset_id, a.kind) for a in alarms} == {("pv", "deviation"), ("ghost", "unreachable")}
    finally:
        await close_all(adapters)
        await sim.stop()


def test_simulate_command_stops_after_duration(tmp_path, monkeypatch):
    monkeypatch.delenv("SIMTEST_TOKEN", raising=False)
    monkeypatch.delenv("SIMTEST_CP_PW", raising=False)
    ports = {"iec104": free_port(), "modbus": free_port(), "http": free_port()}
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(portfolio_dict(ports)))
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command keeps typer from collapsing the app into one command
        pass

    res = CliRunner().invoke(app, ["simulate", str(path), "--duration", "0.5", "--central",
                                   "--ocpp-url", f"ws://127.0.0.1:{free_port()}"])
    assert res.exit_code == 0, res.output
    assert "simulators running" in res.output and "simulators stopped" in res.output
    assert "export SIMTEST_TOKEN=sim-token" in res.output
    assert "export SIMTEST_CP_PW=sim-password" in res.output  # the simulated charger's password
    assert "iec104" in res.output and "modbus" in res.output


def test_simulate_command_rejects_bad_portfolio(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("portfolio: {name: x}\n")
    app = typer.Typer()
    register(app)
    app.command()(lambda: None)
    res = CliRunner().invoke(app, ["simulate", str(path), "--duration", "0.1"])
    assert res.exit_code == 2
