"""An intraday run's start states against the run they were taken from (run.json ``initial_state_source``).

A run that continues an earlier one must start where that run expected to be at its first interval: every state
of the earlier run's ``states.parquet`` at the end of the interval ending then, or, when both start at the same
interval, the earlier run's own start state. A state left out starts from the configuration (the asset type's
``configured_state``: a battery's initial SoC, a zone's or tank's initial temperature, no EV energy). Measured
states (a ``--state`` file), runs without a source and sources written before ``states.parquet`` existed are not
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
from flexopt.config.portfolio import Portfolio


def check_start_state(folder: RunFolder, pf: Portfolio, start: pd.Timestamp) -> list[Breach]:
    named = str(folder.run.get("initial_state_source") or "")
    source = Path(named)
    if not named or not (source / "run.json").is_file() or not (source / "states.parquet").is_file():
        return []
    try:
        earlier = json.loads((source / "run.json").read_text(encoding="utf-8"))
        states = pd.read_parquet(source / "states.parquet", columns=["interval_end", "asset_id", "key", "value"])
        horizon = earlier.get("horizon", {})
        first, last = (pd.Timestamp(horizon.get(k, "1970-01-01T00:00Z")) for k in ("start_utc", "end_utc"))
    except (OSError, ValueError, AttributeError):
        return []
    if first < start <= last:  # one of its intervals ends at our start
        expected: dict = {}
        ending = states[(states["interval_end"] == start) & np.isfinite(states["value"])]
        for r in ending.itertuples(index=False):
            expected.setdefault(r.asset_id, {})[r.key] = float(r.value)
    elif first == start:
        expected = earlier.get("initial_state") or {}
    else:
        return []
    out = []
    for site, asset in pf.assets():
        configured = asset.configured_state()
        for spec in asset.states:
            want = _value(expected.get(asset.id), spec.key, configured)
            got = _value(folder.initial_state.get(asset.id), spec.key, configured)
            if want is None or got is None or abs(got - want) <= tolerances.for_state(spec.unit):
                continue
            out.append(Breach("start_state", 0, abs(got - want), "K" if spec.unit == "degC" else spec.unit, got,
                              want, site_id=site.id, asset_id=asset.id,
                              note=f"{spec.key} at the start vs what {source.name} expected at this interval"))
    return out


def _value(state: object, key: str, configured: dict[str, float]) -> float | None:
    """A state of a run.json entry (or of states.parquet), the configured start where absent."""
    value = state.get(key) if isinstance(state, dict) else None
    value = configured.get(key) if value is None else value
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return float("nan")
