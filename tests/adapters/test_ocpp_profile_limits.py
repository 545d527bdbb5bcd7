"""A charger that takes only a few schedule periods: flexopt reads its limit (GetConfiguration in 1.6, GetVariables
in 2.0.1) and fits the profile to it, against ocpp-rpc in strict schema mode (a charger flexopt did not write, which
rejects longer profiles, as the chargers of issue 12 did). Real websockets on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pytest

from flexopt.adapters.base import Setpoint, SetpointLimits, SetpointPeriod, utcnow
from flexopt.adapters.ocpp_adapter import OcppAdapter
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.adapters.ocpp_profiles import fit_periods
from flexopt.config.endpoints import OcppEndpoint

PEERS = Path(__file__).resolve().parents[1] / "peers"
LIMITS = SetpointLimits(0.0, 22.0, "kW")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"peers_{name}", PEERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ocpp_rpc = _load("ocpp_rpc")


@pytest.fixture(scope="module")
def peer_installed():
    ocpp_rpc.install()


def day_of_periods(n: int = 80) -> Setpoint:
    """``n`` quarter hours of a varying ceiling, as dispatch sends the rest of a run."""
    start = utcnow().replace(microsecond=0)
    periods = tuple(SetpointPeriod(start + dt.timedelta(minutes=15 * k), 4.0 + (k % 7)) for k in range(n))
    return Setpoint("ev", periods[0].value, "kW", valid_from=start, valid_until=start + dt.timedelta(hours=n / 4),
                    periods=periods)


@pytest.mark.parametrize(("protocol", "version"), [("ocpp1.6", "1.6"), ("ocpp2.0.1", "2.0.1")])
async def test_profiles_fit_the_chargers_period_limit(peer_installed, monkeypatch, protocol, version):
    monkeypatch.setenv("CP_PW", "limits-pw-1234")
    async with CentralSystem() as central:
        endpoint = OcppEndpoint.model_validate({"protocol": "ocpp", "charge_point_id": "CP-FEW", "version": version,
                                                "password_env": "CP_PW", "profile_validity_s": 1800})
        adapter = OcppAdapter("ev", endpoint, LIMITS, central)
        peer = await ocpp_rpc.RpcChargePoint(endpoint=central.url, identity="CP-FEW", protocol=protocol,
                                             password="limits-pw-1234", maxPeriods=5).start()
        try:
            assert (await peer.wait_for("booted", "refused"))["event"] == "booted", peer.events
            for _ in range(2):
                res = await adapter.send_setpoint(day_of_periods(80))
                assert res.ok, res.reason
                assert "the charger takes 5 periods: sent the next 1.2 h" in res.reason
            asked = peer.calls("GetConfiguration" if version == "1.6" else "GetVariables")
            assert len(asked) == 1  # asked once, then known
            sent = peer.calls("SetChargingProfile")
            assert len(sent) == 2 and not any(c["rejected"] for c in sent)
            params = sent[-1]["params"]
            profile = params.get("csChargingProfiles") or params["chargingProfile"]
            schedule = profile["chargingSchedule"]
            schedule = schedule[0] if isinstance(schedule, list) else schedule
            periods = schedule["chargingSchedulePeriod"]
            assert [p["startPeriod"] for p in periods] == [0, 900, 1800, 2700, 3600]
            assert [p["limit"] for p in periods] == [4000.0, 5000.0, 6000.0, 7000.0, 8000.0]
            assert schedule["duration"] == 4500  # ends where the sixth period would start
            valid_to = dt.datetime.fromisoformat(profile["validTo"].replace("Z", "+00:00"))
            assert 1700 < (valid_to - utcnow()).total_seconds() <= 1800  # the failsafe
        finally:
            await peer.stop()


async def test_a_charger_without_a_limit_gets_the_whole_profile(peer_installed, monkeypatch):
    monkeypatch.setenv("CP_PW", "limits-pw-1234")
    async with CentralSystem() as central:
        endpoint = OcppEndpoint.model_validate({"protocol": "ocpp", "charge_point_id": "CP-ALL", "version": "1.6",
                                                "password_env": "CP_PW"})
        adapter = OcppAdapter("ev", endpoint, LIMITS, central)
        peer = await ocpp_rpc.RpcChargePoint(endpoint=central.url, identity="CP-ALL", protocol="ocpp1.6",
                                             password="limits-pw-1234").start()
        try:
            assert (await peer.wait_for("booted", "refused"))["event"] == "booted", peer.events
            res = await adapter.send_setpoint(day_of_periods(80))
            assert res.ok, res.reason
            profile = peer.calls("SetChargingProfile")[-1]["params"]["csChargingProfiles"]
            assert len(profile["chargingSchedule"]["chargingSchedulePeriod"]) == 80
            assert "validTo" not in profile
        finally:
            await peer.stop()


def test_fitting_merges_equal_neighbours_before_it_cuts():
    periods = ((0, 5.0), (900, 5.0), (1800, 7.0), (2700, 7.0), (3600, 5.0))
    assert fit_periods(periods, 3) == (((0, 5.0), (1800, 7.0), (3600, 5.0)), None,
                                       "the charger takes 3 periods: 5 merged to 3")
    assert fit_periods(periods, 2)[:2] == (((0, 5.0), (1800, 7.0)), 3600)
    assert fit_periods(periods, None) == (periods, None, "") == fit_periods(periods, 5)  # within the limit: as is


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_flexopts_simulated_charger_says_its_limit_too(monkeypatch, version):
    from flexopt.adapters.sim.charge_point import SimChargePoint

    monkeypatch.setenv("CP_PW", "limits-pw-1234")
    async with CentralSystem() as central:
        endpoint = OcppEndpoint.model_validate({"protocol": "ocpp", "charge_point_id": "CP-SIM", "version": version,
                                                "password_env": "CP_PW"})
        adapter = OcppAdapter("ev", endpoint, LIMITS, central)
        sim = SimChargePoint("CP-SIM", central.url, version, password="limits-pw-1234", meter_interval_s=3600)
        sim.max_periods = 3
        await sim.start()
        try:
            res = await adapter.send_setpoint(day_of_periods(80))
            assert res.ok, res.reason
            schedule = sim.profile_calls[-1]["charging_schedule"]
            schedule = schedule[0] if isinstance(schedule, list) else schedule
            assert len(schedule["charging_schedule_period"]) == 3 and schedule["duration"] == 2700
        finally:
            await sim.stop()
