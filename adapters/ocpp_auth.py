"""Who may connect to flexopt's central system as a charge point: OCPP security profiles 0-3, decided on the
websocket handshake, before any OCPP message.

An impostor that claims a charger's id must not receive its charging profiles, so every charger authenticates
unless its endpoint says ``security_profile: 0``: profile 1 HTTP Basic (its id as user name, the password from
``password_env``), 2 the same over TLS, 3 a TLS client certificate signed by the configured CA whose CN or a
subjectAltName is its id. The URL path must be the configured path plus the id, percent-decoded, exactly; a secret
that is not set refuses everyone (never a placeholder password). Passwords are compared as bytes (a non-ASCII
password, a 1.6 AuthorizationKey of 20 raw bytes given hex-encoded).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import ssl
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

REFUSED = HTTPStatus.UNAUTHORIZED  # the client did not prove it is the charger
UNKNOWN = HTTPStatus.NOT_FOUND  # no charger is expected at that path


@dataclass(frozen=True)
class ChargerAuth:
    """How one charger proves who it is. ``passwords``: what its Basic password may be, as bytes (none: no Basic
    check, for profiles 0 and 3); ``problem``: why nobody can connect as it (its secret is not set)."""

    profile: int = 1
    passwords: tuple[bytes, ...] = ()
    problem: str = ""

    @classmethod
    def basic(cls, password: str | bytes, profile: int = 1) -> ChargerAuth:
        return cls(profile, (password.encode() if isinstance(password, str) else password,))

    @classmethod
    def unauthenticated(cls) -> ChargerAuth:
        return cls(0)

    def refusal(self, cp_id: str, authorization: str | None, peercert: dict[str, Any] | None,
                tls: bool) -> str | None:
        """Why this handshake is not the charger (None: it is). Never says what was expected."""
        if self.problem:
            return self.problem
        if self.profile >= 2 and not tls:
            return f"security profile {self.profile} needs TLS (wss://)"
        if self.profile == 3:
            if not peercert:
                return "no client certificate (security profile 3)"
            if cp_id not in certificate_names(peercert):
                return "the client certificate is not issued to this charge point id"
        if self.passwords or self.profile in (1, 2):
            given = basic_password(authorization, cp_id)
            if given is None:
                return "no HTTP Basic credentials for this charge point id"
            if not any(hmac.compare_digest(given, p) for p in self.passwords):
                return "wrong password"
        return None


def auth_for(endpoint: Any, environ: dict[str, str] | None = None) -> ChargerAuth:
    """The ChargerAuth an OCPP endpoint asks for, its password from the environment. A hex password
    (``secret_encoding: hex``, a 1.6 AuthorizationKey) is accepted as its raw bytes or as the hex text itself."""
    env = os.environ if environ is None else environ
    profile = endpoint.effective_security_profile
    if not endpoint.password_env:
        return ChargerAuth(profile)
    value = env.get(endpoint.password_env) or ""
    if not value:
        return ChargerAuth(profile, problem=f"environment variable {endpoint.password_env} (its password) is not set")
    if endpoint.secret_encoding == "hex":
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            return ChargerAuth(profile, problem=f"environment variable {endpoint.password_env} is not hex "
                                                "(secret_encoding: hex)")
        return ChargerAuth(profile, (raw, value.encode()))
    return ChargerAuth(profile, (value.encode(),))


def charger_id(path: str, prefix: str = "/") -> str | None:
    """The charge point id of a websocket request path: the configured ``prefix`` followed by the id, after
    percent-decoding; anything else (another path, a further segment) is None. The query is not part of it."""
    raw = path.split("?", 1)[0]
    try:
        decoded = urllib.parse.unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    if not decoded.startswith(prefix):
        return None
    cp_id = decoded[len(prefix):]
    return cp_id if cp_id and "/" not in cp_id else None


def basic_password(authorization: str | None, cp_id: str) -> bytes | None:
    """The password bytes of ``Authorization: Basic base64(<cp_id>:<password>)`` when the user name is exactly
    ``cp_id`` (which may itself contain ':' in OCPP 2.0.1: the password is what follows the id and one colon)."""
    if not authorization:
        return None
    scheme, _, blob = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(blob.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user = cp_id.encode() + b":"
    return decoded[len(user):] if decoded.startswith(user) else None


def certificate_names(peercert: dict[str, Any]) -> set[str]:
    """The subject CN and subjectAltName DNS/URI entries of a verified peer certificate (``getpeercert()``)."""
    names = {value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"}
    names |= {value for kind, value in peercert.get("subjectAltName", ()) if kind in ("DNS", "URI")}
    return names


def server_tls_context(cert_file: str, key_file: str | None, client_ca_file: str | None = None) -> ssl.SSLContext:
    """The central system's TLS (profiles 2 and 3): its certificate, and with ``client_ca_file`` the CAs whose
    client certificates it verifies (asked of every charger, required of profile 3 ones; a certificate of another CA
    fails the handshake)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context

