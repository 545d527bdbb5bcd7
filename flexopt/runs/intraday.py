"""Intraday re-optimisation: where the new horizon starts and from which device states.

Without measurements, the run continues from what the newest stored schedule of the day expected at the first
interval (every state of every asset, from the run's ``states.parquet``), so a cron job never restarts batteries or
tanks from their configured defaults; an asset whose state no stored run holds is named in a warning. Which states
an asset has, and their ranges, its type declares (``states`` of its portfolio class).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from flexopt.config.loader import LoadedPortfolio
from flexopt.runs.store import run_span, runs_in_force_order


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


def check_state(data: object, loaded: LoadedPortfolio) -> dict[str, dict[str, float]]:
    """A --state document as the run needs it; ValueError naming the asset, the key and the fix otherwise."""
    if not isinstance(data, dict):
        raise ValueError('must be a JSON object {"asset_id": {"soc_pct": 55}, ...}')
    assets = {a.id: a for _, a in loaded.portfolio.assets()}
    out: dict[str, dict[str, float]] = {}
    for asset_id, state in data.items():
        if asset_id not in assets:
            raise ValueError(f"{asset_id!r} is not an asset of the portfolio; assets: {', '.join(sorted(assets))}")
        specs = {spec.key: spec for spec in assets[asset_id].states}
        if not isinstance(state, dict):
            raise ValueError(f"{asset_id}: must be an object like {{\"{next(iter(specs), 'soc_pct')}\": 50}}")
        out[asset_id] = {}
        for key, value in state.items():
            spec = specs.get(key)
            if spec is None:
                raise ValueError(f"{asset_id}.{key}: not a state of a {assets[asset_id].type}; allowed: "
                                 f"{', '.join(specs) or 'none'}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or not spec.low <= value <= spec.high:
                raise ValueError(f"{asset_id}.{key}: {value!r} must be a finite number from {spec.low:g} to "
                                 f"{spec.high:g} ({spec.unit})")
            out[asset_id][key] = float(value)
    return out


def state_at(states: pd.DataFrame, loaded: LoadedPortfolio, start: dt.datetime) -> dict[str, dict[str, float]]:
    """Every asset's states at ``start`` from a run's ``states.parquet`` (values at interval ends): the keys its
    type declares, those with a value (an unplugged charger has none)."""
    start_utc = pd.Timestamp(start).tz_convert("UTC")
    rows = states[(states["interval_end"] == start_utc) & states["value"].notna()]
    keys = {a.id: {spec.key for spec in a.states} for _, a in loaded.portfolio.assets()}
    out: dict[str, dict[str, float]] = {}
    for row in rows.itertuples(index=False):
        if row.key in keys.get(row.asset_id, ()):
            out.setdefault(row.asset_id, {})[row.key] = float(row.value)
    return out


def initial_state_from_store(loaded: LoadedPortfolio, store: Path, day: dt.date,
                             start: dt.datetime) -> tuple[dict[str, dict], str, list[str]]:
    """Each asset's states at ``start`` from the newest stored run of the day that holds them, else of an earlier
    day whose horizon reaches past midnight (a run covers ``start`` when one of its intervals ends there: a re-run
    from the same interval finds the run before it).
    Runs written before ``states.parquet`` existed hold none.

    Returns the states, the run folder(s) they came from, and one warning per asset that needs a state and
    starts from its configuration instead."""
    states: dict[str, dict] = {}
    used: list[str] = []
    for run in runs_in_force_order(store, loaded.portfolio.portfolio.name, day, ("intraday", "day-ahead")):
        span = run_span(run)
        if not (run / "states.parquet").is_file() or (span is not None and not span[0] < start <= span[1]):
            continue  # no interval of it ends at `start`
        found = state_at(pd.read_parquet(run / "states.parquet"), loaded, start)
        new = {k: v for k, v in found.items() if k not in states}
        if new:
            states.update(new)
            used.append(str(run))
    local = start.astimezone(ZoneInfo(loaded.portfolio.portfolio.timezone))
    warnings = [f"{a.id} ({a.type}): no stored schedule of {day.isoformat()} holds its state at "
                f"{local.isoformat(timespec='minutes')}; it starts from its configuration"
                for _, a in loaded.portfolio.assets() if a.id not in states and a.needs_state(local)]
    return states, ", ".join(used), warnings
