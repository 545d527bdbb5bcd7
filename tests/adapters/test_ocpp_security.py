"""Only the charger itself gets its charging profiles: OCPP security profiles 0-3 on flexopt's central system,
against real charge points over real sockets on 127.0.0.1: flexopt's simulator and ocpp-rpc (npm, strict schema
mode: a charge point flexopt did not write), with certificates made here."""

from __future__ import annotations

import base64
import importlib.util
import ssl
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from flexopt.adapters.base import Setpoint, SetpointLimits
from flexopt.adapters.factory import adapters_for_portfolio
from flexopt.adapters.ocpp_adapter import OcppAdapter
from flexopt.adapters.ocpp_auth import basic_password, charger_id, server_tls_context
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.adapters.sim.charge_point import SimChargePoint
from flexopt.adapters.sim.util import free_port
from flexopt.cli import app
from flexopt.config.endpoints import OcppEndpoint
from flexopt.config.portfolio import Portfolio

PEERS = Path(__file__).resolve().parents[1] / "peers"
LIMITS = SetpointLimits(0.0, 11.0, "kW")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"peers_{name}", PEERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


ocpp_rpc = _load("ocpp_rpc")
certs = _load("certs")


@pytest.fixture(scope="module")
def peer_installed():
    ocpp_rpc.install()  # npm ci from tests/peers/package-lock.json, once


def ep(cp_id: str, version: str = "1.6", **kw) -> OcppEndpoint:
    return OcppEndpoint.model_validate({"protocol": "ocpp", "charge_point_id": cp_id, "version": version, **kw})


async def refusal(sim: SimChargePoint) -> int:
    """The HTTP status a simulated charger's handshake gets (it must not get a websocket)."""
    with pytest.raises(InvalidStatus) as refused:
        await sim.start()
    return refused.value.response.status_code


async def rpc(central: CentralSystem, identity: str, protocol: str = "ocpp1.6", **options) -> ocpp_rpc.RpcChargePoint:
    return await ocpp_rpc.RpcChargePoint(endpoint=options.pop("endpoint", central.url), identity=identity,
                                         protocol=protocol, **options).start()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_impostors_are_refused_and_get_no_profile(peer_installed, monkeypatch, version):
    monkeypatch.setenv("CP_B_PW", "s3cret-pw")
    protocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    async with CentralSystem(response_timeout_s=5.0) as central:
        adapter = OcppAdapter("ev", ep("FZ-CP-B", version, password_env="CP_B_PW"), LIMITS, central)
        assert await refusal(SimChargePoint("FZ-CP-B", central.url, version)) == 401  # no password
        assert await refusal(SimChargePoint("FZ-CP-B", central.url, version, password="wrong")) == 401
        assert await refusal(SimChargePoint("FZ-CP-B", central.url, version, password="\0unset")) == 401
        elsewhere = SimChargePoint("FZ-CP-B", central.url + "/anything/else", version, password="s3cret-pw")
        assert await refusal(elsewhere) == 404  # the right password, but not at the charger's path
        other_user = base64.b64encode(b"FZ-CP-A:s3cret-pw").decode()
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{central.url}/FZ-CP-B", subprotocols=[Subprotocol(protocol)],
                          additional_headers={"Authorization": f"Basic {other_user}"})
        assert refused.value.response.status_code == 401  # another user name
        impostors = [await rpc(central, "FZ-CP-B", protocol, password="wrong"),
                     await rpc(central, "FZ-CP-B", protocol),
                     await rpc(central, "FZ-CP-B", protocol, password="s3cret-pw",
                               endpoint=central.url + "/anything/else")]
        for impostor, status in zip(impostors, (401, 401, 404), strict=True):
            assert (await impostor.wait_for("refused", "booted"))["status"] == status
        assert not central.is_connected("FZ-CP-B")
        res = await adapter.send_setpoint(Setpoint("ev", 7.0, "kW", profile="default"))
        assert res.status == "unreachable" and not res.ok
        charger = await rpc(central, "FZ-CP-B", protocol, password="s3cret-pw")  # the charger itself
        try:
            assert (await charger.wait_for("booted", "refused"))["event"] == "booted"
            res = await adapter.send_setpoint(Setpoint("ev", 7.0, "kW", profile="default"))
            assert res.ok, res.reason  # ocpp-rpc's strict mode found our SetChargingProfile schema-valid
            assert len(charger.calls("SetChargingProfile")) == 1
        finally:
            for peer in [*impostors, charger]:
                await peer.stop()
        assert all(not p.calls("SetChargingProfile") for p in impostors)


async def test_a_password_that_is_not_set_refuses_everyone(monkeypatch):
    monkeypatch.delenv("CP_UNSET_PW", raising=False)
    async with CentralSystem() as central:
        adapter = OcppAdapter("ev", ep("CP-U", password_env="CP_UNSET_PW"), LIMITS, central)
        assert "CP_UNSET_PW" in adapter.last_error
        for password in (None, "", "\0unset", "unset"):
            assert await refusal(SimChargePoint("CP-U", central.url, password=password)) == 401
        res = await adapter.send_setpoint(Setpoint("ev", 5.0, "kW"))
        assert res.status == "unreachable" and "CP_UNSET_PW" in res.reason and "not set" in res.reason


async def test_unauthenticated_only_where_the_endpoint_says_so(peer_installed):
    with pytest.raises(ValidationError, match="would accept any client that claims its id"):
        ep("CP-OPEN")
    with pytest.raises(ValidationError, match="security_profile 0 is no authentication"):
        ep("CP-OPEN", security_profile=0, password_env="X")
    with pytest.raises(ValidationError, match="no '/'"):
        ep("site/CP-1", password_env="X")
    async with CentralSystem() as central:
        adapter = OcppAdapter("ev", ep("CP-OPEN", "2.0.1", security_profile=0), LIMITS, central)
        peer = await rpc(central, "CP-OPEN", "ocpp2.0.1")
        try:
            assert (await peer.wait_for("booted", "refused"))["event"] == "booted"
            assert (await adapter.send_setpoint(Setpoint("ev", 3.0, "kW", profile="default"))).ok
        finally:
            await peer.stop()


async def test_non_ascii_and_binary_passwords(peer_installed, monkeypatch):
    """Passwords are compared as bytes: a non-ASCII one, and an OCPP 1.6 AuthorizationKey of 20 raw bytes given
    hex-encoded (sent as the raw bytes, or as the hex text)."""
    key = bytes(range(236, 256))
    monkeypatch.setenv("CP_UTF8_PW", "pässwörd-€ü")
    monkeypatch.setenv("CP_KEY", key.hex())
    async with CentralSystem() as central:
        OcppAdapter("ev1", ep("CP-UTF8", password_env="CP_UTF8_PW"), LIMITS, central)
        OcppAdapter("ev2", ep("CP-KEY", password_env="CP_KEY", secret_encoding="hex"), LIMITS, central)
        peers = [await rpc(central, "CP-UTF8", password="pässwörd-€ü"),
                 await rpc(central, "CP-KEY", passwordHex=key.hex())]
        try:
            for peer in peers:
                assert (await peer.wait_for("booted", "refused"))["event"] == "booted", peer.events
        finally:
            for peer in peers:
                await peer.stop()
        for cp_id, password in (("CP-UTF8", "pässwörd-€ü"), ("CP-KEY", key), ("CP-KEY", key.hex())):
            sim = SimChargePoint(cp_id, central.url, password=password, meter_interval_s=3600)
            await sim.start()
            await sim.stop()
        assert await refusal(SimChargePoint("CP-UTF8", central.url, password="passwoerd-€ü")) == 401
        assert await refusal(SimChargePoint("CP-KEY", central.url, password=key[:-1] + b"\0")) == 401


async def test_2_0_1_identities_with_colons(peer_installed, monkeypatch):
    """The path is percent-decoded; the Basic user name is the whole id, colons included."""
    monkeypatch.setenv("CP_COLON_PW", "pw:with:colons")
    async with CentralSystem() as central:
        adapter = OcppAdapter("ev", ep("FZ:CP:B", "2.0.1", password_env="CP_COLON_PW"), LIMITS, central)
        peer = await rpc(central, "FZ:CP:B", "ocpp2.0.1", password="pw:with:colons")  # the path is FZ%3ACP%3AB
        try:
            assert (await peer.wait_for("booted", "refused"))["event"] == "booted", peer.events
            assert (await adapter.send_setpoint(Setpoint("ev", 4.0, "kW", profile="default"))).ok
        finally:
            await peer.stop()
        # "FZ" with the password "CP:B:pw:with:colons" sends the same Basic header: not the same charger
        assert await refusal(SimChargePoint("FZ", central.url, "2.0.1", password="CP:B:pw:with:colons")) == 404
    assert charger_id("/FZ%3ACP%3AB") == "FZ:CP:B" and charger_id("/ocpp/FZ:CP:B", "/ocpp/") == "FZ:CP:B"
    assert charger_id("/a/FZ") is None and charger_id("/FZ/") is None and charger_id("/%FF") is None
    header = "Basic " + base64.b64encode(b"FZ:CP:B:pw:x").decode()
    assert basic_password(header, "FZ:CP:B") == b"pw:x" and basic_password(header, "FZ:CB") is None
    assert basic_password(header, "FZ:CP") == b"B:pw:x"  # the path says which charger it claims to be


@pytest.fixture
def pki(tmp_path):
    ca = certs.Ca.make(tmp_path, "flexopt-test-ca")
    return {"ca": ca, "other_ca": certs.Ca.make(tmp_path, "someone-else"), "dir": tmp_path,
            "server": ca.issue(tmp_path, "central", server=True)}


async def test_profile_2_tls_and_basic(peer_installed, pki, monkeypatch):
    monkeypatch.setenv("CP_TLS_PW", "tls-pw")
    context = server_tls_context(str(pki["server"].cert), str(pki["server"].key))
    async with CentralSystem(ssl_context=context) as central:
        assert central.url.startswith("wss://")
        adapter = OcppAdapter("ev", ep("CP-TLS", security_profile=2, password_env="CP_TLS_PW"), LIMITS, central)
        ca = str(pki["ca"].cert)
        good, bad = (await rpc(central, "CP-TLS", password="tls-pw", ca=ca),
                     await rpc(central, "CP-TLS", password="nope", ca=ca))
        try:
            assert (await good.wait_for("booted", "refused"))["event"] == "booted", good.events
            assert (await bad.wait_for("booted", "refused"))["status"] == 401
            assert (await adapter.send_setpoint(Setpoint("ev", 6.0, "kW", profile="default"))).ok
        finally:
            await good.stop()
            await bad.stop()
        plain = await rpc(central, "CP-TLS", password="tls-pw", endpoint=central.url.replace("wss://", "ws://"))
        assert (await plain.wait_for("booted", "refused"))["event"] == "refused"  # no TLS, no talk
        await plain.stop()


async def test_profile_3_client_certificates(peer_installed, pki):
    """The central system as a portfolio configures it (TLS, the chargers' CA, the path /ocpp/): a certificate
    signed by that CA and issued to the charger's id (CN or subjectAltName) connects; none, another CA's, one issued
    to another id, or the right one at another path does not."""
    d, ca, other = pki["dir"], pki["ca"], pki["other_ca"]
    evs = [{"id": f"ev{i}", "type": "ev_charger", "max_charge_kw": 11, "endpoint": {
        "protocol": "ocpp", "charge_point_id": cp, "version": "2.0.1", "security_profile": 3}}
        for i, cp in enumerate(("CP-CERT", "CP-SAN"))]
    portfolio = Portfolio.model_validate({
        "portfolio": {"name": "p3", "timezone": "UTC"}, "tariff": {"import_price_eur_per_kwh": 0.2},
        "ocpp_central_system": {"host": "127.0.0.1", "port": free_port(), "path": "/ocpp/",
                                "tls_cert_file": str(pki["server"].cert), "tls_key_file": str(pki["server"].key),
                                "tls_client_ca_file": str(ca.cert)},
        "sites": [{"id": "s", "assets": evs}]})
    central = CentralSystem.for_portfolio(portfolio)
    assert await central.open() == []
    try:
        assert central.url.startswith("wss://") and central.url.endswith("/ocpp")
        adapters = adapters_for_portfolio(portfolio, {"ocpp": central})
        mine, san = ca.issue(d, "CP-CERT"), ca.issue(d, "serial-0042", dns=("CP-SAN",))
        foreign, someone = other.issue(d, "CP-CERT"), ca.issue(d, "CP-OTHER")
        tls = {"ca": str(ca.cert)}
        root = central.url.removesuffix("/ocpp")
        peers = {
            "own": await rpc(central, "CP-CERT", "ocpp2.0.1", cert=str(mine.cert), key=str(mine.key), **tls),
            "san": await rpc(central, "CP-SAN", "ocpp2.0.1", cert=str(san.cert), key=str(san.key), **tls),
            "none": await rpc(central, "CP-CERT", "ocpp2.0.1", **tls),
            "foreign": await rpc(central, "CP-CERT", "ocpp2.0.1", cert=str(foreign.cert), key=str(foreign.key),
                                 **tls),
            "someone": await rpc(central, "CP-CERT", "ocpp2.0.1", cert=str(someone.cert), key=str(someone.key),
                                 **tls),
            "no path": await rpc(central, "CP-CERT", "ocpp2.0.1", cert=str(mine.cert), key=str(mine.key),
                                 endpoint=root, **tls),
        }
        try:
            outcome = {name: await p.wait_for("booted", "refused") for name, p in peers.items()}
            assert outcome["own"]["event"] == "booted" and outcome["san"]["event"] == "booted", outcome
            assert outcome["none"]["status"] == 401 and outcome["someone"]["status"] == 401, outcome
            assert outcome["no path"]["status"] == 404, outcome
            foreign = outcome["foreign"]
            assert foreign["event"] == "refused" and not isinstance(foreign["status"], int), foreign  # TLS failed
            assert (await adapters["ev0"].send_setpoint(Setpoint("ev0", 5.0, "kW", profile="default"))).ok
            assert len(peers["own"].calls("SetChargingProfile")) == 1
        finally:
            for p in peers.values():
                await p.stop()
        client = ssl.create_default_context(cafile=str(ca.cert))  # flexopt's simulator with a certificate too
        client.load_cert_chain(mine.cert, mine.key)
        sim = SimChargePoint("CP-CERT", central.url, "2.0.1", ssl_context=client, meter_interval_s=3600)
        await sim.start()
        await sim.stop()
        bare = SimChargePoint("CP-CERT", central.url, "2.0.1", ssl_context=ssl.create_default_context(
            cafile=str(ca.cert)))
        assert await refusal(bare) == 401
    finally:
        await central.close()


def _portfolio(tmp_path: Path, endpoint: dict, central: dict | None = None) -> Path:
    doc = {"portfolio": {"name": "sec", "timezone": "UTC"}, "tariff": {"import_price_eur_per_kwh": 0.2},
           "ocpp_central_system": {"host": "127.0.0.1", "port": free_port(), **(central or {})},
           "sites": [{"id": "s", "assets": [{"id": "ev", "type": "ev_charger", "max_charge_kw": 11,
                                             "endpoint": {"protocol": "ocpp", "charge_point_id": "CP-1",
                                                          **endpoint}}]}]}
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_validate_warns_about_unauthenticated_chargers_and_refuses_impossible_profiles(tmp_path):
    res = CliRunner().invoke(app, ["validate", str(_portfolio(tmp_path, {"security_profile": 0}))])
    assert res.exit_code == 0, res.output
    assert "warning: ev: charge point CP-1 is not authenticated (security_profile 0)" in res.output
    res = CliRunner().invoke(app, ["validate", str(_portfolio(tmp_path, {}))])
    assert res.exit_code == 2 and "would accept any client that claims its id" in res.output
    res = CliRunner().invoke(app, ["validate", str(_portfolio(tmp_path, {"security_profile": 2,
                                                                         "password_env": "X"}))])
    assert res.exit_code == 2 and "security_profile 2 needs TLS" in res.output
    res = CliRunner().invoke(app, ["validate", str(_portfolio(tmp_path, {"security_profile": 3}, {
        "tls_cert_file": "c.pem", "tls_key_file": "k.pem"}))])
    assert res.exit_code == 2 and "tls_client_ca_file" in res.output


def test_dispatch_refuses_to_start_without_a_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("CP_1_PW", raising=False)
    monkeypatch.setenv("CP_KEY_ENV", "not hex")
    path = _portfolio(tmp_path, {"password_env": "CP_1_PW"})
    res = CliRunner().invoke(app, ["dispatch", str(path), "--store", str(tmp_path / "runs"), "--once"])
    assert res.exit_code == 2
    assert "environment variable CP_1_PW is not set (needed by ev (password_env))" in res.output
    path = _portfolio(tmp_path, {"password_env": "CP_KEY_ENV", "secret_encoding": "hex"})
    res = CliRunner().invoke(app, ["dispatch", str(path), "--store", str(tmp_path / "runs"), "--once"])
    assert res.exit_code == 2 and "CP_KEY_ENV is not hex" in res.output and "not hex (" in res.output
    assert not (tmp_path / "runs" / "sec").exists()  # no device touched, nothing recorded


def test_a_dispatch_round_never_shows_an_impostor_as_the_charger(tmp_path, monkeypatch):
    """An impostor that keeps trying to connect as the charger while dispatch runs gets nothing, and the round
    records the charger as unreachable (it used to record it confirmed, with the impostor holding the profile)."""
    import asyncio
    import datetime as dt
    import json
    import threading

    import pandas as pd

    monkeypatch.setenv("CP_1_PW", "the-real-one")
    path = _portfolio(tmp_path, {"password_env": "CP_1_PW"})
    port = yaml.safe_load(path.read_text())["ocpp_central_system"]["port"]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = now.replace(minute=now.minute - now.minute % 15, second=0)
    step = dt.timedelta(minutes=15)
    at = now if first + step - now > dt.timedelta(minutes=1) else first + step
    frame = pd.DataFrame([{"interval_start": first + i * step, "interval_end": first + (i + 1) * step,
                           "site_id": "s", "asset_id": "ev", "asset_type": "ev_charger", "power_kw": 7.0,
                           "baseline_kw": 0.0, "setpoint": 7.0, "setpoint_unit": "kW", "state": float("nan"),
                           "state_unit": ""} for i in range(-1, 4)])
    run = tmp_path / "runs" / "sec" / at.date().isoformat() / "day-ahead" / "v001"
    run.mkdir(parents=True)
    frame.to_parquet(run / "schedule.parquet")
    (run / "run.json").write_text(json.dumps({"kind": "day-ahead", "date": at.date().isoformat()}))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    impostor = SimChargePoint("CP-1", f"ws://127.0.0.1:{port}", password="guessed", meter_interval_s=3600)
    task = asyncio.run_coroutine_threadsafe(impostor.run_forever(retry_s=0.1), loop)
    try:
        res = CliRunner().invoke(app, ["dispatch", str(path), "--store", str(tmp_path / "runs"), "--once", "--at",
                                       at.strftime("%Y-%m-%dT%H:%M:%S"), "--settle-s", "0", "--connect-wait-s", "2"])
    finally:
        task.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    assert res.exit_code == 0, res.output
    (record_file,) = (tmp_path / "runs" / "sec").glob("*/dispatch/*.json")
    record = json.loads(record_file.read_text())
    assert record["assets"]["ev"]["command"]["status"] == "unreachable"
    assert ("ev", "unreachable", "critical") in {(a["asset_id"], a["kind"], a["severity"]) for a in record["alarms"]}
    assert impostor.profile_calls == [] and not impostor.booted.is_set()
    assert "the-real-one" not in res.output


def test_simulate_says_it_cannot_serve_certificate_chargers(tmp_path):
    path = _portfolio(tmp_path, {"security_profile": 3}, {"tls_cert_file": "c.pem", "tls_key_file": "k.pem",
                                                          "tls_client_ca_file": "ca.pem"})
    res = CliRunner().invoke(app, ["simulate", str(path), "--duration", "0.1"])
    assert res.exit_code == 2 and "TLS client certificate (security profile 3)" in res.output
