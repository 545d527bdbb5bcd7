"""Intraday re-optimisation: where the new horizon starts and from which device states.

Without measurements, the run continues from what the newest stored schedule of the day expected at the first
interval, so a cron job never restarts batteries or tanks from their configured defaults; an asset whose state no
stored run holds is named in a warning.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from flexopt.config.loader import LoadedPortfolio
from flexopt.config.portfolio import Battery, EvCharger, Thermal, WaterHeater
from flexopt.runs.store import completed_runs


def first_interval(text: str | None, tz: str, resolution_min: int, now: dt.datetime | None = None) -> dt.datetime:
    """The local start of the first interval: given, or the next interval boundary after now."""
    zone = ZoneInfo(tz)
    if text:
        try:
            t = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a time; use YYYY-MM-DDTHH:MM in local time") from None
        t = t.astimezone(zone) if t.tzinfo else t.replace(tzinfo=zone)
        if (t.minute % resolution_min) or t.second or t.microsecond:
            raise ValueError(f"{text!r} is not on a {resolution_min}-minute interval boundary")
        return t
    now = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    minutes = math.ceil((now.hour * 60 + now.minute + now.second / 60) / resolution_min) * resolution_min
    return (now.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(minutes=minutes)).astimezone(zone)


# measured states an intraday run may start from, with their physical range
STATE_RANGES = {"soc_pct": (0.0, 100.0), "temp_c": (-60.0, 120.0), "energy_delivered_kwh": (0.0, 2000.0)}


def check_state(data: object, loaded: LoadedPortfolio) -> dict[str, dict[str, float]]:
    """A --state document as the run needs it; ValueError naming the asset, the key and the fix otherwise."""
    from flexopt.models.registry import formulation_for

    if not isinstance(data, dict):
        raise ValueError('must be a JSON object {"asset_id": {"soc_pct": 55}, ...}')
    assets = {a.id: a for _, a in loaded.portfolio.assets()}
    out: dict[str, dict[str, float]] = {}
    for asset_id, state in data.items():
        if asset_id not in assets:
            raise ValueError(f"{asset_id!r} is not an asset of the portfolio; assets: {', '.join(sorted(assets))}")
        allowed = formulation_for(assets[asset_id].type).state_keys
        if not isinstance(state, dict):
            raise ValueError(f"{asset_id}: must be an object like {{\"{(allowed or ('soc_pct',))[0]}\": 50}}")
        out[asset_id] = {}
        for key, value in state.items():
            if key not in allowed:
                raise ValueError(f"{asset_id}.{key}: not a state of a {assets[asset_id].type}; allowed: "
                                 f"{', '.join(allowed) or 'none'}")
            lo, hi = STATE_RANGES[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or not lo <= value <= hi:
                raise ValueError(f"{asset_id}.{key}: {value!r} must be a finite number from {lo:g} to {hi:g}")
            out[asset_id][key] = float(value)
    return out


def state_at(schedule: pd.DataFrame, loaded: LoadedPortfolio, start: dt.datetime) -> dict[str, dict]:
    """Asset states at ``start`` from a schedule whose ``state`` column holds values at interval ends."""
    start_utc = pd.Timestamp(start).tz_convert("UTC")
    rows = schedule[schedule["interval_end"] == start_utc]
    assets = {a.id: a for _, a in loaded.portfolio.assets()}
    states: dict[str, dict] = {}
    for row in rows.itertuples(index=False):
        asset = assets.get(row.asset_id)
        if asset is None or pd.isna(row.state):
            continue
        if isinstance(asset, Battery) and row.state_unit == "kWh":
            states[row.asset_id] = {"soc_pct": 100.0 * row.state / (asset.energy_kwh * asset.count)}
        elif row.state_unit == "degC":
            states[row.asset_id] = {"temp_c": float(row.state)}
        elif row.asset_type == "ev_charger" and row.state_unit == "kWh":
            states[row.asset_id] = {"energy_delivered_kwh": float(row.state)}
    return states


def needs_state(asset, start_local: dt.datetime) -> bool:
    """Whether an asset's run from ``start_local`` depends on where it stands then: storage and temperatures
    always, an EV charger only while one of its cars is plugged in across that time."""
    if isinstance(asset, EvCharger):
        now = start_local.time()
        return any(s.arrival_local < now < s.departure_local for s in asset.sessions)
    return isinstance(asset, Battery | Thermal | WaterHeater)


def initial_state_from_store(loaded: LoadedPortfolio, store: Path, day: dt.date,
                             start: dt.datetime) -> tuple[dict[str, dict], str, list[str]]:
    """Each asset's state at ``start`` from the newest stored run of the day that holds it (a run covers
    ``start`` when one of its intervals ends there: a re-run from the same interval finds the run before it).

    Returns the states, the run folder(s) they came from, and one warning per asset that needs a state and
    starts from its configuration instead."""
    states: dict[str, dict] = {}
    used: list[str] = []
    for run in completed_runs(store, loaded.portfolio.portfolio.name, day, ("intraday", "day-ahead")):
        found = state_at(pd.read_parquet(run / "schedule.parquet"), loaded, start)
        new = {k: v for k, v in found.items() if k not in states}
        if new:
            states.update(new)
            used.append(str(run))
    local = start.astimezone(ZoneInfo(loaded.portfolio.portfolio.timezone))
    warnings = [f"{a.id} ({a.type}): no stored schedule of {day.isoformat()} holds its state at "
                f"{local.isoformat(timespec='minutes')}; it starts from its configuration"
                for _, a in loaded.portfolio.assets() if a.id not in states and needs_state(a, local)]
    return states, ", ".join(used), warnings
