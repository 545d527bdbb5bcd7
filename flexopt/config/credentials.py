"""Where a portfolio's secrets come from: each endpoint field ending in ``_env`` names an environment variable
(``password_env``, ``token_env``); the portfolio itself never holds a secret. Dispatch checks that every one is set
before it touches a device (a missing secret is exit 2 naming the variable, never a placeholder password) and
registers every value with the redactor (:mod:`flexopt.config.redaction`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from flexopt.config.endpoints import device_endpoints
from flexopt.config.redaction import register_secret


@dataclass(frozen=True)
class SecretRef:
    """One ``*_env`` field of one asset's endpoint; ``users`` are the names it is sent with (its devices' ids)."""

    env: str
    field: str
    asset_id: str
    users: tuple[str, ...]
    endpoint: Any

    def value(self) -> str | None:
        return os.environ.get(self.env) or None


def secret_refs(portfolio: Any) -> list[SecretRef]:
    """Every secret the portfolio's endpoints read, in portfolio order."""
    refs = []
    for _site, asset in portfolio.assets():
        if asset.endpoint is None:
            continue
        users = tuple(u for e in device_endpoints(asset.endpoint, asset.count) for u in e.secret_users())
        for field, env in asset.endpoint.secret_envs().items():
            refs.append(SecretRef(env, field, asset.id, users, asset.endpoint))
    return refs


def missing_secrets(portfolio: Any) -> list[str]:
    """One line per variable that is unset, empty or unusable (a hex key that is not hex), naming it and the
    assets that need it; never a value."""
    problems: dict[tuple[str, str], list[str]] = {}
    for ref in secret_refs(portfolio):
        value = ref.value()
        why = "is not set" if value is None else ref.endpoint.secret_problem(ref.field, value)
        if why is not None:
            problems.setdefault((ref.env, why), []).append(f"{ref.asset_id} ({ref.field})")
    return [f"environment variable {env} {why} (needed by {', '.join(users)})" for (env, why), users in
            problems.items()]


def register_portfolio_secrets(portfolio: Any) -> int:
    """Register the value of every secret the portfolio uses with the redactor; how many were set."""
    count = 0
    for ref in secret_refs(portfolio):
        value = ref.value()
        if value is not None:
            register_secret(value, ref.endpoint.secret_bytes(ref.field, value), ref.users)
            count += 1
    return count
