"""The ``uftp:`` section: flexopt as the aggregator (AGR) of a USEF UFTP (Shapeshifter) exchange with DSOs.

The signing key never sits in the file: ``signing_key_env`` names the environment variable holding it. Each
participant is a DSO we accept messages from, with the public key its messages must be signed with; a sender that
is not listed is rejected. ``congestion_points`` maps the UFTP entity address a DSO uses to the congestion point
of the portfolio it means.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from flexopt.config.quantities import integer, number

DOMAIN_PATTERN = r"^([a-z0-9]+(-[a-z0-9]+)*\.)+[a-z]{2,}$"  # the library's SenderDomain pattern
ENTITY_PATTERN = r"^(ea1\.[0-9]{4}-[0-9]{2}\..{1,244}:.{1,244}|ean\.[0-9]{12,34})$"  # UFTP CongestionPoint
UFTP_ZONE = r"(Africa|America|Australia|Europe|Pacific)/[a-zA-Z0-9_/]{3,}"  # the TimeZone UFTP messages carry
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DEFAULT_PATH = "/shapeshifter/api/v3/message"
PUBLIC_KEY_BYTES = 32
SIGNING_KEY_BYTES = 64


def public_key_problem(text: str) -> str | None:
    """Why ``text`` is not a base64 Ed25519 public key (32 bytes), or None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return "is not base64 text"
    if len(raw) != PUBLIC_KEY_BYTES:
        return f"decodes to {len(raw)} bytes; an Ed25519 public key is {PUBLIC_KEY_BYTES} (flexopt uftp keygen)"
    return None


def signing_key_problem(text: str) -> str | None:
    """Why ``text`` is not a base64 libsodium signing key (64 bytes: seed and public key), or None."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "is not base64 text"
    if len(raw) != SIGNING_KEY_BYTES:
        return f"decodes to {len(raw)} bytes; a libsodium signing key is {SIGNING_KEY_BYTES} (flexopt uftp keygen)"
    return None


def _public_key(text: str) -> str:
    why = public_key_problem(text)
    if why is not None:
        raise ValueError(f"public_key {why}")
    return text


def _listen(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT; write e.g. 127.0.0.1:9101 (port 1 to 65535)")
    return text


def _endpoint(text: str) -> str:
    if not re.match(r"^https?://[^/\s:]+(:\d{1,5})?(/\S*)?$", text):
        raise ValueError(f"{text!r} is not an http(s) URL; write e.g. http://127.0.0.1:9102{DEFAULT_PATH}")
    return text


def _domain(text: str) -> str:
    if len(text) > 253 or not re.match(DOMAIN_PATTERN, text):
        raise ValueError(f"{text!r} is not a participant domain: lower-case labels with dots, e.g. dso.grid.test")
    return text


def _entity(text: str) -> str:
    if not re.match(ENTITY_PATTERN, text):
        raise ValueError(f"{text!r} is not a UFTP entity address: 'ean.' and 12 to 34 digits (e.g. "
                         "ean.871685900012345678), or 'ea1.YYYY-MM.domain:id'")
    return text


Domain = Annotated[str, AfterValidator(_domain), Field(description="participant domain, e.g. dso.grid.test")]
EntityAddress = Annotated[str, AfterValidator(_entity), Field(description="UFTP entity address, e.g. ean.8716...")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UftpParticipant(_Strict):
    """A DSO flexopt trades with: where its messages go and the key its messages are signed with."""

    domain: Domain
    role: Literal["DSO"] = Field(description="the participant's UFTP role (flexopt is the AGR of DSOs)")
    endpoint: Annotated[str, AfterValidator(_endpoint)] = Field(description="the DSO's UFTP message URL")
    public_key: Annotated[str, AfterValidator(_public_key)] = Field(
        description="base64 Ed25519 public key its messages are signed with")


class UftpOffers(_Strict):
    """How a FlexRequest becomes a priced FlexOffer."""

    margin_eur: number(0.0, 1e6, "EUR") = Field(default=0.0, description="added to every option's price")
    margin_pct: number(0.0, 1000.0, "%") = Field(default=0.0, description="added on top of the cost difference")
    option_fractions: list[number(0.01, 1.0, lo_open=False)] = Field(
        default=[0.5, 1.0], min_length=1, max_length=5,
        description="the options offered: this share of the requested change (0.01 to 1), cheapest first")
    validity_min: integer(1, 7 * 24 * 60) = Field(
        default=60, description="an offer expires this many minutes after it is sent (or at the request's expiry)")
    min_solve_s: number(0.1, 600.0, "s") = Field(
        default=1.0, description="the least solver time per option, even when the request's deadline is near")


class Uftp(_Strict):
    """flexopt's participant in the UFTP exchange (AGR role)."""

    domain: Domain = Field(description="flexopt's participant domain")
    signing_key_env: Annotated[str, Field(pattern=ENV_PATTERN)] = Field(
        description="environment variable holding the base64 libsodium signing key (never the key itself)")
    listen: Annotated[str, AfterValidator(_listen)] = Field(description="HOST:PORT the AGR service listens on")
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_.\-]*$")] = Field(
        default=DEFAULT_PATH, description="URL path of the AGR endpoint")
    participants: list[UftpParticipant] = Field(min_length=1)
    congestion_points: dict[EntityAddress, Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, description="UFTP entity address -> flexopt congestion point id")
    offers: UftpOffers = Field(default_factory=UftpOffers)
    max_message_age_min: integer(1, 7 * 24 * 60) = Field(
        default=60, description="messages whose TimeStamp is older than this are rejected as replays")

    @model_validator(mode="after")
    def _unique(self) -> Uftp:
        domains = [p.domain for p in self.participants]
        twice = sorted({d for d in domains if domains.count(d) > 1})
        if twice:
            raise ValueError(f"participants: domain(s) {', '.join(twice)} listed more than once; keep one entry each")
        if self.domain in domains:
            raise ValueError(f"participants: {self.domain} is flexopt's own domain; a participant is another party")
        fractions = list(self.offers.option_fractions)
        if fractions != sorted(set(fractions)):
            raise ValueError("offers.option_fractions: list each share once, smallest first, e.g. [0.5, 1.0]")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def participant(self, domain: str) -> UftpParticipant | None:
        return next((p for p in self.participants if p.domain == domain), None)

    def entity_of(self, point_id: str) -> str | None:
        """The UFTP entity address of a flexopt congestion point (None when it is not traded)."""
        return next((ea for ea, cp in self.congestion_points.items() if cp == point_id), None)
