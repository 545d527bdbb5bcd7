"""DSO limit windows (CSV ``congestion_point,start,end,max_import_kw,max_export_kw``) read and laid on the horizon.

A window limits every interval it overlaps; where windows overlap the most restrictive wins; an empty cell leaves
that direction at the congestion point's default. Times are ISO 8601 with a UTC offset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flexopt.check.run_folder import CheckInputError

COLUMNS = ("congestion_point", "start", "end", "max_import_kw", "max_export_kw")


def read_windows(path: Path, points: set[str], signed: bool = False) -> pd.DataFrame:
    """One row per window: congestion_point, start, end (UTC), max_import_kw, max_export_kw (NaN: none).
    ``signed``: a run's ``limit_windows.csv`` (ordered limits may ask for a minimum import or export)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError) as exc:
        raise CheckInputError(f"{path}: cannot read the DSO limits file ({exc})") from None
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise CheckInputError(f"{path}: missing column(s) {', '.join(missing)}")
    rows = []
    for k, r in raw.iterrows():
        where = f"{path}: row {k + 2}"
        cp = r["congestion_point"].strip()
        if cp not in points:
            raise CheckInputError(f"{where}: congestion point {cp!r} is not in the portfolio")
        start, end = _time(r["start"], where), _time(r["end"], where)
        if end <= start:
            raise CheckInputError(f"{where}: end must be after start")
        rows.append({"congestion_point": cp, "start": start, "end": end,
                     "max_import_kw": _kw(r["max_import_kw"], where, signed),
                     "max_export_kw": _kw(r["max_export_kw"], where, signed)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _time(text: str, where: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(text.strip())
    except ValueError:
        ts = None
    if ts is None or pd.isna(ts) or ts.tzinfo is None:
        raise CheckInputError(f"{where}: {text!r} is not an ISO 8601 time with a UTC offset")
    return ts.tz_convert("UTC")


def _kw(text: str, where: str, signed: bool = False) -> float:
    if not text.strip():
        return np.nan
    try:
        value = float(text)
    except ValueError:
        raise CheckInputError(f"{where}: {text!r} is not a number of kW") from None
    if not np.isfinite(value) or (value < 0 and not signed):
        raise CheckInputError(f"{where}: {text!r} must be a finite number >= 0 (kW)")
    return value


def point_limits(windows: pd.DataFrame, point: str, index: pd.DatetimeIndex, ends: pd.DatetimeIndex,
                 default_import_kw: float | None, default_export_kw: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Import and export limit (kW, inf: none) of one congestion point in every interval."""
    mine = windows[windows["congestion_point"] == point]
    out = []
    for column, default in (("max_import_kw", default_import_kw), ("max_export_kw", default_export_kw)):
        limit = np.full(len(index), np.inf if default is None else float(default))
        tightest = np.full(len(index), np.inf)
        for w in mine.itertuples(index=False):
            value = getattr(w, column)
            if np.isnan(value):
                continue
            hit = (index < w.end) & (ends > w.start)
            tightest[hit] = np.minimum(tightest[hit], value)
        out.append(np.where(np.isfinite(tightest), tightest, limit))
    return out[0], out[1]
