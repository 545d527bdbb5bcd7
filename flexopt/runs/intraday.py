"""Intraday re-optimisation: where the new horizon starts and from which device states.

Each asset starts from the first of these that gives its states (``start_states``):

1. **telemetry**: the newest readings of its devices no older than the age limit, judged and turned into states by
   its type (``flexopt.runs.measured``);
2. **schedule**: what the newest stored schedule run of the day expected at the first interval (every state of every
   asset, from the run's ``states.parquet``), so a cron job never restarts batteries or tanks from their configured
   defaults;
3. **config**: its configured start, with a warning naming it when the run depends on where it stands.

run.json's ``initial_state`` records, per asset, the source, the time the state holds, the values and why it fell
back; the solver gets the values only. A ``--state`` file replaces all of this (its assets: ``file``, the others:
``config``). Which states an asset has, and their ranges, its type declares (``states`` of its portfolio class).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd

from flexopt.config.loader import LoadedPortfolio
from flexopt.data.wall_clock import wall_clock_instant
from flexopt.runs.measured import Measured, iso, measured_states
from flexopt.runs.store import run_span, runs_in_force_order

if TYPE_CHECKING:
    from flexopt.telemetry.db import TelemetryDB


def first_interval(text: str | None, tz: str, resolution_min: int, now: dt.datetime | None = None) -> dt.datetime:
    """The local start of the first interval: given, or the next interval boundary after now."""
    zone = ZoneInfo(tz)
    if text:
        try:
            t = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a time; use YYYY-MM-DDTHH:MM in local time") from None
        t = t.astimezone(zone) if t.tzinfo else wall_clock_instant(t, zone, text)
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
        asset = assets[asset_id]
        specs = {spec.key: spec for spec in asset.states}
        if not isinstance(state, dict):
            raise ValueError(f"{asset_id}: must be an object like {{\"{next(iter(specs), 'soc_pct')}\": 50}}")
        out[asset_id] = {}
        for key, value in state.items():
            spec = specs.get(key)
            if spec is None:
                raise ValueError(f"{asset_id}.{key}: not a state of a {asset.type}; allowed: "
                                 f"{', '.join(specs) or 'none'}")
            low, high = asset.state_bounds(spec)
            if spec.problem(value, bounds=(low, high)) is not None:
                whole = " whole" if spec.whole else ""
                raise ValueError(f"{asset_id}.{key}: {value!r} must be a finite{whole} number from {low:g} to "
                                 f"{high:g} ({spec.unit})")
            out[asset_id][key] = float(value)
    return out


def state_at(states: pd.DataFrame, loaded: LoadedPortfolio, start: dt.datetime) -> dict[str, dict[str, float]]:
    """Every asset's states at ``start`` from a run's ``states.parquet`` (values at interval ends): the keys its
    type declares, those with a value (an unplugged charger has no energy)."""
    start_utc = pd.Timestamp(start).tz_convert("UTC")
    rows = states[(states["interval_end"] == start_utc) & states["value"].notna()]
    keys = {a.id: {spec.key for spec in a.states} for _, a in loaded.portfolio.assets()}
    out: dict[str, dict[str, float]] = {}
    for row in rows.itertuples(index=False):
        if row.key in keys.get(row.asset_id, ()):
            out.setdefault(row.asset_id, {})[row.key] = float(row.value)
    return out


def stored_states(loaded: LoadedPortfolio, store: Path, day: dt.date,
                  start: dt.datetime) -> dict[str, tuple[dict[str, float], str]]:
    """Each asset's states at ``start`` from the newest stored run in force that holds them (of ``day``, else of an
    earlier day whose horizon reaches past midnight), with that run's folder. A run covers ``start`` when one of its
    intervals ends there: a re-run from the same interval finds the run before it. Runs written before
    ``states.parquet`` existed hold none."""
    out: dict[str, tuple[dict[str, float], str]] = {}
    for run in runs_in_force_order(store, loaded.portfolio.portfolio.name, day, ("intraday", "day-ahead")):
        span = run_span(run)
        if not (run / "states.parquet").is_file() or (span is not None and not span[0] < start <= span[1]):
            continue  # no interval of it ends at `start`
        for asset_id, values in state_at(pd.read_parquet(run / "states.parquet"), loaded, start).items():
            out.setdefault(asset_id, (values, str(run)))
    return out


def initial_state_from_store(loaded: LoadedPortfolio, store: Path, day: dt.date,
                             start: dt.datetime) -> tuple[dict[str, dict], str, list[str]]:
    """The states at ``start`` from the stored runs alone (no telemetry): the states, the run folder(s) they came
    from, and one warning per asset that needs a state and starts from its configuration instead."""
    found = start_states(loaded, store, day, start)
    return found.values, found.source, found.warnings


@dataclass
class StartStates:
    """Where an intraday run starts: the solver's input and what run.json records about it."""

    values: dict[str, dict[str, float]] = field(default_factory=dict)  # asset -> state key -> value (the solver's)
    record: dict[str, dict] = field(default_factory=dict)  # run.json initial_state: per asset source, at, values, why
    source: str = ""  # run.json initial_state_source: the stored run folder(s) used, or the --state file
    warnings: list[str] = field(default_factory=list)  # assets that need a state and start from their configuration

    def count(self, source: str) -> int:
        return sum(entry["source"] == source for entry in self.record.values())


def start_states(loaded: LoadedPortfolio, store: Path, day: dt.date, start: dt.datetime, *,
                 db: TelemetryDB | None = None, max_age: dt.timedelta | None = None,
                 no_telemetry: str = "no telemetry database") -> StartStates:
    """Every asset with states from telemetry (``db``, readings at most ``max_age`` old at ``start``), else the
    newest stored schedule of ``day`` that holds its state at ``start``, else its configuration. ``no_telemetry``
    is the reason recorded when ``db`` is None."""
    measured: dict[str, Measured] = {}
    if db is not None:
        if max_age is None:
            raise ValueError("max_age is needed with a telemetry database")
        measured = measured_states(db, loaded, start, max_age)
    stored = stored_states(loaded, store, day, start)
    local = start.astimezone(ZoneInfo(loaded.portfolio.portfolio.timezone))
    out = StartStates()
    runs: list[str] = []
    for _site, asset in loaded.portfolio.assets():
        if not asset.states:
            continue
        m = measured.get(asset.id) if db is not None else Measured(reason=no_telemetry)
        m = m or Measured(reason="not measured")
        if m.usable:
            entry: dict = {"source": "telemetry", "at": iso(m.at), **m.values}
            if asset.count > 1:
                entry["devices"] = m.devices
        elif asset.id in stored:
            values, run = stored[asset.id]
            entry = {"source": "schedule", "at": iso(start), **values, "run": run, "reason": f"telemetry: {m.reason}"}
            if run not in runs:
                runs.append(run)
        else:
            why = (f"no stored schedule of {day.isoformat()} holds its state at "
                   f"{local.isoformat(timespec='minutes')}")
            entry = {"source": "config", "at": None, **asset.configured_state(),
                     "reason": f"telemetry: {m.reason}; schedule: {why}"}
            if asset.needs_state(local):
                out.warnings.append(f"{asset.id} ({asset.type}): {why}; it starts from its configuration "
                                    f"(telemetry: {m.reason})")
        out.record[asset.id] = entry
        out.values[asset.id] = {spec.key: float(entry[spec.key]) for spec in asset.states if spec.key in entry}
    out.source = ", ".join(runs)
    return out


def file_states(loaded: LoadedPortfolio, given: dict[str, dict[str, float]], path: Path) -> StartStates:
    """A --state file's states: its assets from the file, every other asset with states from its configuration."""
    out = StartStates(source=str(path))
    for _site, asset in loaded.portfolio.assets():
        if not asset.states:
            continue
        if asset.id in given:
            entry: dict = {"source": "file", "at": None, **given[asset.id]}
        else:
            entry = {"source": "config", "at": None, **asset.configured_state(), "reason": f"not in {path}"}
        out.record[asset.id] = entry
        out.values[asset.id] = {spec.key: float(entry[spec.key]) for spec in asset.states if spec.key in entry}
    return out
