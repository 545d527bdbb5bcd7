"""Signing keys: a new pair for ``flexopt uftp keygen``, and the service's own key from its environment variable.

The key is read once, checked and registered with the redactor before anything can log it."""

from __future__ import annotations

import base64
import os

from nacl.bindings import crypto_sign_keypair

from flexopt.config.redaction import register_secret
from flexopt.config.uftp import Uftp, signing_key_problem


class SigningKeyError(ValueError):
    """The signing key is missing or unusable; the message names the variable, never the value."""


def new_key_pair() -> tuple[str, str]:
    """(private signing key, public key), both base64: the private one goes into the environment variable, the
    public one to the DSO (and into its participants list)."""
    public, private = crypto_sign_keypair()
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def public_key_of(signing_key: str) -> str:
    """The public half of a libsodium signing key (its last 32 bytes)."""
    return base64.b64encode(base64.b64decode(signing_key)[32:]).decode()


def signing_key(uftp: Uftp) -> str:
    """The AGR's signing key from ``uftp.signing_key_env``, registered with the redactor."""
    value = (os.environ.get(uftp.signing_key_env) or "").strip()
    if not value:
        raise SigningKeyError(f"environment variable {uftp.signing_key_env} (uftp.signing_key_env) is not set; put the "
                        "private key of `flexopt uftp keygen` there")
    why = signing_key_problem(value)
    # the key's text, and its secret half (the seed; the other half is the public key, which may be shown)
    register_secret(value, base64.b64decode(value)[:32] if why is None else None)
    if why is not None:
        raise SigningKeyError(f"environment variable {uftp.signing_key_env} {why}")
    return value
