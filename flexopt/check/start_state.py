"""An intraday run's start states against the runs they were taken from.

run.json's ``initial_state`` holds, per asset, its start states and where they came from (``source``: telemetry,
schedule with the ``run`` folder, config, or a --state ``file``); runs written before that hold the states alone and
name one run in ``initial_state_source``. A state taken from a run must be where that run expected to be at the
first interval: its ``states.parquet`` value at the end of the interval ending then, or, when both start at the same
interval, that run's own start state. A state left out starts from the configuration (the asset type's
``configured_state``). Measured states (telemetry, a --state file) are not compared: they are what was measured; an
asset that fell back to its configuration is compared with the run named in ``initial_state_source`` (it must not
have had a state there).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from flexopt.check import tolerances
from flexopt.check.breaches import Breach
from flexopt.check.run_folder import RunFolder
from flexopt.config.portfolio import AssetBase, Portfolio

MEASURED = ("telemetry", "file")


def start_values(entry: object, asset: AssetBase) -> dict:
    """The states of a run.json ``initial_state`` entry (the keys the asset's type declares), without its record
    fields (source, at, reason, run, devices)."""
    if not isinstance(entry, dict):
        return {}
    keys = {spec.key for spec in asset.states}
    return {k: v for k, v in entry.items() if k in keys}


def check_start_state(folder: RunFolder, pf: Portfolio, start: pd.Timestamp) -> list[Breach]:
    legacy = str(folder.run.get("initial_state_source") or "")
    expected_by_run: dict[str, dict | None] = {}
    out = []
    for site, asset in pf.assets():
        entry = folder.initial_state.get(asset.id)
        entry = entry if isinstance(entry, dict) else {}
        if entry.get("source") in MEASURED:
            continue
        named = str(entry.get("run") or legacy)
        if named not in expected_by_run:
            expected_by_run[named] = _expected(Path(named), start) if named else None
        expected = expected_by_run[named]
        if expected is None:
            continue
        configured = asset.configured_state()
        for spec in asset.states:
            want = _value(expected.get(asset.id), spec.key, configured)
            got = _value(entry, spec.key, configured)
            if want is None or got is None or abs(got - want) <= tolerances.for_state(spec.unit):
                continue
            out.append(Breach("start_state", 0, abs(got - want), "K" if spec.unit == "degC" else spec.unit, got,
                              want, site_id=site.id, asset_id=asset.id,
                              note=f"{spec.key} at the start vs what {Path(named).name} expected at this interval"))
    return out


def _expected(source: Path, start: pd.Timestamp) -> dict | None:
    """What the run at ``source`` expected at ``start`` per asset; None when it cannot say (no such run, a run
    before states.parquet, or one that does not cover ``start``)."""
    if not (source / "run.json").is_file() or not (source / "states.parquet").is_file():
        return None
    try:
        earlier = json.loads((source / "run.json").read_text(encoding="utf-8"))
        states = pd.read_parquet(source / "states.parquet", columns=["interval_end", "asset_id", "key", "value"])
        horizon = earlier.get("horizon", {})
        first, last = (pd.Timestamp(horizon.get(k, "1970-01-01T00:00Z")) for k in ("start_utc", "end_utc"))
    except (OSError, ValueError, AttributeError):
        return None
    if first < start <= last:  # one of its intervals ends at our start
        expected: dict = {}
        ending = states[(states["interval_end"] == start) & np.isfinite(states["value"])]
        for r in ending.itertuples(index=False):
            expected.setdefault(r.asset_id, {})[r.key] = float(r.value)
        return expected
    if first == start:
        return earlier.get("initial_state") or {}
    return None


def _value(state: object, key: str, configured: dict[str, float]) -> float | None:
    """A state of a run.json entry (or of states.parquet), the configured start where absent."""
    value = state.get(key) if isinstance(state, dict) else None
    value = configured.get(key) if value is None else value
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return float("nan")
