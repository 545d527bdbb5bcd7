"""Counted assets are N devices: GroupAdapter against real Modbus simulators, the factory's per-device
limits and addresses, and the unit conversions dispatch makes."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from flexopt.adapters.base import Setpoint, SetpointLimits, Telemetry
from flexopt.adapters.factory import adapter_for, adapter_for_asset, address_problems, limits_for
from flexopt.adapters.group import GroupAdapter
from flexopt.adapters.sim.bms import BmsSimulator
from flexopt.adapters.sim.portfolio_sim import PortfolioSimulation
from flexopt.adapters.sim.util import free_port
from flexopt.config.endpoints import ModbusEndpoint, device_endpoints
from flexopt.config.portfolio import Portfolio
from flexopt.operations import ScheduleRun, build_setpoints, deviation_alarm, to_device_unit

REGISTERS = {
    "setpoint": {"address": 200, "data_type": "float32", "unit": "kW"},
    "active_power": {"address": 100, "data_type": "float32", "table": "input", "unit": "kW"},
    "availability": {"address": 10, "table": "discrete"},
}


def modbus_endpoint(port: int, unit: int = 1) -> ModbusEndpoint:
    return ModbusEndpoint.model_validate({"protocol": "modbus", "host": "127.0.0.1", "port": port,
                                          "device_id": unit, "timeout_s": 0.5, "registers": REGISTERS})


def portfolio(assets: list[dict]) -> Portfolio:
    return Portfolio.model_validate({"portfolio": {"name": "g", "timezone": "UTC"},
                                     "tariff": {"import_price_eur_per_kwh": 0.2},
                                     "sites": [{"id": "s", "assets": assets}]})


async def test_group_with_one_of_three_devices_down():
    """Two units answer on the BMS, the third device's gateway is gone: the group is not ok, says which
    device failed, and its telemetry adds up the two that answered."""
    port = free_port()
    sim = BmsSimulator(port=port)
    endpoints = device_endpoints(modbus_endpoint(port, 5), 3)
    endpoints[2] = endpoints[2].model_copy(update={"port": free_port()})  # nobody listens there
    for e in endpoints[:2]:
        sim.add(f"u{e.device_id}", e, "power", min_value=0.0, max_value=10.0)
    await sim.start()
    limits = SetpointLimits(0.0, 4.0, "kW")
    names = ["unit 5", "unit 6", "unit 7"]
    group = GroupAdapter("grp", [adapter_for(f"grp/{n}", e, limits) for n, e in zip(names, endpoints, strict=True)],
                         names)
    try:
        assert await group.connect() is False
        assert group.last_connected == [True, True, False] and "unit 7" in group.last_error
        result = await group.send_setpoint(Setpoint("grp", 6.0, "kW"))
        assert not result.ok and result.status == "unreachable"
        assert result.asset_id == "grp" and result.clamped and result.sent == 4.0
        assert "2 of 3 devices confirmed" in result.reason and "unit 7 (unreachable" in result.reason
        assert [r.status for r in group.last_results] == ["confirmed", "confirmed", "unreachable"]
        assert sorted(sim.writes) == [("u5", 4.0), ("u6", 4.0)]  # the same per-device value to each
        t = await group.read_telemetry()
        assert t.connected and t.asset_id == "grp"
        assert t.active_power_kw == pytest.approx(8.0)  # 2 x 4 kW, the missing device is not guessed
        assert t.available is True
        assert t.quality == "questionable" and "1 of 3 devices unreachable: unit 7" in t.notes
        assert t.extra == {"devices": 3.0, "devices_answering": 2.0}
        # a setpoint for another asset is refused by every device, nothing is written
        wrong = await group.send_setpoint(Setpoint("other", 1.0, "kW"))
        assert wrong.status == "invalid" and len(sim.writes) == 2
        await sim.stop()
        t = await group.read_telemetry()
        assert not t.connected and t.quality == "unreachable" and t.active_power_kw is None
    finally:
        await group.close()
        await sim.stop()


def test_factory_builds_groups_with_per_device_limits_and_addresses():
    pf = portfolio([
        {"id": "bess", "type": "battery", "count": 2, "power_kw": 30, "energy_kwh": 60,
         "endpoint": {"protocol": "iec104", "host": "127.0.0.1", "port": 2404, "common_address": 4,
                      "points": {"setpoint_ioa": 1, "active_power_ioa": 2}}},
        {"id": "pv", "type": "pv", "peak_kw": 10, "endpoint": {"protocol": "modbus", "host": "127.0.0.1",
                                                               "port": 502, "device_id": 11, "registers": REGISTERS}},
    ])
    assets = {a.id: a for _, a in pf.assets()}
    bess = adapter_for_asset(assets["bess"])
    assert isinstance(bess, GroupAdapter) and bess.devices == ["CA 4", "CA 5"]
    assert [c.endpoint.common_address for c in bess.children] == [4, 5]
    assert all(c.limits == limits_for(assets["bess"]) for c in bess.children)
    assert (limits_for(assets["bess"]).min_value, limits_for(assets["bess"]).max_value) == (-30.0, 30.0)
    pv = adapter_for_asset(assets["pv"])
    assert not isinstance(pv, GroupAdapter) and pv.asset_id == "pv"


def test_address_problems_catch_groups_that_overlap():
    """The Guadalix shape: 4 chargers from unit 21 and 2 from unit 22 share units 22 and 23."""
    ev = {"type": "ev_charger", "max_charge_kw": 7.4}
    pf = portfolio([
        {"id": "uni", "count": 4, **ev, "endpoint": {"protocol": "modbus", "host": "h", "port": 502,
                                                     "device_id": 21, "registers": REGISTERS}},
        {"id": "v2g", "count": 2, **ev, "endpoint": {"protocol": "modbus", "host": "h", "port": 502,
                                                     "device_id": 22, "registers": REGISTERS}},
        {"id": "ok", "count": 2, **ev, "endpoint": {"protocol": "modbus", "host": "h", "port": 502,
                                                    "device_id": 25, "registers": REGISTERS}},
    ])
    problems = address_problems(pf)
    assert len(problems) == 2 and all(p.startswith("v2g device") for p in problems)
    assert "unit 22" in problems[0] and "uni device 2" in problems[0]
    with pytest.raises(ValueError, match="cannot be told apart"):
        PortfolioSimulation(pf)


def test_unit_conversions_and_deviation_kinds():
    pf = portfolio([{"id": "ev", "type": "ev_charger", "max_charge_kw": 11, "phases": 3, "voltage_v": 230,
                     "endpoint": {"protocol": "modbus", "host": "h", "port": 502, "device_id": 1,
                                  "registers": REGISTERS | {"setpoint": {"address": 200, "unit": "A"}}}}])
    asset = next(a for _, a in pf.assets())
    adapter = adapter_for_asset(asset)
    assert adapter.limits.unit == "A"
    value, unit = to_device_unit(6.9, "kW", asset, adapter)
    assert unit == "A" and value == pytest.approx(10.0)
    assert to_device_unit(21.0, "degC", asset, adapter) == (21.0, "degC")  # left for the adapter to refuse
    at = dt.datetime(2024, 6, 25, tzinfo=dt.UTC)
    assert deviation_alarm("ev", "import_ceiling", 7.0, 2.0, 1.0, 10.0, at)[1] is None  # a full car
    dev, alarm = deviation_alarm("ev", "import_ceiling", 7.0, 9.0, 1.0, 10.0, at)
    assert dev == pytest.approx(2.0) and alarm is not None and alarm.kind == "deviation"
    assert deviation_alarm("pv", "export_ceiling", -5.0, -3.0, 1.0, 10.0, at)[1] is None  # less sun
    assert deviation_alarm("pv", "export_ceiling", -5.0, -8.0, 1.0, 10.0, at)[1] is not None
    assert deviation_alarm("b", "exact", -20.0, -17.0, 1.0, 10.0, at)[1] is not None


def test_nan_setpoints_are_skipped_not_sent():
    pf = portfolio([{"id": "pv", "type": "pv", "peak_kw": 10,
                     "endpoint": {"protocol": "modbus", "host": "h", "port": 502, "registers": REGISTERS}}])
    asset = next(a for _, a in pf.assets())
    t0 = pd.Timestamp("2024-06-25T10:00Z")
    frame = pd.DataFrame({"interval_start": [t0], "interval_end": [t0 + pd.Timedelta(minutes=15)],
                          "site_id": ["s"], "asset_id": ["pv"], "asset_type": ["pv"], "power_kw": [-4.0],
                          "baseline_kw": [-4.0], "setpoint": [float("nan")], "setpoint_unit": [""],
                          "state": [float("nan")], "state_unit": [""]})
    adapters = {"pv": adapter_for_asset(asset)}
    setpoints, planned = build_setpoints(ScheduleRun(path=None, frame=frame), t0.to_pydatetime(), {"pv": asset},
                                         adapters)
    assert setpoints == [] and "no setpoint" in planned["pv"]["skipped"]


async def test_an_on_off_share_switches_that_many_devices_fully_on():
    """The schedule's "2 of 3 elements on" (0.67 per device) must not become "all off" at every device."""
    port = free_port()
    sim = BmsSimulator(port=port)
    coil = {"setpoint": {"address": 5, "table": "coil"},
            "active_power": {"address": 100, "data_type": "float32", "table": "input", "unit": "kW"}}
    base = ModbusEndpoint.model_validate({"protocol": "modbus", "host": "127.0.0.1", "port": port, "device_id": 1,
                                          "timeout_s": 0.5, "registers": coil})
    endpoints = device_endpoints(base, 3)
    for e in endpoints:
        sim.add(f"wh{e.device_id}", e, "power", min_value=0.0, max_value=1.0, rated_kw=2.0)
    await sim.start()
    limits = SetpointLimits(0.0, 1.0, "on_off")
    group = GroupAdapter("wh", [adapter_for(f"wh/{k}", e, limits) for k, e in enumerate(endpoints, 1)])
    try:
        result = await group.send_setpoint(Setpoint("wh", 2 / 3, "on_off"))
        assert result.ok, result.reason
        assert [r.sent for r in group.last_results] == [1.0, 1.0, 0.0]
        assert result.sent == pytest.approx(2 / 3) and "per device" in result.reason
        assert (await group.read_telemetry()).active_power_kw == pytest.approx(4.0)
        result = await group.send_setpoint(Setpoint("wh", 1.0, "on_off"))
        assert [r.sent for r in group.last_results] == [1.0, 1.0, 1.0] and result.sent == 1.0
    finally:
        await group.close()
        await sim.stop()


def _plain_group(n: int) -> GroupAdapter:
    limits = SetpointLimits(0.0, 1.0, "on_off")
    endpoints = device_endpoints(ModbusEndpoint.model_validate(
        {"protocol": "modbus", "host": "127.0.0.1", "port": 1, "device_id": 1,
         "registers": {"setpoint": {"address": 5, "table": "coil"}}}), n)
    return GroupAdapter("wh", [adapter_for(f"wh/{k}", e, limits) for k, e in enumerate(endpoints, 1)])


def test_on_off_shares_go_round_robin_so_no_tank_gets_two_intervals_ahead():
    """The schedule holds the hottest tank of a group at ceil(K/N) heating intervals: the split must too."""
    group = _plain_group(3)
    t0 = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    shares = [1 / 3, 2 / 3, 1 / 3, 1 / 3, 2 / 3, 1.0, 1 / 3, 2 / 3]
    total = 0
    for q, share in enumerate(shares):
        at = t0 + dt.timedelta(minutes=15 * q)
        first = group.split(Setpoint("wh", share, "on_off", valid_from=at))
        again = group.split(Setpoint("wh", share, "on_off", valid_from=at))  # the same interval dispatched twice
        assert again == first
        total += round(share * 3) if share < 1 else 0
        assert sum(first) == round(share * 3)
        assert max(group.on_intervals) - min(group.on_intervals) <= 1
        assert sum(group.on_intervals) == total


def test_measured_temperatures_pick_the_coldest_tanks():
    group = _plain_group(3)
    now = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    group.last_telemetry = [Telemetry(asset_id=f"wh/{k}", at=now, connected=True, temp_c=t)
                            for k, t in enumerate((61.0, 48.0, 55.0), 1)]
    assert group.split(Setpoint("wh", 2 / 3, "on_off", valid_from=now)) == [0.0, 1.0, 1.0]
