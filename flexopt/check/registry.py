"""Asset type -> its physics check, and the breach kinds a check may report.

Every asset type has a check written from its physical definition, never from its formulation: the built-in
checks register themselves in their modules here, a plug-in type registers its own next to its portfolio class
(the registry lives in the check package, so the checker still imports no model code).
"""

from __future__ import annotations

from collections.abc import Callable

from flexopt.check.breaches import KINDS, Breach
from flexopt.check.context import AssetCase

__all__ = ["CHECKS", "Check", "check_for", "register_check"]

Check = Callable[[AssetCase], list[Breach]]
CHECKS: dict[str, Check] = {}


def register_check(*asset_types: str, kinds: dict[str, tuple[str | None, str]] | None = None
                   ) -> Callable[[Check], Check]:
    """Decorator: ``check`` is the physics check of ``asset_types``. ``kinds`` adds the breach kinds it reports
    that no other check has (kind -> (violation kind of kpis.json that reports it, or None; what it means))."""

    def add(check: Check) -> Check:
        for kind, meaning in (kinds or {}).items():
            if KINDS.setdefault(kind, meaning) != meaning:
                raise ValueError(f"breach kind {kind!r} already means {KINDS[kind][1]!r}; choose another name")
        for name in asset_types:
            if CHECKS.get(name, check) is not check:
                raise ValueError(f"asset type {name!r} has a check already ({CHECKS[name].__module__})")
            CHECKS[name] = check
        return check

    return add


def check_for(asset_type: str) -> Check:
    """The registered check; a type without one cannot be checked (KeyError saying how to add it)."""
    try:
        return CHECKS[asset_type]
    except KeyError:
        raise KeyError(f"asset type {asset_type!r} has no physics check; register one with "
                       "flexopt.check.registry.register_check") from None
