"""Asset type name -> formulation class. A built-in type's formulation is one module here with ``@register``;
a plug-in's registers from its own module. With its portfolio class (``flexopt.config.asset_types``) that is the
whole type (docs/formulation.md, "How to add an asset type").

Every module of :mod:`flexopt.models` is imported on first use, so adding a type touches no other file here.
"""

from __future__ import annotations

import importlib
import pkgutil

from flexopt.models.base import Formulation

_REGISTRY: dict[str, type[Formulation]] = {}
_loaded = False


def register(cls: type[Formulation]) -> type[Formulation]:
    name = cls.asset_type
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"asset type {name!r} registered twice ({_REGISTRY[name].__name__}, {cls.__name__})")
    _REGISTRY[name] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import flexopt.models as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in ("base", "registry"):
            importlib.import_module(f"flexopt.models.{mod.name}")
    _loaded = True


def formulation_for(asset_type: str) -> type[Formulation]:
    _load_all()
    try:
        return _REGISTRY[asset_type]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"no formulation for asset type {asset_type!r}; known: {known}") from None


def registered() -> dict[str, type[Formulation]]:
    _load_all()
    return dict(_REGISTRY)
