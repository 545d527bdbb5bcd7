"""HTTP details seen with independent servers: redirects (a 307 with an empty body applied nothing) and ids that
are not path-safe. A plain ``http.server`` (the standard library's, not flexopt's simulator) records what arrives,
over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from flexopt.adapters.base import AdapterContext, Setpoint, SetpointLimits
from flexopt.adapters.http_adapter import HttpAdapter
from flexopt.adapters.http_mapping import render_path
from flexopt.config.endpoints import HttpEndpoint


class Capture:
    """A stdlib HTTP server: ``routes[(method, path)] = (status, headers, body)``; ``seen`` lists (method, path,
    Authorization header) of every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, str, str | None]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                capture.seen.append((self.command, self.path, self.headers.get("Authorization")))
                status, headers, body = capture.routes.get((self.command, self.path), (404, {}, b"{}"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_PATCH = do_POST = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture():
    c = Capture()
    yield c
    c.close()


def endpoint(url: str, method: str = "PATCH", path: str = "/v1/{device_id}/power") -> HttpEndpoint:
    return HttpEndpoint.model_validate({
        "protocol": "http", "base_url": url, "device_id": "dev-1", "token_env": "CAPTURE_TOKEN", "timeout_s": 1,
        "retries": 0, "setpoint": {"method": method, "path": path, "body": {"kw": "{value}"}},
        "telemetry": {"path": "/v1/{device_id}", "fields": {"power_kw": "p"}}})


OK = (200, {"Content-Type": "application/json"}, b'{"status": "accepted"}')


async def test_a_307_with_an_empty_body_is_not_confirmed(capture, monkeypatch):
    monkeypatch.setenv("CAPTURE_TOKEN", "capture-token-123456")
    capture.routes[("PATCH", "/v1/dev-1/power")] = (307, {"Location": "/v2/dev-1/power"}, b"")
    capture.routes[("PATCH", "/v2/dev-1/power")] = OK
    ad = HttpAdapter("pv", endpoint(capture.url), SetpointLimits(0, 10, "kW"))
    res = await ad.send_setpoint(Setpoint("pv", 4.0, "kW"))
    assert res.status == "unconfirmed" and not res.ok, res
    assert "HTTP 307 redirect to" in res.reason and "not idempotent" in res.reason
    assert [s[:2] for s in capture.seen] == [("PATCH", "/v1/dev-1/power")]  # never repeated elsewhere
    await ad.close()


async def test_idempotent_calls_follow_redirects_on_the_same_host_only(capture, monkeypatch):
    monkeypatch.setenv("CAPTURE_TOKEN", "capture-token-123456")
    capture.routes[("PUT", "/v1/dev-1/power")] = (308, {"Location": "/v2/dev-1/power"}, b"")
    capture.routes[("PUT", "/v2/dev-1/power")] = OK
    capture.routes[("GET", "/v1/dev-1")] = (301, {"Location": "/v2/dev-1"}, b"")
    capture.routes[("GET", "/v2/dev-1")] = (200, {"Content-Type": "application/json"}, json.dumps({"p": 2.5}).encode())
    ad = HttpAdapter("pv", endpoint(capture.url, "PUT"), SetpointLimits(0, 10, "kW"))
    res = await ad.send_setpoint(Setpoint("pv", 4.0, "kW"))
    assert res.ok, res.reason
    assert (await ad.read_telemetry()).active_power_kw == pytest.approx(2.5)
    assert [s[:2] for s in capture.seen] == [("PUT", "/v1/dev-1/power"), ("PUT", "/v2/dev-1/power"),
                                             ("GET", "/v1/dev-1"), ("GET", "/v2/dev-1")]
    other = Capture()  # a redirect to another host: the token is not sent there
    try:
        capture.routes[("PUT", "/v1/dev-1/power")] = (307, {"Location": f"{other.url}/v1/dev-1/power"}, b"")
        res = await ad.send_setpoint(Setpoint("pv", 4.0, "kW"))
        assert res.status == "unconfirmed" and "another host" in res.reason, res
        assert other.seen == []
    finally:
        other.close()
    await ad.close()


async def test_ids_are_percent_encoded_in_paths_and_asset_id_is_the_assets(capture, monkeypatch):
    """A device of a counted asset: its adapter is "b-grp/ok-grp-1", but {asset_id} is the asset's own id and every
    value is one path segment."""
    monkeypatch.setenv("CAPTURE_TOKEN", "capture-token-123456")
    ep = endpoint(capture.url, "PUT", "/sites/{asset_id}/devices/{device_id}")
    ep = ep.model_copy(update={"device_id": "ok grp/ü"})
    capture.routes[("PUT", "/sites/b-grp/devices/ok%20grp%2F%C3%BC")] = OK
    ad = HttpAdapter.for_endpoint("b-grp/ok-grp-1", ep, SetpointLimits(0, 10, "kW"),
                                  AdapterContext(asset=SimpleNamespace(id="b-grp")))
    res = await ad.send_setpoint(Setpoint("b-grp/ok-grp-1", 1.0, "kW"))
    assert res.ok, (res.reason, capture.seen)
    await ad.close()
    assert render_path("/a/{device_id}/{x}", {"device_id": "a/b?c#d"}) == "/a/a%2Fb%3Fc%23d/{x}"
