"""HTTP adapter against the simulated device cloud over real loopback sockets."""

from __future__ import annotations

import pytest

from flexopt.adapters.alarms import alarms_from_results
from flexopt.adapters.base import Setpoint, SetpointLimits
from flexopt.adapters.http_adapter import HttpAdapter
from flexopt.adapters.sim.device_cloud import DeviceCloud
from flexopt.adapters.sim.util import free_port
from flexopt.config.endpoints import HttpEndpoint


def split_endpoint(base_url: str, **kw) -> HttpEndpoint:
    return HttpEndpoint.model_validate(
        {
            "protocol": "http",
            "base_url": base_url,
            "device_id": "split-7",
            "token_env": "SIM_CLOUD_TOKEN",
            "timeout_s": 0.5,
            "retries": 2,
            "backoff_s": 0.01,
            "setpoint_unit": "degC",
            "setpoint": {
                "method": "PATCH",
                "path": "/v1/devices/{device_id}/climate",
                "body": {"target": {"temperature": "{value}"}, "mode": "auto"},
                "fields": {"status": "status", "setpoint": "value"},
            },
            "telemetry": {
                "method": "GET",
                "path": "/v1/devices/{device_id}",
                "fields": {
                    "power_w": "data.power",
                    "temp_c": "data.room.temp",
                    "online": "data.online",
                    "setpoint": "data.target",
                },
            },
            **kw,
        }
    )


@pytest.fixture
async def cloud(monkeypatch):
    monkeypatch.setenv("SIM_CLOUD_TOKEN", "t0ken")
    c = DeviceCloud(token="t0ken", port=free_port())
    await c.start()
    yield c
    await c.stop()


@pytest.fixture
async def split(cloud):
    ep = split_endpoint(cloud.url)
    cloud.add_device("split1", ep, "split", min_value=16, max_value=30, temp_c=24.0)
    adapter = HttpAdapter("split1", ep, SetpointLimits(18.0, 26.0, "degC"))
    assert await adapter.connect()
    yield adapter
    await adapter.close()


async def test_setpoint_and_telemetry_round_trip(cloud, split):
    res = await split.send_setpoint(Setpoint("split1", 21.5, "degC"))
    assert res.ok and res.status == "confirmed" and res.sent == 21.5 and not res.clamped
    dev = cloud.devices[("PATCH", "/v1/devices/split-7/climate")][0]
    assert dev.setpoint == 21.5
    t = await split.read_telemetry()
    assert t.connected and t.quality == "good" and t.available is True
    assert t.setpoint == 21.5
    # the cloud reports W; the adapter gives kW
    assert t.active_power_kw == pytest.approx(dev.power_kw, rel=1e-6)
    assert t.active_power_kw > 0.3  # 24 -> 21.5 degC needs work
    assert 21.5 <= t.temp_c <= 24.0


async def test_out_of_range_is_clamped_before_it_leaves(cloud, split):
    res = await split.send_setpoint(Setpoint("split1", 35.0, "degC"))
    assert res.ok and res.clamped and res.sent == 26.0 and res.requested == 35.0
    assert "clamped" in res.reason
    assert cloud.devices[("PATCH", "/v1/devices/split-7/climate")][0].setpoint == 26.0
    assert [a.kind for a in alarms_from_results([res])] == ["clamped"]


async def test_device_refusal_422_is_rejected_without_retry(cloud):
    ep = split_endpoint(cloud.url)
    cloud.add_device("split1", ep, "split", min_value=20, max_value=22)
    adapter = HttpAdapter("split1", ep, SetpointLimits(16.0, 30.0, "degC"))  # wider than the device
    res = await adapter.send_setpoint(Setpoint("split1", 25.0, "degC"))
    await adapter.close()
    assert not res.ok and res.status == "rejected" and "422" in res.reason and "outside" in res.reason
    assert [r[3] for r in cloud.requests] == [422]


async def test_429_waits_retry_after_then_succeeds(cloud, split):
    cloud.requests.clear()
    cloud.inject(429, retry_after="1")
    res = await split.send_setpoint(Setpoint("split1", 22.0, "degC"))
    assert res.ok, res.reason
    (t429, *_, s1), (t_ok, *_, s2) = cloud.requests
    assert (s1, s2) == (429, 200)
    assert t_ok - t429 >= 0.95  # Retry-After honoured, not the 10 ms backoff


async def test_429_with_too_long_retry_after_fails_fast(cloud, split):
    cloud.inject(429, retry_after="3600")
    res = await split.send_setpoint(Setpoint("split1", 22.0, "degC"))
    assert res.status == "error" and "Retry-After" in res.reason


async def test_5xx_retried_then_recovers(cloud, split):
    cloud.requests.clear()
    cloud.inject(500, times=2)
    res = await split.send_setpoint(Setpoint("split1", 23.0, "degC"))
    assert res.ok
    assert [r[3] for r in cloud.requests] == [500, 500, 200]


async def test_5xx_every_time_is_an_error(cloud, split):
    cloud.inject(503, times=3)
    res = await split.send_setpoint(Setpoint("split1", 23.0, "degC"))
    assert not res.ok and res.status == "error" and "503" in res.reason and "3 attempts" in res.reason


async def test_non_json_body(cloud, split):
    cloud.inject(200, body=b"<html>maintenance</html>", content_type="text/html")
    res = await split.send_setpoint(Setpoint("split1", 23.0, "degC"))
    assert res.status == "error" and "not JSON" in res.reason
    cloud.inject(200, body=b"<html>maintenance</html>", content_type="text/html")
    t = await split.read_telemetry()
    assert not t.connected and t.quality == "invalid" and "not JSON" in t.notes


async def test_timeout_then_recovery(cloud, split):
    cloud.delay_s = 1.0  # adapter timeout is 0.5 s
    res = await split.send_setpoint(Setpoint("split1", 23.0, "degC"))
    assert res.status == "timeout" and "3 attempts" in res.reason
    cloud.delay_s = 0.0
    assert (await split.send_setpoint(Setpoint("split1", 23.0, "degC"))).ok


async def test_device_down_then_back(cloud, split):
    await cloud.stop()
    res = await split.send_setpoint(Setpoint("split1", 23.0, "degC"))
    assert res.status == "unreachable" and not res.ok
    t = await split.read_telemetry()
    assert not t.connected and t.quality == "unreachable"
    await cloud.start()  # same port
    assert (await split.send_setpoint(Setpoint("split1", 23.0, "degC"))).ok
    assert (await split.read_telemetry()).connected


async def test_bad_or_missing_token(cloud, split, monkeypatch):
    monkeypatch.setenv("SIM_CLOUD_TOKEN", "wrong")
    res = await split.send_setpoint(Setpoint("split1", 23.0, "degC"))
    assert res.status == "error" and "401" in res.reason
    monkeypatch.delenv("SIM_CLOUD_TOKEN")
    res = await split.send_setpoint(Setpoint("split1", 23.0, "degC"))
    assert res.status == "error" and "SIM_CLOUD_TOKEN" in res.reason


async def test_water_heater_on_off_in_watts_layout(cloud):
    ep = HttpEndpoint.model_validate(
        {
            "protocol": "http",
            "base_url": cloud.url,
            "device_id": "wh-1",
            "token_env": "SIM_CLOUD_TOKEN",
            "setpoint_unit": "on_off",
            "setpoint": {"method": "POST", "path": "/heaters/{device_id}/relay", "body": {"on": "{on}"}},
            "telemetry": {
                "path": "/heaters/{device_id}/state",
                "fields": {"power_w": "p", "temp_c": "tank.t", "online": "online", "tank_litres": "tank.l"},
            },
        }
    )
    dev = cloud.add_device("wh1", ep, "water_heater", min_value=0, max_value=1, max_kw=2.0, temp_c=50.0)
    adapter = HttpAdapter("wh1", ep, SetpointLimits(0, 1, "on_off"))
    res = await adapter.send_setpoint(Setpoint("wh1", 1, "on_off"))
    assert res.ok and dev.setpoint == 1.0
    t = await adapter.read_telemetry()
    assert t.active_power_kw == pytest.approx(2.0)
    # a field the cloud does not send makes the reading questionable, not wrong
    assert t.quality == "questionable" and "tank_litres" in t.notes
    res = await adapter.send_setpoint(Setpoint("wh1", 0.2, "on_off"))
    assert res.ok and res.sent == 0.0 and dev.setpoint == 0.0
    await adapter.close()


async def test_wrong_unit_is_invalid(split):
    res = await split.send_setpoint(Setpoint("split1", 2.0, "kW"))
    assert res.status == "invalid" and "degC" in res.reason
