"""Plug-ins from other distributions, found through the entry-point group ``flexopt.plugins``.

An entry point names what a plug-in brings: a :class:`~flexopt.config.protocols.Protocol` (or a list of them),
a module that registers its asset types when imported (``register_asset_type``, the formulation's ``register``,
the check's ``register_check``), or a function that registers either. They are loaded once per process, before
the first portfolio is validated or the schema printed, so a plug-in is known wherever a built-in one is.
Plug-ins defined in-process (tests) register themselves.
"""

from __future__ import annotations

import types
from importlib.metadata import entry_points

from flexopt.config.protocols import Protocol, ProtocolError, register

__all__ = ["GROUP", "PluginError", "load_plugins"]

GROUP = "flexopt.plugins"
_loaded = False
_error: PluginError | None = None


class PluginError(ProtocolError):
    """An installed plug-in failed to load; the message names its entry point."""


def load_plugins() -> None:
    """Load every entry point of :data:`GROUP` once; a plug-in that fails is reported again at every call."""
    global _loaded, _error
    if _error is not None:
        raise _error
    if _loaded:
        return
    _loaded = True  # before loading: a plug-in that loads a portfolio must not load the plug-ins again
    for ep in entry_points(group=GROUP):
        try:
            target = ep.load()
            for item in target if isinstance(target, list | tuple) else [target]:
                if isinstance(item, Protocol):
                    register(item)
                elif isinstance(item, types.ModuleType):
                    continue  # importing it registered what it brings
                elif callable(item):
                    item()
                else:
                    raise TypeError(f"names a {type(item).__name__}, not a module, a Protocol or a function")
        except Exception as exc:  # any failure of foreign code: say which plug-in, not a bare traceback
            _error = PluginError(f"plug-in {ep.name!r} = {ep.value} (entry point group {GROUP}) cannot be loaded: "
                                 f"{type(exc).__name__}: {exc}; fix or uninstall it")
            raise _error from exc
