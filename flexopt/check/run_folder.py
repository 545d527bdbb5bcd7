"""Reading a run folder (schedule.parquet, sites.parquet, states.parquet, corrections.parquet, kpis.json, run.json)
into plain frames and dicts. ``states.parquet`` is optional: runs written before it existed have none;
``corrections.parquet`` exists only where an intraday run corrected a forecast from telemetry.

Anything that makes the folder unusable (a file missing or unreadable, a column or horizon field absent) is a
:class:`CheckInputError` with one line naming the file: the command turns it into exit code 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SCHEDULE_COLUMNS = ("interval_start", "interval_end", "site_id", "asset_id", "asset_type", "power_kw", "state")
SITES_COLUMNS = ("interval_start", "interval_end", "level", "id", "net_kw", "import_limit_kw", "export_limit_kw",
                 "import_price_eur_per_kwh", "export_price_eur_per_kwh")
STATES_COLUMNS = ("interval_start", "interval_end", "asset_id", "key", "value")
CORRECTIONS_COLUMNS = ("interval_start", "interval_end", "asset_id", "forecast_power_kw", "correction_kw")
HORIZON_FIELDS = ("start_utc", "end_utc", "intervals", "resolution_min")


class CheckInputError(ValueError):
    """The run folder or portfolio cannot be checked; the message says which file and why, in one line."""


@dataclass
class RunFolder:
    path: Path
    schedule: pd.DataFrame
    sites: pd.DataFrame
    kpis: dict
    run: dict
    states: pd.DataFrame  # every state per asset, key and interval (empty for runs before states.parquet)
    corrections: pd.DataFrame  # forecast corrections per asset and interval (empty: nothing was corrected)

    @property
    def kind(self) -> str:
        return str(self.run.get("kind", ""))

    @property
    def timezone(self) -> str:
        return str(self.run.get("timezone", ""))

    @property
    def initial_state(self) -> dict[str, dict]:
        return self.run.get("initial_state") or {}

    @property
    def violations(self) -> list[dict]:
        v = self.kpis.get("violations", {})
        return list(v.get("list", []) if isinstance(v, dict) else v)


def read_run_folder(path: Path) -> RunFolder:
    path = Path(path)
    if not path.is_dir():
        raise CheckInputError(f"{path}: no such run folder")
    run = _json(path / "run.json")
    kpis = _json(path / "kpis.json")
    horizon = run.get("horizon")
    if not isinstance(horizon, dict) or any(k not in horizon for k in HORIZON_FIELDS):
        raise CheckInputError(f"{path / 'run.json'}: needs horizon {{{', '.join(HORIZON_FIELDS)}}}")
    if not isinstance(run.get("initial_state") or {}, dict):
        raise CheckInputError(f"{path / 'run.json'}: initial_state must be an object {{asset_id: {{key: value}}}}")
    if not run.get("timezone"):
        raise CheckInputError(f"{path / 'run.json'}: has no timezone")
    if not isinstance(kpis.get("violations", {}), dict | list):
        raise CheckInputError(f"{path / 'kpis.json'}: violations must be an object with a list")
    schedule = _parquet(path / "schedule.parquet", SCHEDULE_COLUMNS)
    sites = _parquet(path / "sites.parquet", SITES_COLUMNS)
    states = (_parquet(path / "states.parquet", STATES_COLUMNS) if (path / "states.parquet").exists()
              else pd.DataFrame(columns=list(STATES_COLUMNS)))
    corrections = (_parquet(path / "corrections.parquet", CORRECTIONS_COLUMNS)
                   if (path / "corrections.parquet").exists() else pd.DataFrame(columns=list(CORRECTIONS_COLUMNS)))
    return RunFolder(path, schedule, sites, kpis, run, states, corrections)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckInputError(f"{path}: missing; a run folder holds schedule.parquet, sites.parquet, kpis.json "
                              "and run.json") from None
    except (OSError, ValueError) as exc:
        raise CheckInputError(f"{path}: cannot read JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckInputError(f"{path}: the top level must be an object")
    return data


def _parquet(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise CheckInputError(f"{path}: missing; a run folder holds schedule.parquet, sites.parquet, kpis.json "
                              "and run.json")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise CheckInputError(f"{path}: cannot read Parquet ({type(exc).__name__}: {exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CheckInputError(f"{path}: missing column(s) {', '.join(missing)}")
    for col in ("interval_start", "interval_end"):
        if not isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            raise CheckInputError(f"{path}: {col} must be tz-aware timestamps (UTC)")
        frame[col] = frame[col].dt.tz_convert("UTC")
    return frame
