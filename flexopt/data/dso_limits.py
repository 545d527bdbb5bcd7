"""DSO limit windows for congestion points, read from a CSV and laid onto the horizon.

CSV columns: congestion_point,start,end,max_import_kw,max_export_kw. start/end are ISO 8601 with an
offset; an empty limit means the window does not limit that direction. A window limits every interval
it overlaps, overriding the congestion point's default there; where windows overlap the most
restrictive limit wins.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flexopt.config.quantities import MAX_POWER_KW
from flexopt.data.files import FIRST_YEAR, LAST_YEAR

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


MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_REPORTED = 10


def read_dso_limits(path: str | Path, known_points: set[str] | None = None) -> list[LimitWindow]:
    """Every window of the file; DsoLimitsError listing every bad row (file, row, field, fix) otherwise."""
    from flexopt.config.loader import display_path

    text = _read_text(Path(path))
    path = display_path(Path(path))
    reader = csv.DictReader(text.splitlines())
    try:
        fieldnames = reader.fieldnames or []
    except csv.Error as exc:
        raise DsoLimitsError(f"{path}: not a CSV file ({exc}); expected header {','.join(COLUMNS)}") from None
    missing = [c for c in COLUMNS if c not in fieldnames]
    if missing:
        raise DsoLimitsError(f"{path}: missing column(s) {', '.join(missing)}; expected header {','.join(COLUMNS)}")
    windows, problems = [], []
    try:
        for row in reader:
            try:
                windows.append(_window(row, f"row {reader.line_num}", known_points))
            except DsoLimitsError as exc:
                problems.append(str(exc))
    except csv.Error as exc:
        problems.append(f"row {reader.line_num}: not valid CSV ({exc})")
    if problems:
        shown = problems[:MAX_REPORTED]
        more = [f"... and {len(problems) - MAX_REPORTED} more rows"] if len(problems) > MAX_REPORTED else []
        raise DsoLimitsError("; ".join([f"{path}: {p}" for p in shown] + more))
    return windows


def _read_text(file: Path) -> str:
    from flexopt.config.loader import display_path

    path = display_path(file)
    try:
        if file.is_dir():
            raise DsoLimitsError(f"{path}: is a directory; dso_limits_file names the CSV file itself")
        if not file.is_file():  # a pipe or a device would be read forever
            raise DsoLimitsError(f"{path}: not a regular file (a pipe or a device?); give the CSV file")
        if file.stat().st_size > MAX_FILE_BYTES:
            raise DsoLimitsError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MB; keep only the windows needed")
        data = file.read_bytes()
    except OSError as exc:
        raise DsoLimitsError(f"{path}: cannot read the DSO limits file ({exc.strerror or exc})") from None
    if b"\x00" in data:
        raise DsoLimitsError(f"{path}: holds NUL bytes (binary or UTF-16); save it as a UTF-8 CSV file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DsoLimitsError(f"{path}: line {line} is not UTF-8 (byte 0x{data[exc.start]:02x}); save the file "
                             "as UTF-8") from None


def _window(row: dict, where: str, known_points: set[str] | None) -> LimitWindow:
    if None in row:
        raise DsoLimitsError(f"{where}: more fields than the header ({','.join(COLUMNS)}); remove the extra commas")
    cp = (row["congestion_point"] or "").strip()
    if not cp:
        raise DsoLimitsError(f"{where}: congestion_point is empty; name one of the portfolio's congestion points")
    if known_points is not None and cp not in known_points:
        known = ", ".join(sorted(known_points)) or "none defined"
        raise DsoLimitsError(f"{where}: congestion_point {cp!r} is not defined in the portfolio; defined: {known}")
    start, end = _time(row["start"], where, "start"), _time(row["end"], where, "end")
    if end <= start:
        raise DsoLimitsError(f"{where}: end ({row['end']}) must be after start ({row['start']})")
    imp = _limit(row["max_import_kw"], where, "max_import_kw")
    exp = _limit(row["max_export_kw"], where, "max_export_kw")
    return LimitWindow(cp, start, end, imp, exp)


def _time(text: str | None, where: str, name: str) -> pd.Timestamp:
    text = (text or "").strip()
    example = "e.g. 2024-06-01T18:00:00+02:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise DsoLimitsError(f"{where}: {name} {text!r} is not an ISO 8601 timestamp ({example})") from None
    if parsed.tzinfo is None:
        raise DsoLimitsError(f"{where}: {name} {text!r} has no UTC offset; write {example}")
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise DsoLimitsError(f"{where}: {name} {text!r} is outside {FIRST_YEAR}-{LAST_YEAR}; check the date")
    return pd.Timestamp(parsed).tz_convert("UTC")


def _limit(text: str | None, where: str, name: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DsoLimitsError(f"{where}: {name} {text!r} is not a number; write the limit in kW, e.g. 250, or leave "
                             "it empty for no limit in that direction") from None
    if not np.isfinite(value) or not 0 <= value <= MAX_POWER_KW:
        raise DsoLimitsError(f"{where}: {name} {text!r} must be a finite number from 0 to {MAX_POWER_KW:,.0f} kW; "
                             "leave it empty for no limit")
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
