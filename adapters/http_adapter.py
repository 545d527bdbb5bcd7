"""Device clouds over HTTP/JSON (httpx): the vendor layout is configuration (flexopt.config.endpoints.HttpEndpoint).

Retries with doubling backoff on connection errors, timeouts, 5xx and 429 (honouring Retry-After);
other 4xx answers are final: 422 and friends mean the device refused the value.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import ssl
from typing import Any

import httpx

from flexopt.adapters.base import (
    BOOL_FIELDS,
    TELEMETRY_FIELDS,
    AdapterContext,
    AdapterError,
    CommandStatus,
    DeviceAdapter,
    Setpoint,
    SetpointLimits,
    Telemetry,
    convert,
    utcnow,
)
from flexopt.adapters.http_mapping import field_for, get_path, render, render_path
from flexopt.config.endpoints import HttpEndpoint, HttpRequestSpec
from flexopt.config.redaction import excerpt, register_secret

_ACCEPTED = {"accepted", "ok", "success", "succeeded", "applied", "done", "true"}
MAX_REDIRECTS = 3
# a redirect is followed only where repeating the request at the new place cannot do anything twice or change it:
# GET (any redirect), PUT (307/308 keep the method and body); POST and PATCH are not idempotent
_FOLLOW = {"GET": {301, 302, 303, 307, 308}, "PUT": {307, 308}}
_SSL_CONTEXT: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    """One TLS context for all clients: building one takes ~50 ms of CPU, which for dozens of
    devices would stall the event loop (and time out other protocols' connects)."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = httpx.create_ssl_context()
    return _SSL_CONTEXT


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - utcnow()).total_seconds()) if when else None


def _detail(response: httpx.Response) -> str:
    """The start of an error body for the reason; redacted before it is cut (a body may echo our token)."""
    return excerpt(response.text, 200)


class HttpAdapter(DeviceAdapter):
    protocol = "http"

    def __init__(self, asset_id: str, endpoint: HttpEndpoint, limits: SetpointLimits | None = None,
                 portfolio_asset_id: str | None = None) -> None:
        e = endpoint
        worst_wait = max(e.backoff_s * 2 ** max(e.retries - 1, 0), e.max_retry_after_s)
        super().__init__(asset_id, limits, call_timeout_s=(e.retries + 1) * e.timeout_s + e.retries * worst_wait + 1)
        self.endpoint = endpoint
        # {asset_id} is the portfolio asset's id, also for a device of a counted asset (whose adapter id is
        # "<asset>/<device>"); the device is {device_id}
        self.portfolio_asset_id = portfolio_asset_id or asset_id
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def for_endpoint(cls, asset_id: str, endpoint: HttpEndpoint, limits: SetpointLimits | None,
                     context: AdapterContext) -> HttpAdapter:
        """``{asset_id}`` in a path or body is the asset's own id, for every device of a counted asset."""
        return cls(asset_id, endpoint, limits, getattr(context.asset, "id", None))

    # --- plumbing -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        env = self.endpoint.token_env
        if env is None:
            return {}
        token = os.environ.get(env)
        if not token:
            raise AdapterError("error", f"environment variable {env} (API token) is not set")
        register_secret(token)  # never written anywhere, whatever a cloud echoes
        return {"Authorization": f"Bearer {token}"}

    def _client_or_new(self) -> httpx.AsyncClient:
        if self._client is None:
            t = self.endpoint.timeout_s
            self._client = httpx.AsyncClient(
                base_url=self.endpoint.base_url, timeout=httpx.Timeout(t, connect=min(2.0, t)), verify=_ssl_context()
            )
        return self._client

    async def _request(self, spec: HttpRequestSpec, values: dict[str, Any], retries: int) -> Any:
        """One logical call with retries; returns the parsed JSON (None for an empty body)."""
        client = self._client_or_new()
        headers = self._headers()
        path = render_path(spec.path, values)
        body = render(spec.body, values) if spec.body is not None else None
        last: tuple[CommandStatus, str] = ("error", "no attempt made")
        for attempt in range(retries + 1):
            wait = self.endpoint.backoff_s * 2**attempt
            try:
                r = await self._follow(client, spec.method, path, body, headers)
            except httpx.TimeoutException as exc:
                last = ("timeout", f"{type(exc).__name__} after {self.endpoint.timeout_s:g} s")
            except httpx.TransportError as exc:
                last = ("unreachable", f"{type(exc).__name__}: {exc}")
            else:
                code = r.status_code
                if code == 429:
                    after = _retry_after_s(r)
                    last = ("error", f"HTTP 429 rate limited (Retry-After {after})")
                    if after is not None:
                        if after > self.endpoint.max_retry_after_s:
                            raise AdapterError("error", f"HTTP 429 rate limited; Retry-After {after:g} s too long")
                        wait = after
                elif code >= 500:
                    last = ("error", f"HTTP {code}: {_detail(r)}")
                elif code in (401, 403):
                    raise AdapterError("error", f"HTTP {code}: not authorised, check token {self.endpoint.token_env}")
                elif code >= 400:
                    raise AdapterError("rejected", f"HTTP {code}: {_detail(r)}")
                elif code >= 300:  # a redirect without a Location, or 300/304/305
                    raise AdapterError("unconfirmed", f"HTTP {code} without a usable redirect: nothing confirmed")
                else:
                    if not r.content.strip():
                        return None
                    try:
                        return r.json()
                    except ValueError as exc:
                        raise AdapterError("error", f"HTTP {code} but the body is not JSON: {_detail(r)}") from exc
            if attempt < retries:
                await asyncio.sleep(wait)
        if retries:
            last = (last[0], f"{last[1]} (after {retries + 1} attempts)")
        raise AdapterError(*last)

    async def _follow(self, client: httpx.AsyncClient, method: str, path: str, body: Any,
                      headers: dict[str, str]) -> httpx.Response:
        """One request, following redirects only where that is safe (``_FOLLOW``, same origin, at most
        ``MAX_REDIRECTS``). Any other redirect is ``unconfirmed``: a 307 with an empty body applied nothing."""
        r = await client.request(method, path, json=body, headers=headers)
        origin = r.request.url.copy_with(path="/", query=None, fragment=None)
        for _ in range(MAX_REDIRECTS):
            if not r.is_redirect:
                return r
            target = r.request.url.join(r.headers["location"])
            if r.status_code not in _FOLLOW.get(method, set()):
                raise AdapterError("unconfirmed", f"HTTP {r.status_code} redirect to {target} not followed for "
                                   f"{method} (not idempotent): nothing was applied; set the endpoint's path to "
                                   "the new location")
            if target.copy_with(path="/", query=None, fragment=None) != origin:
                raise AdapterError("unconfirmed", f"HTTP {r.status_code} redirect to another host ({target.host}) "
                                   "not followed: the token is not sent there; change base_url if it moved")
            r = await client.request(method, target, json=body, headers=headers)
        if r.is_redirect:
            raise AdapterError("unconfirmed", f"more than {MAX_REDIRECTS} redirects (last HTTP {r.status_code})")
        return r

    def _values(self, command: Setpoint | None = None) -> dict[str, Any]:
        values: dict[str, Any] = {"device_id": self.endpoint.device_id, "asset_id": self.portfolio_asset_id}
        if command is not None:
            unit = self.endpoint.setpoint_unit
            try:
                value = convert(command.value, command.unit, unit)
            except ValueError as exc:
                raise AdapterError("invalid", f"setpoint in {command.unit} but the API takes {unit}") from exc
            values |= {
                "value": round(value, 6),
                "on": value >= 0.5,
                "unit": unit,
                "valid_from": command.valid_from.isoformat() if command.valid_from else "",
                "valid_until": command.valid_until.isoformat() if command.valid_until else "",
            }
        return values

    # --- DeviceAdapter --------------------------------------------------------------------------
    async def _connect(self) -> None:
        await self._request(self.endpoint.telemetry, self._values(), retries=0)

    async def _close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send(self, command: Setpoint) -> tuple[CommandStatus, str]:
        values = self._values(command)
        reply = await self._request(self.endpoint.setpoint, values, self.endpoint.retries)
        fields = self.endpoint.setpoint.fields
        if "status" in fields:
            try:
                status = get_path(reply, fields["status"])
            except (KeyError, IndexError, TypeError):
                return "unconfirmed", f"reply has no {fields['status']}"
            if str(status).lower() not in _ACCEPTED:
                return "rejected", f"device answered {status!r}"
        if "setpoint" in fields:
            try:
                echoed = float(get_path(reply, fields["setpoint"]))
            except (KeyError, IndexError, TypeError, ValueError):
                return "unconfirmed", f"reply has no numeric {fields['setpoint']}"
            if abs(echoed - float(values["value"])) > 1e-6 * max(1.0, abs(echoed)):
                return "rejected", f"device kept {echoed:g} instead of {values['value']:g}"
        return "confirmed", ""

    async def _read(self) -> Telemetry:
        reply = await self._request(self.endpoint.telemetry, self._values(), self.endpoint.retries)
        data: dict[str, Any] = {}
        extra: dict[str, float] = {}
        missing = []
        for name, path in self.endpoint.telemetry.fields.items():
            try:
                raw = get_path(reply, path)
            except (KeyError, IndexError, TypeError):
                missing.append(name)
                continue
            target, factor = field_for(name, TELEMETRY_FIELDS)
            if raw is None:
                continue
            if target in BOOL_FIELDS:
                data[target] = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "on", "yes")
            elif target is not None:
                data[target] = float(raw) * factor
            elif isinstance(raw, int | float):
                extra[name] = float(raw)
        if data.get("setpoint") is not None and self.limits is not None:
            data["setpoint"] = convert(data["setpoint"], self.endpoint.setpoint_unit, self.limits.unit)
        return Telemetry(
            asset_id=self.asset_id,
            at=utcnow(),
            connected=True,
            quality="questionable" if missing else "good",
            notes=f"missing in reply: {', '.join(missing)}" if missing else "",
            extra=extra,
            **data,
        )
