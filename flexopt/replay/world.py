"""The simulated devices of a replayed day: what ``flexopt simulate`` starts, on the replay's clock, with the day's
truth (PV following its forecast, cars arriving and leaving with their sessions) and the perturbations applied to
the devices themselves, so that dispatch and intraday only learn of them by reading the devices."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from flexopt.adapters.clock import Clock
from flexopt.adapters.sim.portfolio_sim import PortfolioSimulation
from flexopt.replay.perturbations import Perturbation


def pv_profiles(schedule: pd.DataFrame, loaded: Any, day: dt.date,
                perturbations: list[Perturbation]) -> dict[str, Callable[[float], float]]:
    """Each PV asset's available power per device (kW) at a clock time: its uncurtailed power in the day-ahead
    schedule (``baseline_kw``), times any ``pv_scale`` in force."""
    tz = loaded.portfolio.tz
    step = loaded.portfolio.portfolio.resolution_min * 60
    out: dict[str, Callable[[float], float]] = {}
    for _, asset in loaded.portfolio.assets():
        if asset.type != "pv" or asset.endpoint is None:
            continue
        rows = schedule[schedule["asset_id"] == asset.id]
        by_slot = {int(pd.Timestamp(t).timestamp()) // step: max(0.0, -float(b)) / asset.count
                   for t, b in zip(rows["interval_start"], rows["baseline_kw"], strict=True) if math.isfinite(b)}
        windows = [(p.starts(day, tz).timestamp(), p.ends(day, tz).timestamp(), p.value)
                   for p in perturbations if p.kind == "pv_scale" and p.asset_id == asset.id]

        def profile(now: float, _slots=by_slot, _windows=windows) -> float:
            scale = math.prod(f for a, b, f in _windows if a <= now < b)
            return _slots.get(int(now) // step, 0.0) * scale

        out[asset.id] = profile
    return out


def ev_plugs(loaded: Any, day: dt.date, perturbations: list[Perturbation]) -> dict[str, Callable[[float, int], bool]]:
    """Each charger's plug state at a clock time for its k-th device (0-based): plugged from a session's arrival
    (late by any ``ev_arrival_delay_min`` for sessions arriving from its ``at`` on) to its departure, on the
    first ``units`` devices."""
    tz = loaded.portfolio.tz
    out: dict[str, Callable[[float, int], bool]] = {}
    for _, asset in loaded.portfolio.assets():
        if asset.type != "ev_charger" or asset.endpoint is None or not getattr(asset, "sessions", None):
            continue
        spans = []
        for s in asset.sessions:
            arrival = dt.datetime.combine(day, s.arrival_local, tzinfo=tz)
            delay = sum(p.value for p in perturbations if p.kind == "ev_arrival_delay_min"
                        and p.asset_id == asset.id and s.arrival_local >= p.at)
            departure = dt.datetime.combine(day, s.departure_local, tzinfo=tz)
            spans.append(((arrival + dt.timedelta(minutes=delay)).timestamp(), departure.timestamp(),
                          s.units or asset.count))

        def plugged(now: float, device: int, _spans=spans) -> bool:
            return any(a <= now < b and device < units for a, b, units in _spans)

        out[asset.id] = plugged
    return out


def build_simulation(loaded: Any, clock: Clock, schedule: pd.DataFrame, day: dt.date,
                     perturbations: list[Perturbation], states: pd.DataFrame | None = None,
                     **options: Any) -> PortfolioSimulation:
    """The portfolio's simulators on ``clock`` with the day's truth; batteries and temperatures start where
    ``states`` (the day-ahead run's) has them at the clock's start, so a replay from noon starts from noon."""
    sim = PortfolioSimulation(loaded.portfolio, clock=clock, pv_profiles=pv_profiles(schedule, loaded, day,
                                                                                      perturbations),
                              ev_plugs=ev_plugs(loaded, day, perturbations), **options)
    if states is not None and len(states):
        at = pd.Timestamp(clock.now())
        ends = pd.to_datetime(states["interval_end"], utc=True)
        now = states[(ends == at) & states["key"].isin(("soc_pct", "temp_c")) & states["value"].notna()]
        for row in now.itertuples(index=False):
            for device in devices_of(sim, row.asset_id):
                if hasattr(device, row.key):
                    setattr(device, row.key, float(row.value))
    return sim


def devices_of(sim: PortfolioSimulation, asset_id: str) -> list[Any]:
    """The simulated device objects of an asset (one, or one per device of a counted group)."""
    found: list[Any] = []
    for simulator in sim.simulators.values():
        pools: list[Any] = []
        for rtu in getattr(simulator, "rtus", {}).values():
            pools += list(rtu.batteries.values())
        for server in getattr(simulator, "servers", {}).values():
            pools += server.assets
        for cloud in getattr(simulator, "clouds", {}).values():
            pools += list({id(d): d for d, _ in cloud.devices.values()}.values())
        found += [d for d in pools if d.asset_id == asset_id or d.asset_id.startswith(asset_id + "/")]
    return found


def _set_online(device: Any, online: bool) -> None:
    if hasattr(device, "online"):
        device.online = online
    else:
        device.available = online


def apply(sim: PortfolioSimulation, p: Perturbation) -> str:
    """Make the change on the asset's devices (pv_scale and ev_arrival_delay_min are part of the truth already);
    a line saying what was done."""
    devices = devices_of(sim, p.asset_id)
    for device in devices:
        if hasattr(device, "advance"):
            device.advance()  # the energy so far at the old state
        if p.kind == "soc_pct":
            device.soc_pct = p.value
        elif p.kind == "temp_c":
            device.temp_c = p.value
        elif p.kind == "offline_min":
            _set_online(device, False)
    return f"{p.asset_id}: {p.kind} {p.value:g} on {len(devices)} device(s)"


async def run_perturbations(sim: PortfolioSimulation, clock: Clock, perturbations: list[Perturbation],
                            day: dt.date, tz: Any, log: Callable[[str], None]) -> None:
    """Apply each perturbation at its time on the clock, and bring offline devices back after their minutes."""
    events: list[tuple[dt.datetime, Callable[[], str]]] = []
    for p in perturbations:
        if p.kind in ("soc_pct", "temp_c", "offline_min"):
            events.append((p.starts(day, tz), lambda p=p: apply(sim, p)))
        if p.kind == "offline_min":
            events.append((p.ends(day, tz), lambda p=p: _back_online(sim, p)))
    for when, action in sorted(events, key=lambda e: e[0]):
        if when < clock.now():
            continue  # before the replayed hours
        await clock.sleep_until(when)
        log(f"perturbation at {when.isoformat(timespec='minutes')}: {action()}")
    await asyncio.sleep(0)


def _back_online(sim: PortfolioSimulation, p: Perturbation) -> str:
    devices = devices_of(sim, p.asset_id)
    for device in devices:
        _set_online(device, True)
    return f"{p.asset_id}: back online"
