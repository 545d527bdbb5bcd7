"""Plug-ins from other distributions, found through the entry-point group ``flexopt.plugins``.

Each entry point names a module (or a callable) that registers what it brings when it is imported (called):
asset types (``register_asset_type``, ``flexopt.models.registry.register``, ``flexopt.check.registry.register_check``).
They are loaded once per process, before the first portfolio is validated or the schema printed, so a plug-in
type is known wherever a built-in one is. Plug-ins defined in-process (tests) simply register themselves.
"""

from __future__ import annotations

import types
from importlib.metadata import entry_points

__all__ = ["GROUP", "PluginError", "load_plugins"]

GROUP = "flexopt.plugins"
_loaded = False


class PluginError(RuntimeError):
    """An installed plug-in failed to load; the message names its entry point."""


def load_plugins() -> None:
    """Import (call) every entry point of :data:`GROUP`, until they have all loaded once (registering twice is
    harmless, so a failed attempt is simply repeated and reported again)."""
    global _loaded
    if _loaded:
        return
    for ep in entry_points(group=GROUP):
        try:
            target = ep.load()
            if callable(target) and not isinstance(target, types.ModuleType):
                target()
        except Exception as exc:  # any failure of foreign code: say which plug-in, not a bare traceback
            raise PluginError(f"plug-in {ep.name!r} ({GROUP}: {ep.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}; fix or uninstall it") from exc
    _loaded = True
