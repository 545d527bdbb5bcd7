"""What goes wrong on a replayed day: a YAML list of ``{at: "HH:MM", asset: ID, <one change>}`` read and checked
against the portfolio, each problem naming the file, the entry and the field.

Changes: ``soc_pct: x`` (a battery's state of charge jumps), ``temp_c: x`` (a zone or tank temperature jumps),
``offline_min: m`` (the asset's devices report unavailable for m minutes), ``pv_scale: f`` with ``until: "HH:MM"``
(a PV array makes f times its forecast), ``ev_arrival_delay_min: m`` (cars of sessions arriving from ``at`` on come
m minutes late).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KINDS = {  # change -> asset types it applies to (None: any asset with an endpoint)
    "soc_pct": ("battery",),
    "temp_c": ("climate", "heat_pump", "water_heater"),
    "offline_min": None,
    "pv_scale": ("pv",),
    "ev_arrival_delay_min": ("ev_charger",),
}
RANGES = {"soc_pct": (0.0, 100.0), "temp_c": (-60.0, 120.0), "offline_min": (0.0, 24 * 60.0),
          "pv_scale": (0.0, 10.0), "ev_arrival_delay_min": (0.0, 24 * 60.0)}


class PerturbationError(ValueError):
    """A perturbation file that cannot be used; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class Perturbation:
    at: dt.time
    asset_id: str
    kind: str  # one of KINDS
    value: float
    until: dt.time | None = None  # pv_scale only

    def starts(self, day: dt.date, tz: Any) -> dt.datetime:
        return dt.datetime.combine(day, self.at, tzinfo=tz)

    def ends(self, day: dt.date, tz: Any) -> dt.datetime:
        """When the change is undone (offline and pv_scale); the start for the others."""
        if self.kind == "offline_min":
            return self.starts(day, tz) + dt.timedelta(minutes=self.value)
        if self.until is not None:
            return dt.datetime.combine(day, self.until, tzinfo=tz)
        return self.starts(day, tz)


def _time(text: object, where: str) -> dt.time:
    if not isinstance(text, str):
        raise PerturbationError(f'{where}: must be a local time in quotes, "HH:MM" (got {text!r})')
    try:
        hours, minutes = text.split(":")
        return dt.time(int(hours), int(minutes))
    except ValueError:
        raise PerturbationError(f'{where}: {text!r} is not a local time "HH:MM" (00:00 to 23:59)') from None


def read_perturbations(path: Path, loaded: Any) -> list[Perturbation]:
    """The file's perturbations in time order, or :class:`PerturbationError` naming file, entry and field."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PerturbationError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise PerturbationError(f"{path}: byte {exc.start} is not UTF-8") from None
    except yaml.YAMLError as exc:
        raise PerturbationError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise PerturbationError(f'{path}: must be a YAML list of entries like {{at: "10:00", asset: ID, soc_pct: 20}}')
    assets = {a.id: a for _, a in loaded.portfolio.assets()}
    out = []
    for i, entry in enumerate(doc, start=1):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            raise PerturbationError(f"{where}: must be a mapping with at, asset and one change")
        unknown = set(entry) - {"at", "asset", "until", *KINDS}
        if unknown:
            raise PerturbationError(f"{where}, field {sorted(unknown)[0]!r}: unknown; allowed: at, asset, until, "
                                    + ", ".join(KINDS))
        for key in ("at", "asset"):
            if key not in entry:
                raise PerturbationError(f"{where}, field {key!r}: missing")
        at = _time(entry["at"], f"{where}, field 'at'")
        asset = assets.get(entry["asset"]) if isinstance(entry["asset"], str) else None
        if asset is None:
            raise PerturbationError(f"{where}, field 'asset': {entry['asset']!r} is not an asset of the portfolio")
        changes = [k for k in KINDS if k in entry]
        if len(changes) != 1:
            raise PerturbationError(f"{where}: needs exactly one of {', '.join(KINDS)} (found "
                                    f"{', '.join(changes) or 'none'})")
        kind = changes[0]
        value = entry[kind]
        low, high = RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not low <= value <= high:
            raise PerturbationError(f"{where}, field {kind!r}: {value!r} must be a number from {low:g} to {high:g}")
        types = KINDS[kind]
        if types is not None and asset.type not in types:
            raise PerturbationError(f"{where}, field {kind!r}: applies to {'/'.join(types)} assets; "
                                    f"{asset.id} is a {asset.type}")
        if asset.endpoint is None:
            raise PerturbationError(f"{where}, field 'asset': {asset.id} has no endpoint, so no simulated device")
        until = None
        if kind == "pv_scale":
            if "until" not in entry:
                raise PerturbationError(f"{where}, field 'until': pv_scale needs until: \"HH:MM\"")
            until = _time(entry["until"], f"{where}, field 'until'")
            if until <= at:
                raise PerturbationError(f"{where}, field 'until': {entry['until']} is not after at {entry['at']}")
        elif "until" in entry:
            raise PerturbationError(f"{where}, field 'until': only pv_scale takes until")
        out.append(Perturbation(at, asset.id, kind, float(value), until))
    return sorted(out, key=lambda p: p.at)
