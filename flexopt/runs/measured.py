"""Where each asset stands according to telemetry, for an intraday start.

The newest reading of each of an asset's devices at or before the start is judged here, the same way for every type
(did every device answer, with good data, recently enough?), then turned into the asset's states by its type
(``state_from_readings``) and checked against the ranges the type declares. Anything short of that is a reason,
recorded in run.json, and the asset starts from the next source instead (runs/intraday.py).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flexopt.config.asset_types import StateNotMeasured
from flexopt.config.loader import LoadedPortfolio

if TYPE_CHECKING:  # SQLAlchemy is imported by the runs that read telemetry, not by every command (0.27 s)
    from flexopt.telemetry.db import TelemetryDB
    from flexopt.telemetry.reader import Reading

# readings older than this are not even looked at (the query stays bounded on a year of telemetry); an asset with
# none is "not measured in the last day"
LOOKBACK = dt.timedelta(days=1)


@dataclass(frozen=True)
class Measured:
    """An asset's states from telemetry (``values``), or why there are none (``reason``)."""

    values: dict[str, float] = field(default_factory=dict)
    at: dt.datetime | None = None  # the oldest reading used, tz-aware UTC
    reason: str = ""
    devices: int = 0  # readings used (the asset's devices)

    @property
    def usable(self) -> bool:
        return not self.reason


def iso(t: dt.datetime) -> str:
    """A UTC time as run.json writes it."""
    return t.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def measured_states(db: TelemetryDB, loaded: LoadedPortfolio, start: dt.datetime,
                    max_age: dt.timedelta) -> dict[str, Measured]:
    """Every asset with states: its states from the newest readings at or before ``start`` no older than
    ``max_age``, or the reason they cannot be used."""
    from flexopt.telemetry.reader import latest_per_asset, latest_per_device

    name = loaded.portfolio.portfolio.name
    assets = [a for _site, a in loaded.portfolio.assets() if a.states]
    window = max(max_age, LOOKBACK)
    singles = [a.id for a in assets if a.count == 1]
    groups = [a.id for a in assets if a.count > 1]
    own = latest_per_asset(db, name, at=start, max_age=window, assets=singles, good_only=False) if singles else {}
    per_device: dict[str, list[Reading]] = defaultdict(list)
    if groups:
        for (asset_id, _device), reading in latest_per_device(db, name, at=start, max_age=window, assets=groups,
                                                              good_only=False).items():
            per_device[asset_id].append(reading)
    out = {}
    for asset in assets:
        readings = per_device[asset.id] if asset.count > 1 else [own[asset.id]] if asset.id in own else []
        out[asset.id] = judge(asset, readings, start, max_age)
    return out


def judge(asset, readings: Sequence[Reading], start: dt.datetime, max_age: dt.timedelta) -> Measured:
    """The asset's states from these readings (one per device), or the first reasons they cannot be used."""
    limit = f"{max_age.total_seconds() / 60:g} min"
    if not readings:
        if asset.endpoint is None:
            return Measured(reason="no endpoint: nothing is measured")
        return Measured(reason=f"no reading in the {LOOKBACK.total_seconds() / 3600:g} h before the start")
    problems = []
    if len(readings) < asset.count:
        problems.append(f"{asset.count - len(readings)} of {asset.count} devices have no reading")
    for r in sorted(readings, key=lambda r: r.device or ""):
        who = f"device {r.device}" if r.device else "the device"
        if not r.connected:
            problems.append(f"{who} did not answer at {iso(r.at)} ({r.quality})")
        elif r.quality != "good":
            problems.append(f"{who} reported {r.quality} data at {iso(r.at)}")
        elif start - r.at > max_age:
            problems.append(f"{who}'s newest reading ({iso(r.at)}) is {(start - r.at).total_seconds() / 60:.0f} min "
                            f"old (limit {limit})")
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return Measured(reason="; ".join(problems[:3]) + more)
    try:
        values = asset.state_from_readings(list(readings))
    except StateNotMeasured as exc:
        return Measured(reason=str(exc))
    out = {}
    for spec in asset.states:
        if spec.key not in values:
            return Measured(reason=f"the readings give no {spec.key}")
        problem = spec.problem(values[spec.key], bounds=asset.state_bounds(spec))
        if problem is not None:
            return Measured(reason=f"implausible {spec.key}: {problem}")
        out[spec.key] = float(values[spec.key])
    return Measured(out, min(r.at for r in readings), devices=len(readings))
