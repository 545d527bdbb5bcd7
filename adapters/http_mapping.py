"""The JSON mapping of a vendor API: fill body/path templates, read fields by dotted path.

Shared by the HTTP adapter and the simulated cloud, so a new vendor layout is configuration only.
"""

from __future__ import annotations

import re
import string
from typing import Any
from urllib.parse import quote

_WHOLE = re.compile(r"^\{(\w+)\}$")


def render(template: Any, values: dict[str, Any]) -> Any:
    """Fill ``{name}`` placeholders. A string that is exactly one placeholder keeps the value's type
    (``"{value}"`` -> 21.5, ``"{on}"`` -> true); mixed strings are formatted as text."""
    if isinstance(template, dict):
        return {k: render(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, values) for v in template]
    if isinstance(template, str):
        m = _WHOLE.match(template)
        if m and m.group(1) in values:
            return values[m.group(1)]
        return template.format(**values)
    return template


def render_path(template: str, values: dict[str, Any]) -> str:
    """Fill a path template with every value percent-encoded as one path segment: an id holding ``/``, ``?``,
    ``#``, spaces or non-ASCII letters never changes the route (``b-grp/1`` -> ``b-grp%2F1``). Placeholders not in
    ``values`` stay as they are."""
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name in values:
            out.append(quote(format(values[name], spec or ""), safe=""))
        else:
            out.append("{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def find_placeholder(template: Any, body: Any) -> tuple[str, Any] | None:
    """Walk a template next to a filled body and return (placeholder name, filled value) of the
    first whole-string placeholder; used by the simulator to read what the adapter sent."""
    if isinstance(template, dict) and isinstance(body, dict):
        for k, v in template.items():
            if k in body and (hit := find_placeholder(v, body[k])):
                return hit
    elif isinstance(template, list) and isinstance(body, list):
        for t, b in zip(template, body, strict=False):
            if hit := find_placeholder(t, b):
                return hit
    elif isinstance(template, str) and (m := _WHOLE.match(template)):
        return m.group(1), body
    return None


def get_path(obj: Any, dotted: str) -> Any:
    """``data.items.0.power`` -> obj["data"]["items"][0]["power"]; KeyError when missing."""
    for part in dotted.split("."):
        if isinstance(obj, list) and part.isdigit():
            obj = obj[int(part)]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            raise KeyError(dotted)
    return obj


def set_path(obj: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


# Response field names: a Telemetry field, or an alias in another unit (name -> field, factor).
ALIASES: dict[str, tuple[str, float]] = {
    "online": ("available", 1.0),
    "power_kw": ("active_power_kw", 1.0),
    "power_w": ("active_power_kw", 0.001),
    "active_power_w": ("active_power_kw", 0.001),
    "reactive_power_var": ("reactive_power_kvar", 0.001),
    "temperature_c": ("temp_c", 1.0),
    "ev_energy_wh": ("ev_energy_kwh", 0.001),
}


def field_for(name: str, telemetry_fields: tuple[str, ...]) -> tuple[str | None, float]:
    """Which Telemetry field a response name fills, and the factor to its unit (None = extra)."""
    if name in telemetry_fields:
        return name, 1.0
    return ALIASES.get(name, (None, 1.0))
