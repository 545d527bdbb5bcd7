"""DSO limit windows for congestion points, read from a CSV and laid onto the horizon.

CSV columns: congestion_point,start,end,max_import_kw,max_export_kw. start/end are ISO 8601 with an
offset; an empty limit means the window does not limit that direction. A window limits every interval
it overlaps, overriding the congestion point's default there; where windows overlap the most
restrictive limit wins.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("congestion_point", "start", "end", "max_import_kw", "max_export_kw")


class DsoLimitsError(ValueError):
    """The limits file cannot be used; the message names the file, row and field."""


@dataclass(frozen=True)
class LimitWindow:
    congestion_point: str
    start: pd.Timestamp
    end: pd.Timestamp
    max_import_kw: float | None
    max_export_kw: float | None


def read_dso_limits(path: str | Path, known_points: set[str] | None = None) -> list[LimitWindow]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DsoLimitsError(f"{path}: cannot read the DSO limits file ({exc.strerror})") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DsoLimitsError(f"{path}: missing column(s) {', '.join(missing)}; expected header {','.join(COLUMNS)}")
    windows = []
    for row_no, row in enumerate(reader, start=2):
        where = f"{path}: row {row_no}"
        cp = (row["congestion_point"] or "").strip()
        if not cp:
            raise DsoLimitsError(f"{where}: congestion_point is empty")
        if known_points is not None and cp not in known_points:
            known = ", ".join(sorted(known_points)) or "none defined"
            raise DsoLimitsError(f"{where}: congestion_point {cp!r} is not defined in the portfolio; defined: {known}")
        start, end = _time(row["start"], where, "start"), _time(row["end"], where, "end")
        if end <= start:
            raise DsoLimitsError(f"{where}: end ({row['end']}) must be after start ({row['start']})")
        imp, exp = _limit(row["max_import_kw"], where, "max_import_kw"), _limit(row["max_export_kw"], where,
                                                                                "max_export_kw")
        windows.append(LimitWindow(cp, start, end, imp, exp))
    return windows


def _time(text: str | None, where: str, name: str) -> pd.Timestamp:
    text = (text or "").strip()
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        ts = None
    if ts is None or pd.isna(ts):
        raise DsoLimitsError(f"{where}: {name} {text!r} is not an ISO 8601 timestamp (e.g. 2024-06-01T18:00:00+02:00)")
    if ts.tzinfo is None:
        raise DsoLimitsError(f"{where}: {name} {text!r} has no UTC offset; write e.g. 2024-06-01T18:00:00+02:00")
    return ts.tz_convert("UTC")


def _limit(text: str | None, where: str, name: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DsoLimitsError(f"{where}: {name} {text!r} is not a number (kW)") from None
    if not np.isfinite(value) or value < 0:
        raise DsoLimitsError(f"{where}: {name} {value:g} must be a finite number >= 0 (kW)")
    return value


def limits_on_horizon(windows: list[LimitWindow], point: str, index: pd.DatetimeIndex, ends: pd.DatetimeIndex,
                      default_import_kw: float | None,
                      default_export_kw: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Import and export limits (kW, inf = none) of one congestion point per interval."""
    n = len(index)
    imp_default = np.full(n, np.inf if default_import_kw is None else default_import_kw)
    exp_default = np.full(n, np.inf if default_export_kw is None else default_export_kw)
    imp_win, exp_win = np.full(n, np.inf), np.full(n, np.inf)
    imp_hit, exp_hit = np.zeros(n, bool), np.zeros(n, bool)
    for w in windows:
        if w.congestion_point != point:
            continue
        overlap = (index < w.end) & (ends > w.start)
        if w.max_import_kw is not None:
            imp_win[overlap] = np.minimum(imp_win[overlap], w.max_import_kw)
            imp_hit |= overlap
        if w.max_export_kw is not None:
            exp_win[overlap] = np.minimum(exp_win[overlap], w.max_export_kw)
            exp_hit |= overlap
    return np.where(imp_hit, imp_win, imp_default), np.where(exp_hit, exp_win, exp_default)
