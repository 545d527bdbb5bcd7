"""An intraday run's start states against the run they were taken from (run.json ``initial_state_source``).

A run that continues an earlier one must start where that run expected to be at its first interval: the earlier
run's state at the end of the interval ending then, or, when both start at the same interval, the earlier run's
own start state. A state left out starts from the configuration (a battery's initial SoC, a zone's or tank's
initial temperature, no EV energy). Measured states (a ``--state`` file) and runs without a source are not
compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from flexopt.check import tolerances
from flexopt.check.breaches import Breach
from flexopt.check.run_folder import RunFolder
from flexopt.config.portfolio import Battery, EvCharger, Portfolio


def check_start_state(folder: RunFolder, pf: Portfolio, start: pd.Timestamp) -> list[Breach]:
    source = Path(str(folder.run.get("initial_state_source") or ""))
    if not str(folder.run.get("initial_state_source") or "") or not (source / "run.json").is_file():
        return []
    try:
        earlier = json.loads((source / "run.json").read_text(encoding="utf-8"))
        schedule = pd.read_parquet(source / "schedule.parquet", columns=["interval_end", "asset_id", "state"])
    except (OSError, ValueError):
        return []
    ending = schedule[schedule["interval_end"] == start]
    if len(ending):
        expected = {r.asset_id: float(r.state) for r in ending.itertuples(index=False) if np.isfinite(r.state)}
        expected = {a: _in_state_units(pf, a, v) for a, v in expected.items()}
    elif pd.Timestamp(earlier.get("horizon", {}).get("start_utc", "1970-01-01T00:00Z")) == start:
        expected = {a: _value(pf, a, s) for a, s in (earlier.get("initial_state") or {}).items()}
    else:
        return []
    out = []
    claimed = folder.initial_state
    for site, asset in pf.assets():
        if asset.type in ("pv", "load"):
            continue
        want = expected.get(asset.id, _default(asset))
        got = _value(pf, asset.id, claimed.get(asset.id, {}))
        tol = _tolerance(asset)
        if want is not None and not abs(got - want) <= tol:
            out.append(Breach("start_state", 0, abs(got - want), _unit(asset), got, want, site_id=site.id,
                              asset_id=asset.id, note=f"start state vs what {source.name} expected at this interval"))
    return out


def _asset(pf: Portfolio, asset_id: str):
    return next((a for _, a in pf.assets() if a.id == asset_id), None)


def _default(asset) -> float:
    if isinstance(asset, Battery):
        return asset.initial_soc_pct
    if isinstance(asset, EvCharger):
        return 0.0
    return asset.initial_temp_c


def _value(pf: Portfolio, asset_id: str, state: dict) -> float:
    """A run.json state in its own unit (SoC %, degC, kWh), the configured default where absent."""
    asset = _asset(pf, asset_id)
    if asset is None:
        return float("nan")
    for key in ("soc_pct", "temp_c", "energy_delivered_kwh"):
        if key in state:
            return float(state[key])
    return _default(asset)


def _in_state_units(pf: Portfolio, asset_id: str, state: float) -> float:
    """A schedule's state column (SoC kWh, degC, EV kWh) in run.json's units (SoC %, degC, kWh)."""
    asset = _asset(pf, asset_id)
    if isinstance(asset, Battery):
        return 100.0 * state / (asset.energy_kwh * asset.count)
    return state


def _unit(asset) -> str:
    return "%" if isinstance(asset, Battery) else "kWh" if isinstance(asset, EvCharger) else "K"


def _tolerance(asset) -> float:
    if isinstance(asset, Battery):
        return 100.0 * tolerances.ENERGY_KWH / (asset.energy_kwh * asset.count)
    return tolerances.ENERGY_KWH if isinstance(asset, EvCharger) else tolerances.TEMP_K
