"""Binding limits the DSO ordered (UFTP FlexOrders), as an append-only ledger every later schedule run reads.

One JSON object per line: ``{"event": "order", "order_id", "at_utc", "windows": [...]}`` makes the windows
binding; ``{"event": "revoke", "order_id", "at_utc", "reason"}`` lifts them. Lines are only ever appended (under
an flock, fsynced), so the history of what was binding when is never lost. The windows are the same
:class:`~flexopt.data.dso_limits.LimitWindow` the CSV file gives, with signed limits allowed: a FlexRequest may
ask for a minimum import (``max_export_kw`` below 0) or a minimum export (``max_import_kw`` below 0).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path

import pandas as pd

from flexopt.data.dso_limits import DsoLimitsError, LimitWindow

LEDGER_NAME = "orders.jsonl"


def window_record(w: LimitWindow) -> dict:
    return {"congestion_point": w.congestion_point, "start": w.start.isoformat(), "end": w.end.isoformat(),
            "max_import_kw": w.max_import_kw, "max_export_kw": w.max_export_kw}


def append_event(path: Path, event: dict) -> None:
    """Append one event line, whole or not at all as far as readers go (flock, one write, fsync)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(event, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def record_order(path: Path, order_id: str, at_utc: str, windows: list[LimitWindow], **details) -> None:
    append_event(path, {"event": "order", "order_id": order_id, "at_utc": at_utc,
                        "windows": [window_record(w) for w in windows], **details})


def record_revocation(path: Path, order_id: str, at_utc: str, reason: str) -> None:
    append_event(path, {"event": "revoke", "order_id": order_id, "at_utc": at_utc, "reason": reason})


def read_events(path: Path) -> list[dict]:
    """Every event of the ledger in order; a missing ledger is empty, a damaged line is DsoLimitsError."""
    if not path.is_file():
        return []
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            raise DsoLimitsError(f"{path}: line {number} is not JSON; the ledger is only appended to by flexopt "
                                 "uftp serve, restore it from a backup") from None
        if not isinstance(event, dict) or event.get("event") not in ("order", "revoke"):
            raise DsoLimitsError(f"{path}: line {number} is neither an order nor a revocation")
        events.append(event)
    return events


def active_orders(path: Path) -> dict[str, dict]:
    """Order id -> its order event, for every order not revoked."""
    orders: dict[str, dict] = {}
    for event in read_events(path):
        if event["event"] == "order":
            orders[event["order_id"]] = event
        else:
            orders.pop(event["order_id"], None)
    return orders


def active_windows(path: Path, known_points: set[str] | None = None) -> list[LimitWindow]:
    """The windows of every order in force; a window of a congestion point the portfolio no longer has is an
    error naming the order (it would otherwise be dropped silently)."""
    out = []
    for order_id, event in active_orders(path).items():
        for w in event.get("windows", []):
            if known_points is not None and w["congestion_point"] not in known_points:
                raise DsoLimitsError(f"{path}: order {order_id} limits congestion point {w['congestion_point']!r}, "
                                     "which the portfolio does not define")
            out.append(LimitWindow(w["congestion_point"], pd.Timestamp(w["start"]).tz_convert("UTC"),
                                   pd.Timestamp(w["end"]).tz_convert("UTC"), _kw(w["max_import_kw"]),
                                   _kw(w["max_export_kw"])))
    return out


def _kw(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
